"""The INT8 ONNX backend: made at publish time, served when fresh, PyTorch otherwise."""

from __future__ import annotations

import copy
import json
import logging
import shutil
from dataclasses import replace

import pytest
from conftest import make_frame

import infer
import onnx_backend

# A fixed set: the tiny model's own kind of review, both labels, short and long.
REVIEWS = [*make_frame(20, seed=7)["text"], "great", "awful dull", "the film"]
# INT8 weights move each calibrated probability by at most this much on REVIEWS (measured
# with the tiny model: 0.013 at most, 0.0003 on average; the real model's figures are in
# benchmarks/README.md). Windows of at most 64 tokens are served in fp32.
TOLERANCE = 0.03


@pytest.fixture
def folder(tmp_path, model_dir):
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    return copy


def test_training_publishes_an_onnx_model_that_infer_serves(model_dir):
    assert (model_dir / onnx_backend.ONNX_FILE).is_file()
    assert infer.load(model_dir).backend == "onnx"
    assert infer.load(model_dir, backend="torch").backend == "torch"


def gaps(model_dir, model) -> list[float]:
    fast = replace(infer.load(model_dir), model=model).classify(REVIEWS)
    plain = infer.load(model_dir, backend="torch").classify(REVIEWS)
    pairs = zip(fast, plain, strict=True)
    return [abs(f.scores["POSITIVE"] - p.scores["POSITIVE"]) for f, p in pairs]


def test_int8_probabilities_stay_close_to_pytorch(model_dir):
    int8 = copy.copy(infer.load(model_dir).model)
    int8.short = None  # every window through INT8 (the tiny model's windows are all short)
    assert max(gaps(model_dir, int8)) <= TOLERANCE


def test_short_windows_are_read_in_fp32_as_pytorch_reads_them(model_dir):
    served = infer.load(model_dir).model
    assert (model_dir / onnx_backend.SHORT_FILE).is_file() and served.short is not None
    assert max(gaps(model_dir, served)) <= 1e-5
    fast = infer.load(model_dir).classify(REVIEWS)
    plain = infer.load(model_dir, backend="torch").classify(REVIEWS)
    assert [f.label for f in fast] == [p.label for p in plain]


@pytest.mark.parametrize("change", ["config edited", "weights replaced"])
def test_a_stale_onnx_model_falls_back_to_pytorch_with_a_log_line(folder, caplog, change):
    if change == "config edited":
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(config | {"note": "edited"}))
    else:  # one weight nudged in its last bit, as retraining into the folder would change all
        weights = bytearray((folder / "model.safetensors").read_bytes())
        weights[-1] ^= 1
        (folder / "model.safetensors").write_bytes(weights)
    with caplog.at_level(logging.WARNING, logger="model_folder"):
        assert infer.load(folder).backend == "torch"
    assert "is stale" in caplog.text and "python onnx_backend.py" in caplog.text
    with pytest.raises(infer.ModelNotFoundError, match="is stale"):
        infer.load(folder, backend="onnx")


def test_a_missing_or_broken_onnx_model_falls_back_to_pytorch(folder, caplog):
    onnx_file = folder / onnx_backend.ONNX_FILE
    onnx_file.write_bytes(onnx_file.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING, logger="model_folder"):
        classifier = infer.load(folder)
    assert classifier.backend == "torch" and "does not load" in caplog.text
    assert classifier.predict(["great"])[0]["POSITIVE"] > 0
    onnx_file.unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="model_folder"):
        assert infer.load(folder).backend == "torch"
    assert f"no {onnx_backend.ONNX_FILE}" in caplog.text


def test_the_command_remakes_it(folder, capsys, caplog):
    caplog.set_level(logging.INFO)  # as main.py logs
    (folder / onnx_backend.ONNX_FILE).unlink()
    assert onnx_backend.main([str(folder)]) == 0
    assert "infer and the app now use it" in capsys.readouterr().out
    # ONNX Runtime's tools log each fusion and tensor at INFO (about 70 lines): none shown.
    assert not [r for r in caplog.records if r.levelno < logging.ERROR]
    assert logging.getLogger().level == logging.INFO  # put back afterwards
    assert infer.load(folder).backend == "onnx"


def test_the_command_refuses_a_folder_without_a_model(tmp_path, capsys):
    assert onnx_backend.main([str(tmp_path / "nothing")]) == 2
    assert "No model in" in capsys.readouterr().err
