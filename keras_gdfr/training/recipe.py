"""Recipes: one TOML file per experiment, validated completely before anything runs.

A recipe has five sections (every key optional except `data.dataset`; omitted
keys take the paper's values from `keras_gdfr.data.specs.DATASETS` and
`keras_gdfr.training.schedule`):

    [data]    dataset, source, data_dir, on_corrupt, limit_train, limit_test, classes, pipeline
    [augment] flip, pad, resize, normalize (`keras_gdfr.data.augment` says what each does)
    [model]   variant, and [model.overrides]: any knob of `variants.DEFAULTS`
    [train]   epochs, batch_size, lr, momentum, weight_decay, decay_exclude,
              label_smoothing, milestones, lr_gamma, seed, precision, jit_compile, backend,
              devices, sync_batchnorm
    [run]     dir, name

The dataclasses below are the schema: each field's metadata holds its check and
its default. `load_recipe` layers, lowest first: the defaults, the file,
`--set dotted.key=value` strings (value parsed as TOML, else taken as a bare
string), then the explicit keyword arguments (`--variant`, `--epochs`, ...).
Any problem raises `RecipeError` with a one-line message naming the file, the
dotted key and the offending value, e.g.
`recipes/cifar10.toml: train.epoch: unknown key; did you mean 'train.epochs'?`.

Milestones and `--epochs`: milestones belong to a schedule length. When the final
`train.epochs` differs from the file's (200 when the file does not say) and the
user did not `--set train.milestones`, the file's milestones (the paper's when it
has none) are scaled to the new length by `schedule.scale_milestones`:
round half up of `m * new / old`, clamped into [1, new - 1], duplicates dropped.
200 -> 100 epochs gives [30, 60, 80]; 200 -> 3 gives [1, 2]; 200 -> 1 gives [].

Why one file of ~770 lines: the value checks, the schema, the layering and the
recipe finder are one contract with one wording of errors (tests/test_recipe.py
asserts the messages); its sections are marked with rule lines.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import pathlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from keras_gdfr.data.augment import PIPELINES, default_pad, default_resize
from keras_gdfr.data.specs import DATASETS, DatasetSpec
from keras_gdfr.training import schedule
from keras_gdfr.variants import DEFAULTS, VARIANTS, variant_config


class RecipeError(ValueError):
    """A recipe problem, with a one-line message naming the file and the dotted key."""


SOURCES = ("auto", "tfds", "imagefolder", "gtsrb", "imagewoof")
ON_CORRUPT = ("skip", "fail")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
BACKENDS = ("", "torch", "tensorflow", "jax")

# Explicit keyword arguments of `load_recipe`: the dotted key each sets and the
# CLI flag that error messages name.
_ARGUMENT_KEYS = {
    "variant": ("model.variant", "--variant"),
    "epochs": ("train.epochs", "--epochs"),
    "data": ("data.data_dir", "--data"),
    "limit_train": ("data.limit_train", "--limit-train"),
    "limit_test": ("data.limit_test", "--limit-test"),
    "run_dir": ("run.dir", "--run-dir"),
}


# --------------------------------------------------------------------------
# Value checks: each returns the normalised value or raises _Invalid(problem).


class _Invalid(Exception):
    """A value's problem, before the file and key are attached."""

    def __init__(self, problem: str, subkey: str = ""):
        super().__init__(problem)
        self.problem = problem
        self.subkey = subkey  # for nested tables: the key below the checked one


Check = Callable[[Any], Any]

_TOML_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}


def _shown(value: Any) -> str:
    """A value as error messages show it: its repr and its TOML type."""
    kind = _TOML_TYPES.get(type(value), type(value).__name__)
    return f"{value!r} ({kind})"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _did_you_mean(word: str, options: Iterable[str], prefix: str = "") -> str:
    """"; did you mean 'prefix+closest'?" or "" when nothing is close."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean {prefix + close[0]!r}?" if close else ""


def _hint_or_known(hint: str, label: str, options: Iterable[str]) -> str:
    """An unknown name's suffix: the did-you-mean when there is one, else what is known."""
    return hint or f" ({label}: {', '.join(options)})"


def _integer(minimum: int | None = None) -> Check:
    wanted = "an integer" + (f" >= {minimum}" if minimum is not None else "")

    def check(value):
        if not _is_int(value) or (minimum is not None and value < minimum):
            raise _Invalid(f"expected {wanted}, got {_shown(value)}")
        return value

    return check


