"""`--resume` of a run that already finished: nothing to do, or an extension to more epochs.

`gdfr train --resume RUN` of a run whose last `run_end` says `completed` at its full length
says so and changes nothing. `gdfr train --resume RUN --epochs N` gives the run a new
length N (more than the epochs it has trained, finished or not) and continues it from
its last checkpoint with the schedule of an N-epoch run:

- milestones by the recipe's rule for a new length (`schedule.scale_milestones`): a run
  on the paper's milestones for its length (the recipes' default, scaled by `--epochs`)
  gets the paper's milestones for N (200 -> N); a run with other milestones gets its own
  scaled from its length to N;
- the epochs already trained keep the rates they had; from the next epoch on the rate is
  the new schedule's for that epoch (the optimizer's step counter restores with the
  checkpoint, so `MultiStepLR` picks it up);
- `recipe.json` takes the new length and milestones, and `events.jsonl` gets an `extend`
  event with the old and new length and milestones (docs/run-directory.md).

Plain Python (no Keras): the CLI decides before it loads any data.
"""

from __future__ import annotations

import dataclasses
import pathlib

from keras_gdfr.training import schedule
from keras_gdfr.training.events import read_events


class ExtendError(ValueError):
    """An `--epochs` that cannot extend this run (one line)."""


def _events(run_dir: pathlib.Path) -> list[dict]:
    try:
        return list(read_events(run_dir))
    except OSError:
        return []


def epochs_trained(run_dir: pathlib.Path) -> int:
    """The newest epoch `events.jsonl` records a checkpoint of (0 when none)."""
    epochs = [e.get("epoch") for e in _events(run_dir) if e.get("event") == "checkpoint"]
    return max((e for e in epochs if isinstance(e, int)), default=0)


def completed_line(run_dir: pathlib.Path, epochs: int) -> str | None:
    """What to say for a run that is complete at `epochs` epochs; None when it is not."""
    ends = [e for e in _events(run_dir) if e.get("event") == "run_end"]
    if not ends or ends[-1].get("status") != "completed" or (ends[-1].get("epoch") or 0) < epochs:
        return None
    test = ends[-1].get("test") or {}
    accuracy = f", test accuracy {test['accuracy']:.4f}" if isinstance(test.get("accuracy"), (int, float)) else ""
    return (f"{run_dir}: already completed ({epochs} epochs{accuracy}); nothing to do. "
            f"To train it further: gdfr train --resume {run_dir} --epochs N (N > {epochs})")


def extension_milestones(epochs: int, milestones, new_epochs: int) -> tuple[int, ...]:
    """The milestones of the run's schedule stretched to `new_epochs` (module docstring)."""
    paper = schedule.scale_milestones(schedule.PAPER_MILESTONES, schedule.PAPER_EPOCHS, epochs)
    if tuple(milestones) == paper:
        return schedule.scale_milestones(schedule.PAPER_MILESTONES, schedule.PAPER_EPOCHS, new_epochs)
    return schedule.scale_milestones(milestones, epochs, new_epochs)


def extended(recipe, new_epochs: int, trained: int):
    """`recipe` (a run's) with `new_epochs` epochs and their milestones.

    Raises:
        ExtendError: when `new_epochs`, not the run's own length, is not more than the
            `trained` epochs.
    """
    train = recipe.train
    if new_epochs == train.epochs:
        return recipe  # its own length: a plain resume
    if new_epochs <= trained:
        raise ExtendError(
            f"--epochs {new_epochs}: the run has trained {trained} epoch(s); "
            f"give more than {trained} to extend it"
        )
    milestones = extension_milestones(train.epochs, train.milestones, new_epochs)
    return dataclasses.replace(recipe, train=dataclasses.replace(train, epochs=new_epochs, milestones=milestones))


def extension_fields(saved_train: dict, recipe) -> dict | None:
    """The `extend` event's fields when `recipe` changes the length of the run saved as `saved_train`."""
    if saved_train.get("epochs") == recipe.train.epochs:
        return None
    return {
        "from_epochs": saved_train.get("epochs"), "epochs": recipe.train.epochs,
        "from_milestones": list(saved_train.get("milestones") or []),
        "milestones": list(recipe.train.milestones),
    }
