"""GPUs: the ZeroGPU path with `spaces` stood in, and the CPU path left as it was."""

from __future__ import annotations

import functools
import importlib.machinery
import sys
import types

import pytest

import infer
from serving import gpu, model_folder

REVIEW = "A great film. The ending was dull and awful."


@pytest.fixture
def zero_gpu(monkeypatch):
    """A stand-in `spaces` whose GPU decorator records each function it wraps and whether a
    call is inside one; SPACES_ZERO_GPU set as a ZeroGPU Space sets it."""
    fake = types.ModuleType("spaces")
    fake.__spec__ = importlib.machinery.ModuleSpec("spaces", None)
    fake.decorated, fake.inside = {}, []

    def GPU(duration=None):
        def wrap(function):
            fake.decorated[function.__name__] = duration

            @functools.wraps(function)
            def call(*args, **kwargs):
                fake.inside.append(function.__name__)
                try:
                    return function(*args, **kwargs)
                finally:
                    fake.inside.pop()

            return call

        return wrap

    fake.GPU = GPU
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setattr(model_folder, "on_gpu", lambda model: model)  # no CUDA on this machine
    infer.reset()
    yield fake
    infer.reset()


def test_on_zerogpu_the_model_runs_only_inside_gpu_tasks(zero_gpu, model_dir, tmp_path):
    import app

    demo = app.build_demo(model_dir, None)
    model = infer.get_classifier(model_dir).model
    runs, forward = [], model.forward

    def recorded(*args, **kwargs):  # every pass through the model, from any handler
        runs.append(list(zero_gpu.inside))
        return forward(*args, **kwargs)

    model.forward = recorded
    handlers = {f.fn.__name__: f.fn for f in demo.fns.values() if f.fn is not None}
    assert zero_gpu.decorated == {"run": 10, "sentences": 20, "classify_file": 120, "why_view": 60}
    assert infer.get_classifier(model_dir).backend == "torch"  # PyTorch on the GPU, not ONNX
    assert runs == []  # building the page and loading the model ran nothing
    reviews = tmp_path / "reviews.txt"
    reviews.write_text(REVIEW + "\nLoved it.\n")
    handlers["run"](REVIEW)
    handlers["sentences"](REVIEW)
    handlers["why_view"](REVIEW)
    handlers["classify_file"](str(reviews), None)
    # Every forward pass ran inside a GPU task, and each handler made some.
    assert runs and all(runs)
    assert {inside[-1] for inside in runs} == {"run", "sentences", "why_view", "classify_file"}


def test_off_zerogpu_nothing_changes_and_spaces_is_not_needed(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)

    def task():
        return 1

    assert gpu.gpu_task(30)(task) is task
    assert not gpu.zero_gpu() and "spaces" not in sys.modules
    if not gpu.NVIDIA_DRIVER.exists():
        assert not gpu.cuda()