def _number(low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = True) -> Check:
    """A float in the interval from `low` to `high` (integers accepted)."""
    if high == math.inf:
        wanted = f"a number {'>' if low_open else '>='} {low:g}"
    else:
        wanted = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def check(value):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (value > low if low_open else value >= low)
        ok = ok and (value < high if high_open else value <= high)
        if not ok:
            raise _Invalid(f"expected {wanted}, got {_shown(value)}")
        return float(value)

    return check


def _of_type(kind: type, wanted: str) -> Check:
    def check(value):
        if not isinstance(value, kind):
            raise _Invalid(f"expected {wanted}, got {_shown(value)}")
        return value

    return check


_boolean = _of_type(bool, "true or false")
_string = _of_type(str, "a string")


def _choice(options: Sequence, what: str = "") -> Check:
    """One of `options`, of the options' own type (so `true` is not `1`)."""
    listed = ", ".join(repr(o) for o in options)

    def check(value):
        if any(type(value) is type(o) and value == o for o in options):
            return value
        if what and not isinstance(value, str):
            raise _Invalid(f"expected a {what} name, got {_shown(value)}")
        hint = _did_you_mean(value, [str(o) for o in options]) if isinstance(value, str) else ""
        if what:  # a name from a table: unknown dataset / variant / source
            known = f" (known: {listed})" if len(options) <= 8 or not hint else ""
            raise _Invalid(f"unknown {what} {value!r}{hint}{known}")
        raise _Invalid(f"expected one of {listed}, got {_shown(value)}{hint}")

    return check


def _list_of(item: Check, *, length: int | None = None, unique: bool = False) -> Check:
    """A TOML array whose items pass `item`, returned as a tuple."""

    def check(value):
        if not isinstance(value, (list, tuple)):
            raise _Invalid(f"expected an array, got {_shown(value)}")
        if length is not None and len(value) != length:
            raise _Invalid(f"expected an array of {length} items, got {list(value)!r}")
        items = []
        for position, element in enumerate(value):
            try:
                items.append(item(element))
            except _Invalid as error:
                raise _Invalid(f"item {position}: {error.problem}") from None
        if unique and len(set(items)) != len(items):
            raise _Invalid(f"expected distinct items, got {list(value)!r}")
        return tuple(items)

    return check


def _devices(value):
    """"auto" (every local device; torch: torchrun's processes) or a replica count >= 1."""
    if value == "auto" or (_is_int(value) and value >= 1):
        return value
    raise _Invalid(f"expected \"auto\" or an integer >= 1, got {_shown(value)}")


def _class_name(value):
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"expected a non-empty string, got {_shown(value)}")
    return value


def _classes(value):
    names = _list_of(_class_name, unique=True)(value)
    if len(names) == 1:
        raise _Invalid(f"expected no classes (all) or at least 2, got {list(names)!r}")
    return names


def _regex(value):
    _string(value)
    try:
        re.compile(value)
    except re.error as error:
        raise _Invalid(f"invalid regular expression {value!r}: {error}") from None
    return value


def _milestones(value):
    """Ascending positive epochs (the upper bound, `epochs`, is checked later)."""
    epochs = _list_of(_integer(minimum=1))(value)
    if any(b <= a for a, b in zip(epochs, epochs[1:])):
        raise _Invalid(f"expected strictly ascending epochs, got {list(epochs)!r}")
    return epochs


def _knob_check(knob: str) -> Check:
    """The check of one `variants.DEFAULTS` knob for `[model.overrides]`.

    Sizes are open-ended; every other knob may take the values that the named
    variants use (e.g. `upsample_kernel` in 2, 4, ..., 10; `frm_position` A-D),
    so the variant table stays the single source of what is valid.
    """
    default = DEFAULTS[knob]
    if knob == "reduction":
        return _integer(minimum=1)
    if isinstance(default, bool):
        return _boolean
    if isinstance(default, tuple):
        return _list_of(_integer(minimum=1), length=len(default))
    values = {default} | {spec[knob] for spec in VARIANTS.values() if knob in spec}
    return _choice(sorted(values))


_KNOB_CHECKS = {knob: _knob_check(knob) for knob in DEFAULTS}


