"""Checkpoints of a run in progress, hidden beside its model folder, and `--resume`.

A checkpoint counts as complete when its `trainer_state.json`, which the Trainer writes last,
reads back whole; the Trainer's own `get_last_checkpoint` takes the highest number unchecked
(transformers #35782), so a run killed while saving would resume from a half-written one.
A run's settings are saved beside its checkpoints: resuming under other settings is refused.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from training.config import TrainConfig, UsageError, as_saved

logger = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"  # the run's TrainConfig, to compare on --resume
NEEDED = ("trainer_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth")


def checkpoint_dir(config: TrainConfig) -> Path:
    """Scratch for per-epoch checkpoints, hidden beside the model folder; removed on success."""
    output = Path(config.output_dir).absolute()
    return output.parent / f".{output.name}.checkpoints"


def complete(folder: Path) -> bool:
    """Whether the checkpoint `folder` was saved whole (its state last, readable)."""
    if not all((folder / name).is_file() for name in NEEDED):
        return False
    try:
        json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return any(folder.glob("*.safetensors"))


def checkpoints(folder: Path) -> list[Path]:
    """The checkpoint folders in `folder`, newest (highest step) first."""
    found = [p for p in folder.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]), reverse=True)


def start(config: TrainConfig, resume: bool, main_process: bool = True) -> str | None:
    """Check the checkpoint folder of a run before anything loads: the checkpoint to resume
    from with `resume` (the newest complete one, incomplete ones skipped with a message), else
    None for a fresh start. Checkpoints of an interrupted run are never deleted unasked."""
    folder = checkpoint_dir(config)
    saved = checkpoints(folder) if folder.is_dir() else []
    if not resume:
        if saved:
            raise UsageError(
                f"{folder}/ holds checkpoints of an interrupted run ({saved[0].name}). "
                f"Continue it with --resume, or start over after deleting them: rm -r {folder}"
            )
        if main_process:  # the others of a torchrun only read
            shutil.rmtree(folder, ignore_errors=True)  # scratch without a checkpoint
        return None
    for checkpoint in saved:
        if complete(checkpoint):
            check_settings(folder, config)
            logger.info("Resuming from %s", checkpoint)
            return str(checkpoint)
        logger.info(
            "Skipping %s: it was not saved whole (the run stopped while saving)", checkpoint
        )
    raise UsageError(
        f"--resume: no complete checkpoint in {folder}/ (a run saves one after its first "
        "epoch). Start without --resume."
    )


def begin(config: TrainConfig) -> None:
    """Save the settings of a fresh run beside its checkpoints, as training starts."""
    folder = checkpoint_dir(config)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SETTINGS_FILE).write_text(json.dumps(as_saved(config), indent=1))


def check_settings(folder: Path, config: TrainConfig) -> None:
    """UsageError naming each setting that differs from the interrupted run's."""
    try:
        then: dict[str, Any] = json.loads((folder / SETTINGS_FILE).read_text())
    except (OSError, ValueError) as error:
        raise UsageError(
            f"--resume: {folder}/ does not say how its run was set up ({error}); start over "
            f"after deleting it: rm -r {folder}"
        ) from error
    now = as_saved(config)
    differ = [
        f"{k}: {then.get(k)!r} then, {now.get(k)!r} now" for k in now if then.get(k) != now[k]
    ]
    if differ:
        raise UsageError(
            "--resume: the interrupted run had other settings ("
            + "; ".join(differ)
            + "). Resume with its settings, or start over after deleting its checkpoints: "
            f"rm -r {folder}"
        )


def finish(config: TrainConfig) -> None:
    """Remove the run's checkpoints: the published model folder replaces them."""
    shutil.rmtree(checkpoint_dir(config), ignore_errors=True)
