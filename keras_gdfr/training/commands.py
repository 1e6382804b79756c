"""`gdfr train`, `gdfr eval`, `gdfr info`, `gdfr recipes`.

Bad input (recipe, flags, data, checkpoints) ends in one line on stderr that
names it and a non-zero exit (2 for a bad recipe or flag, 1 for data and run
failures), never a traceback; nothing already saved is touched.
Keras is imported inside the commands, after the backend is settled.

Why one file of ~450 lines: the four commands share the recipe and backend helpers at
the top and one wording of errors; each command is a section marked with a rule line.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

import click

BACKENDS = ("torch", "tensorflow", "jax")


def _fail(message: str, code: int = 1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _ensure_backend(backend: str) -> None:
    """Re-run this command under `backend` when the recipe asks for another one than KERAS_BACKEND."""
    current = os.environ.get("KERAS_BACKEND", "tensorflow")
    if not backend or backend == current:
        return
    if "keras" in sys.modules and os.environ.get("GDFR_BACKEND_SWITCHED"):
        _fail(f"could not switch the Keras backend to {backend!r} (KERAS_BACKEND={current!r})")
    env = {**os.environ, "KERAS_BACKEND": backend, "GDFR_BACKEND_SWITCHED": "1"}
    os.execve(sys.executable, [sys.executable, "-m", "keras_gdfr.cli", *sys.argv[1:]], env)


def _absolute(path: str | None) -> str | None:
    """--data as an absolute path: recipe.json keeps it, and a --resume from another folder must find it."""
    return os.path.abspath(os.path.expanduser(path)) if path else path


def _load_recipe(recipe_path, **kwargs):
    from keras_gdfr.training.recipe import RecipeError, load_recipe

    try:
        return load_recipe(recipe_path, **kwargs)
    except RecipeError as error:
        _fail(str(error), 2)


def _recipe_from_run(run_dir: pathlib.Path):
    from keras_gdfr.training.events import RECIPE_FILE
    from keras_gdfr.training.recipe import Recipe, RecipeError

    path = run_dir / RECIPE_FILE
    if not path.is_file():
        _fail(f"{run_dir}: not a run directory (no recipe.json)", 2)
    try:
        return Recipe.from_dict(json.loads(path.read_text(encoding="utf-8")), origin=str(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        _fail(f"{path}: not valid JSON ({error})", 2)
    except OSError as error:
        _fail(f"{path}: cannot read ({error.strerror or error})", 2)
    except RecipeError as error:
        _fail(str(error), 2)


# ---------------------------------------------------------------------------


@click.command()
@click.argument("recipe", required=False)
@click.option("--variant", help="Model variant (see `gdfr recipes`); overrides model.variant.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any recipe key, e.g. train.lr=0.05 (repeatable).")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs; the milestones scale proportionally. With --resume: extend the run to N epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Batch size (train.batch_size).")
@click.option("--data", help="Offline data: an ImageFolder dir or .zip, the official archive folder, or a tfds data_dir.")
@click.option("--limit-train", type=click.IntRange(min=0), help="Use a deterministic class-balanced subset of N training images.")
@click.option("--limit-test", type=click.IntRange(min=0), help="Use a deterministic class-balanced subset of N test images.")
@click.option("--run-dir", type=click.Path(file_okay=False), help="The run directory to create (default: runs/<dataset>-<variant>-<time>).")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), help="Continue the run in this directory from its last checkpoint.")
@click.option("--devices", help='Data-parallel replicas: "auto" or N (train.devices; also with --resume). See docs/distributed.md.')
def train(recipe, variant, sets, epochs, batch_size, data, limit_train, limit_test, run_dir, resume_dir, devices):
    """Train a variant on a recipe's dataset with the paper's schedule.

    RECIPE is a .toml file or a recipe name (cifar10, cifar100, svhn, gtsrb,
    imagenette, imagewoof). With --resume, the recipe is read from the run; --epochs N
    then extends it (a finished run too) with the schedule of an N-epoch run.
    """
    if resume_dir:
        changed = [flag for flag, value in (("RECIPE", recipe), ("--variant", variant), ("--set", sets),
                   ("--batch-size", batch_size), ("--data", data),
                   ("--limit-train", limit_train), ("--limit-test", limit_test), ("--run-dir", run_dir)) if value]
        if changed:
            _fail(f"--resume continues a run with its own recipe; drop {', '.join(changed)}", 2)
        run_path = pathlib.Path(resume_dir)
        if not run_path.is_dir():
            _fail(f"--resume {resume_dir}: no such run directory", 2)
        parsed = _resumed_recipe(_recipe_from_run(run_path), run_path, epochs)
    else:
        if not recipe:
            _fail("missing RECIPE (a .toml file or a recipe name); see `gdfr recipes`", 2)
        sets = list(sets) + ([f"train.batch_size={batch_size}"] if batch_size else [])
        parsed = _load_recipe(recipe, variant=variant, sets=sets, epochs=epochs, data=_absolute(data),
                              limit_train=limit_train, limit_test=limit_test)
        run_path = None
    parsed = _with_devices(parsed, devices)
    _ensure_backend(parsed.train.backend or (_resume_backend(run_path) if resume_dir else ""))
    _train(parsed, run_path, run_dir, resume=bool(resume_dir))


def _resumed_recipe(recipe, run_dir: pathlib.Path, epochs: int | None):
    """The recipe a `--resume` trains: the run's, or extended to `--epochs`; a complete run ends here (exit 0)."""
    from keras_gdfr.training.extend import ExtendError, completed_line, epochs_trained, extended

    if epochs is not None:
        try:
            longer = extended(recipe, epochs, epochs_trained(run_dir))
        except ExtendError as error:
            _fail(f"{run_dir}: {error}", 2)
        if longer is not recipe:
            click.echo(f"extending {run_dir}: {recipe.train.epochs} -> {epochs} epochs, milestones "
                       f"{list(recipe.train.milestones)} -> {list(longer.train.milestones)} "
                       "(the recipe's rule for a new length; docs/run-directory.md)")
        recipe = longer
    done = completed_line(run_dir, recipe.train.epochs)
    if done:
        click.echo(done)
        sys.exit(0)
    return recipe


