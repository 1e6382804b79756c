"""Parameter and MAC counts from a `gdfr info RECIPE --variant NAME --json` subprocess.

Counting needs Keras (build the model), which the launcher's process never
imports; a subprocess does it, once per (recipe, variant), and the answers are
cached for the session.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from typing import Awaitable, Callable, Sequence

from launcher.launch import DEFAULT_TRAINER

InfoFunction = Callable[..., Awaitable[dict]]
"""(recipe path, variant, *sets) -> the `gdfr info --json` object; raises `InfoError`.

`sets` are the form's `model.*` `--set` items (they change the model's size); the
launcher passes them only when there are some."""


class InfoError(Exception):
    """`gdfr info` failed; the message is its last stderr line."""


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """The state of one (recipe, variant) lookup: pending, an answer, or an error."""

    pending: bool = False
    data: dict | None = None
    error: str | None = None


async def gdfr_info(
    recipe: str,
    variant: str,
    *sets: str,
    trainer: Sequence[str] = DEFAULT_TRAINER,
    timeout: float = 300.0,
) -> dict:
    """Runs `gdfr info RECIPE --variant NAME [--set K=V ...] --json` and parses its JSON object.

    Raises:
        InfoError: on a non-zero exit, a timeout, or output without a JSON object.
    """
    process = await asyncio.create_subprocess_exec(
        *trainer, "info", recipe, "--variant", variant, *[a for item in sets for a in ("--set", item)], "--json",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise InfoError(f"gdfr info took more than {timeout:.0f} s") from None
    except asyncio.CancelledError:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if process.returncode != 0:
        raise InfoError(last_line(stderr) or f"gdfr info exited with status {process.returncode}")
    data = parse_json_object(stdout.decode("utf-8", errors="replace"))
    if data is None:
        raise InfoError("gdfr info printed no JSON object")
    return data


def parse_json_object(text: str) -> dict | None:
    """The JSON object of a command's output: all of it, or its last line that is one."""
    try:
        value = json.loads(text)
        return value if isinstance(value, dict) else None
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def last_line(output: bytes) -> str:
    """The last non-empty line of a process's output."""
    lines = [line.strip() for line in output.decode("utf-8", errors="replace").splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else ""