def _overrides(value):
    if not isinstance(value, Mapping):
        raise _Invalid(f"expected a table of model knobs, got {_shown(value)}")
    checked = {}
    for knob, knob_value in value.items():
        if knob not in _KNOB_CHECKS:
            hint = _hint_or_known(_did_you_mean(knob, _KNOB_CHECKS, "model.overrides."), "knobs", _KNOB_CHECKS)
            raise _Invalid(f"unknown model knob{hint}", subkey=knob)
        try:
            checked[knob] = _KNOB_CHECKS[knob](knob_value)
        except _Invalid as error:
            raise _Invalid(error.problem, subkey=knob) from None
    return checked


# --------------------------------------------------------------------------
# The schema: typed sections whose fields carry their check and default.

_REQUIRED = object()


def _key(check: Check, default: Any = _REQUIRED, *, derive: Callable | None = None, text: bool = False):
    """A recipe key: its check, and a static `default` or one `derive`d from the dataset.

    `text` marks string-valued keys, for which a `--set` value is always taken
    as text (so `run.name=2024` is the name "2024", not an integer).
    """
    return dataclasses.field(metadata={"check": check, "default": default, "derive": derive, "text": text})


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """`[data]`: which dataset, from where, and how much of it."""

    dataset: str = _key(_choice(tuple(DATASETS), "dataset"), text=True)
    source: str = _key(_choice(SOURCES, "source"), "auto", text=True)
    data_dir: str = _key(_string, "", text=True)  # "" = the default tfds folder
    on_corrupt: str = _key(_choice(ON_CORRUPT), "skip", text=True)
    limit_train: int = _key(_integer(minimum=0), 0)  # 0 = the whole split
    limit_test: int = _key(_integer(minimum=0), 0)
    classes: tuple[str, ...] = _key(_classes, ())  # () = every class
    pipeline: str = _key(_choice(PIPELINES), "auto", text=True)  # auto | device | tf.data


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """`[augment]`: the paper's training augmentation (section 2.1)."""

    flip: bool = _key(_boolean, derive=lambda spec: spec.flip)
    pad: int = _key(_integer(minimum=0), derive=default_pad)  # zero padding before the random crop
    resize: int = _key(_integer(minimum=1), derive=default_resize)  # shorter side before the crop
    normalize: bool = _key(_boolean, True)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """`[model]`: a named variant plus knob overrides."""

    variant: str = _key(_choice(tuple(VARIANTS), "variant"), "gdfrnet", text=True)
    overrides: dict = _key(_overrides, {})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """`[train]`: the paper's optimiser, schedule and loss (Table 2), and run mechanics."""

    epochs: int = _key(_integer(minimum=1), schedule.PAPER_EPOCHS)
    batch_size: int = _key(_integer(minimum=1), derive=lambda spec: spec.batch_size)
    lr: float = _key(_number(0, low_open=True), schedule.PAPER_LR)
    momentum: float = _key(_number(0, 1), schedule.MOMENTUM)
    weight_decay: float = _key(_number(0), schedule.WEIGHT_DECAY)
    decay_exclude: tuple[str, ...] = _key(_list_of(_regex), ())  # () = all decay, as PyTorch
    label_smoothing: float = _key(_number(0, 1), schedule.LABEL_SMOOTHING)
    milestones: tuple[int, ...] = _key(_milestones, schedule.PAPER_MILESTONES)
    lr_gamma: float = _key(_number(0, low_open=True), schedule.PAPER_GAMMA)
    seed: int = _key(_integer(minimum=0), 0)
    precision: str = _key(_choice(PRECISIONS), "float32", text=True)
    jit_compile: bool = _key(_boolean, False)
    backend: str = _key(_choice(BACKENDS), "", text=True)  # "" = KERAS_BACKEND
    devices: Any = _key(_devices, "auto")  # "auto" | N replicas (docs/distributed.md)
    sync_batchnorm: bool = _key(_boolean, True)  # batch moments over all replicas


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """`[run]`: where the run directory goes."""

    dir: str = _key(_string, "runs", text=True)
    name: str = _key(_string, "", text=True)  # "" = automatic


_SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "augment": AugmentConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "run": RunConfig,
}


def _section_keys(section: str) -> list[str]:
    return [f.name for f in dataclasses.fields(_SECTIONS[section])]


def _all_dotted_keys() -> list[str]:
    return [f"{s}.{k}" for s in _SECTIONS for k in _section_keys(s)]


