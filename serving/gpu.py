"""GPUs: a CUDA server, and Hugging Face's ZeroGPU, where a GPU is attached only while a
function marked `@spaces.GPU` runs.

    @gpu_task(duration=20)
    def classify(text): ...        # on ZeroGPU: runs with a GPU; elsewhere: unchanged

On a GPU, `infer` serves the PyTorch model in half precision (bf16 where the GPU has it, else
fp16) instead of the ONNX graphs, which are for CPUs. On ZeroGPU (`SPACES_ZERO_GPU` set by
the Space and the `spaces` package installed, `pip install -r requirements-zerogpu.txt`) the
model loads onto "cuda" at start-up as `spaces` allows, and every handler that runs it is a
`gpu_task`; off ZeroGPU nothing here imports `spaces` or torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")  # there when an NVIDIA driver is loaded


def zero_gpu() -> bool:
    """Whether this process runs on a ZeroGPU Space with the `spaces` package to ask for one."""
    flag = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")
    return flag and find_spec("spaces") is not None


def cuda() -> bool:
    """Whether PyTorch can run on a CUDA GPU here (or, on ZeroGPU, will be given one). torch is
    imported only when an NVIDIA driver is loaded, so CPU serving never pays for it."""
    if zero_gpu():
        return True
    if not NVIDIA_DRIVER.exists():
        return False
    import torch

    return torch.cuda.is_available()


def gpu_task(duration: int) -> Callable[[F], F]:
    """`spaces.GPU(duration=duration)` on ZeroGPU: the function gets a GPU for at most
    `duration` seconds a call. Elsewhere the function as it is."""
    if not zero_gpu():
        return lambda function: function
    import spaces

    return spaces.GPU(duration=duration)