def _resume_backend(run_path: pathlib.Path) -> str:
    """The backend to resume under: the run's own when KERAS_BACKEND is unset (Keras would pick
    tensorflow, or ~/.keras/keras.json's); one that is set is kept, and the trainer refuses it
    when it is not the run's (keras_gdfr.training.run._check_resumable)."""
    if os.environ.get("KERAS_BACKEND"):
        return ""
    from keras_gdfr.training.runlock import run_backend

    return run_backend(run_path) or ""


def _with_devices(recipe, devices: str | None):
    """`--devices` over train.devices (a resumed run may change it: the global batch stays)."""
    if devices is None:
        return recipe
    import dataclasses

    from keras_gdfr.training.recipe import Recipe, RecipeError

    raw = recipe.to_dict()
    raw["train"]["devices"] = devices if devices == "auto" else (int(devices) if devices.isdigit() else devices)
    try:
        return dataclasses.replace(Recipe.from_dict(raw, origin="--devices"), origin=recipe.origin)
    except RecipeError as error:
        _fail(str(error).replace("train.devices", f"--devices {devices}"), 2)


def _warnings_in_one_line() -> None:
    """A DataWarning (skipped images) as one "warning: ..." line, without Python's source line under it."""
    import warnings

    from keras_gdfr.data.errors import DataWarning

    show = warnings.showwarning

    def one_line(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, DataWarning):
            click.echo(f"warning: {message}", err=True)
        else:
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = one_line


def schedule_line(train) -> str:
    """The learning rate of every epoch, in words: "lr 0.1 for epochs 1-60, 0.02 for 61-120, ..."."""
    from keras_gdfr.training.schedule import lr_at_epoch

    stages: list[list] = []  # [rate, first epoch, last epoch]
    for epoch in range(1, train.epochs + 1):
        rate = lr_at_epoch(epoch, lr=train.lr, milestones=train.milestones, gamma=train.lr_gamma)
        if stages and stages[-1][0] == rate:
            stages[-1][2] = epoch
        else:
            stages.append([rate, epoch, epoch])
    parts = []
    for rate, first, last in stages:
        span = str(first) if first == last else f"{first}-{last}"
        if not parts:
            span = ("epoch " if first == last else "epochs ") + span
        parts.append(f"{rate:.3g} for {span}")
    return f"schedule: lr {', '.join(parts)} (SGD momentum {train.momentum:g}, batch {train.batch_size})"


