"""The atomic model folder: written beside the old one, verified, swapped in with one rename.

    publish(lambda folder: model.save_pretrained(folder), Path("model"))

The only writer of model folders. Readers (`infer.load`, the app) see the old folder or the
new one, never a mix; a crash or Ctrl-C at any point leaves the old one in place.
"""

from __future__ import annotations

import ctypes
import errno
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from serving import hub
from training.config import LABELS, UsageError
from training.export import export

PICKLE_SUFFIXES = (".bin", ".pt", ".pkl", ".pth")


def publish(write: Callable[[Path], None], output_dir: Path) -> None:
    """Let `write` fill a folder beside `output_dir`, check it loads and predicts, swap it in.

    Readers see the old folder or the new one, never a mix; a crash or Ctrl-C at any point
    leaves the old one in place.
    """
    output_dir = output_dir.absolute()
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(output_dir)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-{os.getpid()}-", dir=output_dir.parent)
    )
    try:
        write(staging)
        export(staging)  # the INT8 ONNX model infer serves by default, made from these weights
        verify(staging)
        _finish(staging)
        _swap(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # after a swap, the old model lies here


def check_push(repo_id: str) -> None:
    """Raise UsageError, before any training, if `--push-to-hub repo_id` could not succeed."""
    from huggingface_hub import get_token

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise UsageError(f"--push-to-hub {repo_id}: name a Hub repository as owner/name.")
    if not hub.reachable():
        raise UsageError(
            f"--push-to-hub {repo_id}: the Hugging Face Hub is unreachable from here, so the "
            "model could not be pushed after training. Train without --push-to-hub, then "
            f"push the folder from a machine that reaches the Hub: hf upload {repo_id} model/"
        )
    if get_token() is None:
        raise UsageError(
            f"--push-to-hub {repo_id}: no Hugging Face token here; run `hf auth login` (or "
            "set HF_TOKEN), then train again."
        )


def verify(folder: Path) -> None:
    """Raise unless `folder` holds safetensors weights and an ONNX model that load as the app
    loads them, and predict."""
    from serving.classifier import load

    pickles = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if pickles:
        raise RuntimeError(f"Refusing to publish pickle files: {', '.join(pickles)}.")
    for backend in ("torch", "onnx"):
        classifier = load(folder, backend=backend)
        if classifier.labels != LABELS:
            raise RuntimeError(
                f"The saved model names its labels {classifier.labels}, not {LABELS}."
            )
        (scores,) = classifier.predict(["A check that the saved model predicts."])
        if not math.isclose(sum(scores.values()), 1.0, abs_tol=1e-4):
            raise RuntimeError(f"The saved model's probabilities do not sum to 1: {scores}.")


def _remove_abandoned(output_dir: Path) -> None:
    """Delete staging folders left by runs that were killed (their process is gone)."""
    for folder in output_dir.parent.glob(f".{output_dir.name}.partial-*"):
        pid = int(folder.name.split("-")[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:  # alive, owned by another user
            pass


def _finish(folder: Path) -> None:
    """Give the folder the usual permissions and flush it to disk before the swap.

    `mkdtemp` makes a folder only its owner can read; a server under another user must too.
    The flush means a power cut after the swap cannot leave the new files empty.
    """
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for file in folder.iterdir():
        file.chmod(0o666 & ~umask)
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())


def _swap(new: Path, dest: Path) -> None:
    """Put folder `new` at `dest`; afterwards `new` holds the old `dest`, if there was one."""
    if not dest.exists():
        os.rename(new, dest)
        return
    if _exchange(new, dest):
        return
    # No atomic exchange here (not Linux, or a filesystem without it): two renames. A reader
    # may find no folder for a moment, but never a mix of two models.
    aside = new.with_name(new.name + "-old")
    os.rename(dest, aside)
    os.rename(new, dest)
    os.rename(aside, new)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step with Linux's renameat2(RENAME_EXCHANGE); False if unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))