def _is_text_key(dotted: str) -> bool:
    """Whether a dotted key takes a string (see `_key`'s `text`)."""
    parts = dotted.split(".")
    if parts[:2] == ["model", "overrides"] and len(parts) == 3:
        return isinstance(DEFAULTS.get(parts[2]), str)
    if len(parts) == 2 and parts[0] in _SECTIONS:
        fields = {f.name: f for f in dataclasses.fields(_SECTIONS[parts[0]])}
        return parts[1] in fields and fields[parts[1]].metadata["text"]
    return False


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A resolved recipe: every key present, checked, and normalised.

    Build one with `load_recipe` or `Recipe.from_dict`. `to_dict()` gives the
    JSON-able form written to a run directory's `recipe.json`.
    """

    data: DataConfig
    augment: AugmentConfig
    model: ModelConfig
    train: TrainConfig
    run: RunConfig
    origin: str = dataclasses.field(default="", compare=False)  # the file it came from

    @property
    def spec(self) -> DatasetSpec:
        """The dataset's facts (`DATASETS[data.dataset]`)."""
        return DATASETS[self.data.dataset]

    def model_overrides(self) -> dict:
        """The `GDFRNet` knob overrides: the dataset's stem where it fixes one (256 px:
        7x7, `DatasetSpec.stem`), then `[model.overrides]`."""
        stem = {"stem": self.spec.stem} if self.spec.stem else {}
        return {**stem, **self.model.overrides}

    def model_config(self) -> dict:
        """The `GDFRNet` keyword arguments: the variant's, then the overrides."""
        config = variant_config(self.model.variant)
        config.update(self.model_overrides())
        return config

    def summary(self) -> str:
        """One line: dataset, variant, schedule."""
        overrides = ", ".join(f"{k}={_plain(v)}" for k, v in self.model.overrides.items())
        variant = self.model.variant + (f" ({overrides})" if overrides else "")
        t = self.train
        milestones = "/".join(str(m) for m in t.milestones) or "none"
        return (
            f"{self.data.dataset}, {variant}: {t.epochs} epochs, batch {t.batch_size}, "
            f"lr {t.lr:g} x{t.lr_gamma:g} at {milestones}"
        )

    def to_dict(self) -> dict:
        """The resolved recipe as plain JSON-able data (sections of keys)."""
        return {name: _plain(dataclasses.asdict(getattr(self, name))) for name in _SECTIONS}

    @classmethod
    def from_dict(cls, data: Mapping, *, origin: str = "recipe.json") -> "Recipe":
        """Check and resolve a recipe given as nested dicts (e.g. a run's `recipe.json`).

        Raises:
            RecipeError: as `load_recipe` does, naming `origin`.
        """
        return _resolve(data, origin=origin, sources={})


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively, for JSON."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------
# Resolution: raw nested dicts -> Recipe.


def _fail(origin: str, key: str, problem: str, sources: Mapping[str, str]) -> RecipeError:
    """The RecipeError for `key`, naming the --set/flag its value came from, if any."""
    parts = key.split(".")
    prefixes = (".".join(parts[:n]) for n in range(len(parts), 0, -1))
    source = next((sources[p] for p in prefixes if p in sources), None)
    if source is None:  # e.g. an unknown section, set as "trian.epochs=3"
        source = next((v for k, v in sources.items() if k.startswith(key + ".")), None)
    suffix = f" (from {source})" if source else ""
    return RecipeError(f"{origin}: {key}: {problem}{suffix}")


def _checked(check: Check, value: Any, origin: str, key: str, sources: Mapping[str, str]) -> Any:
    """`check(value)`, with its problem turned into a RecipeError naming `key`."""
    try:
        return check(value)
    except _Invalid as error:
        subkey = f"{key}.{error.subkey}" if error.subkey else key
        raise _fail(origin, subkey, error.problem, sources) from None


def _section_hint(name: str) -> str:
    """Did-you-mean for an unknown top-level name: a section, or a key's full dotted name."""
    # A key written above every [section] lands at the top level: point to its section.
    matches = [k for k in _all_dotted_keys() if k.endswith("." + name)]
    return f"; did you mean {matches[0]!r}?" if matches else _did_you_mean(name, _SECTIONS)


