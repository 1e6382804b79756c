"""The list of GDFRNet variants (`keras_gdfr.variants.list_variants()`)."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from keras_gdfr.variants import list_variants  # the variant table: plain Python, no Keras


class VariantList(OptionList):
    """Every named variant; highlighting one posts `VariantList.Chosen`.

    Args:
        initial: the variant highlighted first.
    """

    @dataclass
    class Chosen(Message):
        """A variant was highlighted."""

        name: str
        description: str

    def __init__(self, initial: str = "gdfrnet", **kwargs) -> None:
        self.descriptions = list_variants()
        super().__init__(*(Option(name, id=name) for name in self.descriptions), **kwargs)
        self.initial = initial if initial in self.descriptions else next(iter(self.descriptions))

    def on_mount(self) -> None:
        self.select_variant(self.initial)

    def select_variant(self, name: str) -> None:
        """Highlights a variant by name (ignored for an unknown name)."""
        if name in self.descriptions:
            self.highlighted = self.get_option_index(name)

    @property
    def variant(self) -> str:
        """The highlighted variant's name."""
        if self.highlighted is None:
            return self.initial
        return self.get_option_at_index(self.highlighted).id or self.initial

    @on(OptionList.OptionHighlighted)
    def _announce(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        name = event.option_id or ""
        self.post_message(self.Chosen(name, self.descriptions.get(name, "")))
