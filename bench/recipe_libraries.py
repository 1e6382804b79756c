"""Would a validation library give the recipe checker's one-line messages? A measured prototype.

Four keys of `[train]` (epochs, lr, momentum, milestones) written three ways: the
hand-written checks of `keras_gdfr.training.recipe`, pydantic v2 and msgspec. Each
gets the same four bad recipes; the script prints the message each way gives and the
lines each schema + message adapter takes. Not a test, not in CI (needs
`pip install pydantic msgspec`; run: `PYTHONPATH=. python bench/recipe_libraries.py`).
Findings: docs/recipes.md.
"""

# No `from __future__ import annotations`: msgspec resolves the local classes' annotations.
import difflib
import inspect
import pathlib
import tempfile

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from keras_gdfr.training.recipe import RecipeError, load_recipe

CASES = {
    "unknown key, typo": "[data]\ndataset = 'cifar10'\n[train]\nepoch = 3\n",
    "wrong type": "[data]\ndataset = 'cifar10'\n[train]\nepochs = 'ten'\n",
    "bool for an int": "[data]\ndataset = 'cifar10'\n[train]\nepochs = true\n",
    "out of range": "[data]\ndataset = 'cifar10'\n[train]\nmomentum = 1.5\n",
    "bad TOML": "[data]\ndataset = 'cifar10'\n[train]\nepochs = = 3\n",
}
FILE = "recipes/x.toml"


# --- pydantic v2 ------------------------------------------------------------------

def pydantic_schema():
    from typing import Annotated

    from pydantic import BaseModel, ConfigDict, Field

    class Train(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        epochs: Annotated[int, Field(ge=1)] = 200
        lr: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 0.1
        momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
        milestones: tuple[Annotated[int, Field(ge=1)], ...] = (60, 120, 160)

    class Data(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        dataset: str

    class Recipe(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        data: Data
        train: Train = Train()

    return Recipe


def pydantic_message(text: str) -> str:
    from pydantic import ValidationError

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return f"{FILE}: TOML syntax error: {error}"
    schema = pydantic_schema()
    try:
        schema.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":  # no did-you-mean of its own: added here
            section = schema.model_fields[first["loc"][0]].annotation
            close = difflib.get_close_matches(str(first["loc"][-1]), list(section.model_fields), n=1)
            hint = f"; did you mean {first['loc'][0] + '.' + close[0]!r}?" if close else ""
            return f"{FILE}: {key}: unknown key{hint}"
        return f"{FILE}: {key}: {first['msg']}, got {first['input']!r}"
    return "(accepted)"


# --- msgspec ----------------------------------------------------------------------

def msgspec_schema():
    from typing import Annotated

    import msgspec

    class Train(msgspec.Struct, forbid_unknown_fields=True):
        epochs: Annotated[int, msgspec.Meta(ge=1)] = 200
        lr: Annotated[float, msgspec.Meta(gt=0)] = 0.1
        momentum: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.9
        milestones: tuple[Annotated[int, msgspec.Meta(ge=1)], ...] = (60, 120, 160)

    class Data(msgspec.Struct, forbid_unknown_fields=True):
        dataset: str

    class Recipe(msgspec.Struct, forbid_unknown_fields=True):
        data: Data
        train: Train = msgspec.field(default_factory=Train)

    return Recipe


def msgspec_message(text: str) -> str:
    import msgspec

    try:
        msgspec.toml.decode(text.encode(), type=msgspec_schema())
    except msgspec.DecodeError as error:  # TOML syntax (its tomllib's message, reworded)
        return f"{FILE}: {error}"
    except msgspec.ValidationError as error:  # "Object contains unknown field `epoch` - at `$.train`"
        return f"{FILE}: {error}"
    return "(accepted)"


# --- ours ---------------------------------------------------------------------------

def ours_message(text: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "x.toml"
        path.write_text(text)
        try:
            load_recipe(path)
        except RecipeError as error:
            return str(error).replace(str(path), FILE)
    return "(accepted)"


def lines(*functions) -> int:
    """Non-blank, non-comment, non-docstring source lines of `functions`."""
    count = 0
    for function in functions:
        body = inspect.getsource(function).splitlines()
        count += sum(1 for line in body if line.strip() and not line.strip().startswith(("#", '"""')))
    return count


def main() -> None:
    for case, text in CASES.items():
        print(f"## {case}")
        for name, message in (("ours", ours_message), ("pydantic", pydantic_message), ("msgspec", msgspec_message)):
            print(f"  {name:9s} {message(text)}")
    print(f"lines, schema + message adapter: pydantic {lines(pydantic_schema, pydantic_message)}, "
          f"msgspec {lines(msgspec_schema, msgspec_message)} (4 keys each)")


if __name__ == "__main__":
    main()