def _check_top_level(raw: Mapping, origin: str, sources: Mapping[str, str]) -> None:
    for name, value in raw.items():
        if name not in _SECTIONS:
            hint = _hint_or_known(_section_hint(name), "sections", _SECTIONS)
            raise _fail(origin, name, f"unknown section{hint}", sources)
        if not isinstance(value, Mapping):
            raise _fail(origin, name, f"expected a table [{name}], got {_shown(value)}", sources)


def _resolve_section(
    section: str, raw: Mapping, spec: DatasetSpec | None, origin: str, sources: Mapping[str, str]
):
    """Check one section's keys and fill its defaults; returns the section dataclass."""
    cls = _SECTIONS[section]
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]
    for name in raw:
        if name not in names:
            hint = _hint_or_known(_did_you_mean(name, names, f"{section}."), "keys", names)
            raise _fail(origin, f"{section}.{name}", f"unknown key{hint}", sources)
    values = {}
    for f in fields:
        key = f"{section}.{f.name}"
        if f.name in raw:
            values[f.name] = _checked(f.metadata["check"], raw[f.name], origin, key, sources)
        elif f.metadata["derive"] is not None:
            values[f.name] = f.metadata["derive"](spec)
        elif f.metadata["default"] is _REQUIRED:  # only data.dataset
            problem = f"required key is missing (one of: {', '.join(DATASETS)})"
            raise _fail(origin, key, problem, sources)
        else:
            values[f.name] = copy.deepcopy(f.metadata["default"])  # no shared {} between recipes
    return cls(**values)


def _check_milestones_fit(
    milestones: Sequence[int], epochs: int, origin: str, sources: Mapping[str, str]
) -> None:
    """Milestones must fall within the run: 1..epochs."""
    late = [m for m in milestones if m > epochs]
    if late:
        problem = (
            f"milestone {late[0]} is past the last epoch, {epochs} (train.epochs); "
            f"got {list(milestones)!r}"
        )
        raise _fail(origin, "train.milestones", problem, sources)


def _check_resize_fits(resize: int, spec: DatasetSpec, origin: str, sources: Mapping[str, str]) -> None:
    """The crop (the model's input side) must fit in the resized image."""
    if resize < spec.image_size:
        problem = f"{resize} is smaller than {spec.name}'s {spec.image_size}-px crop"
        raise _fail(origin, "augment.resize", problem, sources)


def _resolve(raw: Mapping, *, origin: str, sources: Mapping[str, str]) -> Recipe:
    """Check a whole raw recipe (nested dicts) and build the Recipe."""
    if not isinstance(raw, Mapping):
        raise RecipeError(f"{origin}: expected a table of sections, got {_shown(raw)}")
    _check_top_level(raw, origin, sources)
    data = _resolve_section("data", raw.get("data", {}), None, origin, sources)
    spec = DATASETS[data.dataset]
    sections = {"data": data}
    for name in ("augment", "model", "train", "run"):
        sections[name] = _resolve_section(name, raw.get(name, {}), spec, origin, sources)
    if "milestones" not in raw.get("train", {}):
        # The paper's milestones belong to 200 epochs: follow the run's length.
        paper = schedule.scale_milestones(
            schedule.PAPER_MILESTONES, schedule.PAPER_EPOCHS, sections["train"].epochs
        )
        sections["train"] = dataclasses.replace(sections["train"], milestones=paper)
    _check_milestones_fit(sections["train"].milestones, sections["train"].epochs, origin, sources)
    _check_resize_fits(sections["augment"].resize, spec, origin, sources)
    return Recipe(**sections, origin=origin)


# --------------------------------------------------------------------------
# Layering: file, --set strings, keyword arguments.

_SET_PATTERN = re.compile(r"^\s*([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+)\s*=(.*)$", re.DOTALL)