def _train(recipe, run_path, run_dir, *, resume: bool):
    from keras_gdfr.data.errors import DataError
    from keras_gdfr.training.checkpoints import CheckpointError
    from keras_gdfr.training.run import DiskFull, RunError, default_run_dir, run

    run_path = run_path or (pathlib.Path(run_dir) if run_dir else default_run_dir(recipe))
    click.echo(f"run directory: {run_path}\n{recipe.summary()}\n{schedule_line(recipe.train)}")
    _warnings_in_one_line()
    try:
        result = run(recipe, run_path, resume=resume)
    except DiskFull as error:
        click.echo(f"error: {error}", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        # HDF5 keeps a file it failed to write open and crashes in its exit handler (a segfault);
        # everything of the run is on disk and fsynced already, so skip the exit handlers.
        os._exit(1)
    except (RunError, DataError, CheckpointError) as error:
        _fail(str(error))
    except Exception as error:  # the events file already holds the error event
        _fail(f"{type(error).__name__}: {error} (run directory: {run_path})")
    test = f", test accuracy {result.test['accuracy']:.4f}" if result.test else ""
    from keras_gdfr.training.schedule import epochs_text

    click.echo(f"{result.status}: {epochs_text(result.epochs_done)}{test} -> {result.run_dir}")
    if result.status == "failed":
        _fail(f"{result.message} (run directory: {result.run_dir})")
    if result.status == "interrupted":
        _exit_now(130)


def _exit_now(code: int) -> None:
    """Exit without waiting for worker threads (a tfds download stopped by SIGINT/SIGTERM retries for minutes)."""
    import threading

    if any(t is not threading.main_thread() and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # everything of the run is on disk (fsynced) already
    sys.exit(code)


# ---------------------------------------------------------------------------


@click.command(name="eval")
@click.argument("target", type=click.Path(exists=True))
@click.option("--data", help="Evaluate on this offline copy instead of the run's data source "
              "(written to eval-<data>.json: the run's own eval.json is kept).")
@click.option("--recipe", "recipe_path", help="Recipe for a bare .keras file (dataset, normalisation).")
@click.option("--out", type=click.Path(dir_okay=False), help="Where to write the JSON (default: eval.json beside the model; "
              "eval-<data>.json with --data).")
def eval_command(target, data, recipe_path, out):
    """Test accuracy, per-class accuracy, confusion matrix and ROC/AUC of a run or a .keras model."""
    target = pathlib.Path(target)
    if target.is_dir():
        recipe = _recipe_from_run(target)
        model_file, out_dir = target / "model.keras", target
    else:
        if not recipe_path:
            _fail(f"{target}: a bare model file needs --recipe to know its dataset", 2)
        recipe = _load_recipe(recipe_path)
        model_file, out_dir = target, target.parent
    if data:
        recipe = _with_data(recipe, _absolute(data))
    out_path = pathlib.Path(out) if out else out_dir / eval_file_name(data)
    _check_writable(out_path)  # before the evaluation: a read-only or missing folder fails now, not after it
    _ensure_backend(recipe.train.backend)
    _warnings_in_one_line()

    from keras_gdfr.data.errors import DataError
    from keras_gdfr.saving import evaluation_model
    from keras_gdfr.training.run import evaluate, load_test_split

    if target.is_dir() and not model_file.is_file():
        _fail(f"{model_file}: no such model file ({_why_no_model(target)})")
    model = _load_model_or_fail(model_file)
    _check_image_size(model_file, model, recipe)
    try:
        test_data = load_test_split(recipe)
    except DataError as error:
        _fail(str(error))
    _check_eval_classes(target, model, test_data)
    # The pipeline normalises: a model with its preprocessing inside gets it removed here (unless its own differs).
    model, recipe, warning = evaluation_model(model, recipe)
    if warning:
        click.echo(f"warning: {model_file}: {warning}", err=True)
    report = evaluate(model, test_data, recipe, str(model_file))
    from keras_gdfr.evaluation import save_evaluation_report

    try:
        save_evaluation_report(report, out_path)
    except OSError as error:
        _fail(f"{out_path}: cannot write the evaluation ({error.strerror or error}); nothing was written")
    click.echo(f"accuracy {report['accuracy']:.4f}, loss {report['loss']:.4f}, macro AUC {report['macro_auc']:.4f} "
               f"on {report['num_examples']} images -> {out_path}")


def eval_file_name(data: str | None) -> str:
    """`eval.json`, the run's own evaluation; `eval-<name>.json` for an evaluation on other data (--data)."""
    if not data:
        return "eval.json"
    name = pathlib.Path(data.rstrip("/")).name
    for suffix in (".zip", ".tar.gz", ".tgz", ".tar"):
        name = name.removesuffix(suffix)
    return f"eval-{''.join(c if c.isalnum() or c in '-_.' else '_' for c in name) or 'data'}.json"


def _check_writable(out_path: pathlib.Path) -> None:
    from keras_gdfr.atomic import check_writable

    try:
        check_writable(out_path.parent)
    except OSError as error:
        _fail(f"{out_path}: cannot write there ({out_path.parent}: {error.strerror or error}); nothing was evaluated")


def _why_no_model(run_dir: pathlib.Path) -> str:
    from keras_gdfr.training.events import EVENTS_FILE

    if not (run_dir / EVENTS_FILE).is_file():
        return "not a run directory: no events.jsonl"
    return f"the run has not completed; its checkpoints are in {run_dir / 'checkpoints'}"


def _load_model_or_fail(model_file: pathlib.Path):
    from keras_gdfr.saving import ModelFileError, load_model_file

    try:
        return load_model_file(model_file)
    except ModelFileError as error:
        _fail(str(error))


def _check_image_size(model_file: pathlib.Path, model, recipe) -> None:
    """A 32 px model cannot take the 256 px images of another recipe (and the reverse)."""
    from keras_gdfr.saving import model_image_size

    try:
        size = model_image_size(model)
    except ValueError:
        return
    if size != recipe.spec.image_size:
        _fail(f"{model_file}: the model takes {size} px images, the recipe's {recipe.spec.name} has "
              f"{recipe.spec.image_size} px ({recipe.origin})")


def _check_eval_classes(target: pathlib.Path, model, test_data) -> None:
    """The test classes must be those the model was trained on, else every label is shifted."""
    from keras_gdfr.training.events import read_events

    outputs = model.output_shape[-1]
    if outputs != test_data.num_classes:
        _fail(f"{test_data.description}: {test_data.num_classes} classes, but the model has {outputs} outputs")
    trained = []
    if (target / "events.jsonl").is_file():
        trained = [e.get("class_names") for e in read_events(target) if e["event"] == "run_start"][-1:]
    if trained and trained[0] and list(trained[0]) != test_data.class_names:
        _fail(f"{test_data.description}: classes {', '.join(test_data.class_names)} differ from those the run "
              f"trained on ({', '.join(trained[0])})")


def _with_data(recipe, data):
    from keras_gdfr.training.recipe import Recipe, RecipeError

    payload = recipe.to_dict()
    payload["data"]["data_dir"] = data
    payload["data"]["source"] = "auto"
    try:
        return Recipe.from_dict(payload, origin=f"--data {data}")
    except RecipeError as error:
        _fail(str(error), 2)


# ---------------------------------------------------------------------------


@click.command()
@click.argument("recipe")
@click.option("--variant", help="Model variant; overrides model.variant.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any recipe key.")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs (milestones scale).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for the TUI and scripts).")
@click.option("--layers", is_flag=True, help="Also print the per-layer parameter and MAC table.")
def info(recipe, variant, sets, epochs, as_json, layers):
    """A recipe's dataset, schedule, and the variant's parameters and MACs."""
    parsed = _load_recipe(recipe, variant=variant, sets=sets, epochs=epochs)
    _ensure_backend(parsed.train.backend)
    from keras_gdfr.counting import count_variant

    spec, train_config = parsed.spec, parsed.train
    num_classes = len(parsed.data.classes) or spec.num_classes
    overrides = parsed.model_overrides()
    count = count_variant(parsed.model.variant, spec.image_size, num_classes, **overrides)
    facts = dict(
        recipe=str(recipe), dataset=spec.name, image_size=spec.image_size, num_classes=num_classes,
        train_size=spec.train_size, test_size=spec.test_size, epochs=train_config.epochs,
        batch_size=train_config.batch_size, lr=train_config.lr, milestones=list(train_config.milestones),
        lr_gamma=train_config.lr_gamma, momentum=train_config.momentum, weight_decay=train_config.weight_decay,
        label_smoothing=train_config.label_smoothing, variant=parsed.model.variant,
        overrides=overrides, params=count.params, macs=count.macs,
        macs_tconv_output_convention=count.macs_tconv_output_convention,
        **_pipeline_facts(parsed), **_device_facts(parsed),
    )
    if as_json:
        click.echo(json.dumps(facts))
        return
    click.echo(parsed.summary())
    click.echo(f"dataset   {spec.name}: {num_classes} classes, {spec.image_size} px, "
               f"{spec.train_size:,} train / {spec.test_size:,} test")
    click.echo(f"schedule  SGD lr {train_config.lr:g}, momentum {train_config.momentum:g}, weight decay "
               f"{train_config.weight_decay:g} (coupled L2), x{train_config.lr_gamma:g} at epochs "
               f"{'/'.join(map(str, train_config.milestones)) or 'none'} of {train_config.epochs}, "
               f"batch {train_config.batch_size}, label smoothing {train_config.label_smoothing:g}")
    click.echo(f"model     {parsed.model.variant}: {count.params:,} parameters, {count.macs / 1e9:.3f} G MACs "
               f"({count.macs_tconv_output_convention / 1e9:.3f} G counting transposed convs per output pixel)")
    click.echo(f"input     {facts['pipeline']} pipeline ({facts['pipeline_reason']})")
    click.echo(f"devices   {facts['devices']} ({facts['distribution']}), global batch {facts['global_batch']}, "
               f"per-device batch {facts['per_device_batch']}, sync BatchNorm {facts['sync_batchnorm']}")
    if layers:
        click.echo(count.table())


def _device_facts(parsed) -> dict:
    """The replicas `gdfr train` would use here (nothing is started; docs/distributed.md)."""
    import keras

    from keras_gdfr.training.distributed import describe

    facts = describe(parsed, keras.backend.backend())
    return {"devices": facts["devices"], "per_device_batch": facts["per_device_batch"],
            "global_batch": facts["global_batch"], "distribution": facts["engine"],
            "sync_batchnorm": parsed.train.sync_batchnorm and facts["devices"] > 1}


def _pipeline_facts(parsed) -> dict:
    """The input pipeline `gdfr train` would choose (split sizes from the spec and the limits)."""
    from keras_gdfr.training.run import choose_input_pipeline

    spec, data = parsed.spec, parsed.data
    images = (data.limit_train or spec.train_size) + (data.limit_test or spec.test_size)
    choice, reason = choose_input_pipeline(parsed, images)
    return {"pipeline": choice, "pipeline_reason": reason}


@click.command()
@click.option("--folder", type=click.Path(file_okay=False, exists=True), help="A folder of .toml recipes.")
def recipes(folder):
    """The recipes and model variants available."""
    from keras_gdfr.training.recipe import list_recipes
    from keras_gdfr.variants import list_variants

    rows = list_recipes(folder)
    click.echo("Recipes:")
    for name, path, _dataset, summary in rows:
        click.echo(f"  {name:12s} {summary}  [{path}]")
    if not rows:
        click.echo("  (none found)")
    click.echo("\nVariants (--variant NAME):")
    for name, description in list_variants().items():
        click.echo(f"  {name:14s} {description}")