def parse_set(text: str, *, origin: str = "--set") -> tuple[str, Any]:
    """Split a `--set` string `dotted.key=value` into the key and its value.

    The value is read as a TOML value (`3`, `0.05`, `true`, `[60, 120]`,
    `"text"`, `{reduction = 8}`); anything that is not valid TOML is taken as a
    bare string (`data.source=tfds`). String-valued keys always take the text.

    Raises:
        RecipeError: when `text` is not `dotted.key=value`.
    """
    match = _SET_PATTERN.match(text) if isinstance(text, str) else None
    undotted = re.match(r"^\s*([A-Za-z0-9_-]+)\s*=", text) if isinstance(text, str) else None
    if undotted and not match:
        name = undotted.group(1)
        if name in _SECTIONS:  # a section, not a key: suggesting the same name back would not help
            first = _section_keys(name)[0]
            hint = f"; [{name}] is a section: set one of its keys, e.g. {name}.{first}=..."
        else:
            hint = _section_hint(name) or "; keys are section.key, e.g. train.epochs"
        raise RecipeError(f"{origin}: --set {text!r}: {name!r} is not a dotted key{hint}")
    if match and not match.group(2).strip():
        raise RecipeError(f"{origin}: --set {text!r}: missing value after '='")
    if not match:
        raise RecipeError(
            f"{origin}: --set {text!r}: expected KEY=VALUE with a dotted key, "
            "e.g. train.epochs=3 or model.overrides.reduction=8"
        )
    key, value_text = match.group(1), match.group(2).strip()
    return key, _parse_value(key, value_text)


def _parse_value(key: str, text: str) -> Any:
    try:
        parsed = tomllib.loads(f"value = {text}")
    except tomllib.TOMLDecodeError:
        return text
    if set(parsed) != {"value"}:
        return text  # e.g. "3\nother = 4": not one value
    value = parsed["value"]
    if _is_text_key(key) and not isinstance(value, str):
        return text
    return value


def _put(raw: dict, key: str, value: Any, origin: str, label: str) -> None:
    """Set dotted `key` in the nested dict `raw`, creating tables on the way."""
    parts = key.split(".")
    table = raw
    for depth, part in enumerate(parts[:-1]):
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            parent = ".".join(parts[: depth + 1])
            raise RecipeError(f"{origin}: {key}: {parent} is not a table, cannot set a key inside it (from {label})")
    table[parts[-1]] = value


def _read_toml(path: pathlib.Path, shown: str) -> dict:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        # A UTF-8 byte-order mark (Windows editors write one) is not TOML, but harmless: drop it.
        return tomllib.loads(data.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except tomllib.TOMLDecodeError as error:
        message = " ".join(str(error).split())
        raise RecipeError(f"{shown}: TOML syntax error: {message}") from None
    except OSError as error:
        raise RecipeError(f"{shown}: cannot read recipe: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise RecipeError(f"{shown}: cannot read recipe: not UTF-8 text ({error.reason})") from None


def _file_schedule(raw: Mapping, origin: str) -> tuple[int, tuple[int, ...] | None]:
    """The file's own schedule length and milestones (checked), before any override."""
    train = raw.get("train", {})
    if not isinstance(train, Mapping):
        return schedule.PAPER_EPOCHS, None  # _resolve reports the malformed section
    epochs = _checked(_integer(minimum=1), train.get("epochs", schedule.PAPER_EPOCHS), origin, "train.epochs", {})
    if "milestones" not in train:
        return epochs, None
    milestones = _checked(_milestones, train["milestones"], origin, "train.milestones", {})
    _check_milestones_fit(milestones, epochs, origin, {})
    return epochs, milestones


def load_recipe(
    path: str | pathlib.Path,
    *,
    variant: str | None = None,
    sets: Sequence[str] = (),
    epochs: int | None = None,
    data: str | None = None,
    limit_train: int | None = None,
    limit_test: int | None = None,
    run_dir: str | None = None,
) -> Recipe:
    """Read, layer and check a recipe; nothing runs before this succeeds.

    Args:
        path: a `.toml` file, or a recipe name such as "cifar10" (see `find_recipe`).
        variant: `--variant`, sets `model.variant`.
        sets: `--set` strings "dotted.key=value" (see `parse_set`), applied in order.
        epochs: `--epochs`, sets `train.epochs` (milestones scale, see module docstring).
        data: `--data`, sets `data.data_dir` (a tfds folder or an image folder).
        limit_train, limit_test: `--limit-train`/`--limit-test`, images used (0 = all).
        run_dir: `--run-dir`, sets `run.dir`.

    Raises:
        RecipeError: for any problem, with a one-line message naming the file and key.
    """
    file = find_recipe(path)
    shown = str(path) if pathlib.Path(path).is_file() else str(file)  # as the user wrote it
    raw = _read_toml(file, shown)
    file_epochs, file_milestones = _file_schedule(raw, shown)

    sources: dict[str, str] = {}
    for text in sets:
        key, value = parse_set(text, origin=shown)
        _put(raw, key, value, shown, f"--set {text}")
        sources[key] = f"--set {text}"
    arguments = dict(variant=variant, epochs=epochs, data=data, limit_train=limit_train,
                     limit_test=limit_test, run_dir=run_dir)
    for argument, value in arguments.items():
        if value is not None:
            key, flag = _ARGUMENT_KEYS[argument]
            _put(raw, key, value, shown, f"{flag} {value}")
            sources[key] = f"{flag} {value}"

    _rescale_milestones(raw, file_epochs, file_milestones, sources)
    return _resolve(raw, origin=shown, sources=sources)


def _rescale_milestones(
    raw: dict, file_epochs: int, file_milestones: tuple[int, ...] | None, sources: Mapping[str, str]
) -> None:
    """Scale the file's milestones to an overridden `train.epochs` (module docstring)."""
    train = raw.get("train")
    if not isinstance(train, dict) or file_milestones is None or "train.milestones" in sources:
        return  # no file milestones: _resolve scales the paper's to the final length
    new_epochs = train.get("epochs", file_epochs)
    if _is_int(new_epochs) and new_epochs >= 1 and new_epochs != file_epochs:
        train["milestones"] = list(schedule.scale_milestones(file_milestones, file_epochs, new_epochs))


# --------------------------------------------------------------------------
# Finding recipes.


def recipe_folders() -> list[pathlib.Path]:
    """Where recipes are looked up by name, first match wins.

    `./recipes`, then `recipes/` beside the `keras_gdfr` package's parent (the
    repository, for an editable install), then `keras_gdfr/recipes` (packaged).
    """
    import keras_gdfr

    package = pathlib.Path(keras_gdfr.__file__).resolve().parent
    candidates = [pathlib.Path.cwd() / "recipes", package.parent / "recipes", package / "recipes"]
    folders: list[pathlib.Path] = []
    for folder in candidates:
        if folder.is_dir() and all(folder.resolve() != f.resolve() for f in folders):
            folders.append(folder)
    return folders


def _known_recipes() -> dict[str, pathlib.Path]:
    found: dict[str, pathlib.Path] = {}
    for folder in recipe_folders():
        for file in sorted(folder.glob("*.toml")):
            found.setdefault(file.stem, file)
    return found


def find_recipe(name_or_path: str | pathlib.Path) -> pathlib.Path:
    """The recipe file for a path, or for a name like "cifar10" (see `recipe_folders`).

    Raises:
        RecipeError: when no such file or recipe exists (with a did-you-mean).
    """
    text = str(name_or_path)
    path = pathlib.Path(text)
    if path.is_file():
        return path
    looks_like_path = path.suffix == ".toml" or "/" in text or "\\" in text
    if path.exists() and (looks_like_path or text not in _known_recipes()):
        what = "is a folder, not a .toml file" if path.is_dir() else "not a regular file"
        raise RecipeError(f"{text}: cannot read recipe: {what}")
    if looks_like_path:
        siblings = [p.name for p in path.parent.glob("*.toml") if p.name != path.name] if path.parent.is_dir() else []
        hint = _did_you_mean(path.name, siblings, f"{path.parent}/")
        raise RecipeError(f"{text}: cannot read recipe: no such file{hint}")
    known = _known_recipes()
    if text in known:
        return known[text]
    hint = _did_you_mean(text, known)
    listed = f" (known: {', '.join(known)})" if known else " (no recipes folder found)"
    raise RecipeError(f"{text}: no such recipe file or recipe name{hint}{listed}")


def list_recipes(folder: str | pathlib.Path | None = None) -> list[tuple[str, pathlib.Path, str, str]]:
    """Every recipe as (name, path, dataset, one-line summary), sorted by name.

    Args:
        folder: a folder of `.toml` recipes; default: all of `recipe_folders()`.

    A recipe that does not load is still listed, with dataset "" and its
    error message as the summary, so that `gdfr recipes` and the TUI show it.
    """
    if folder is None:
        files = _known_recipes()
    else:
        files = {file.stem: file for file in sorted(pathlib.Path(folder).glob("*.toml"))}
    rows = []
    for name, file in sorted(files.items()):
        try:
            recipe = load_recipe(file)
        except RecipeError as error:
            rows.append((name, file, "", f"invalid: {error}"))
        else:
            rows.append((name, file, recipe.data.dataset, recipe.summary()))
    return rows
