"""The ONNX backend: made at publish time, served when fresh (INT8 by ONNX Runtime, or
bfloat16 by OpenVINO on CPUs with AMX), PyTorch otherwise."""

from __future__ import annotations

import copy
import json
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest
from conftest import make_frame

import infer
from serving import onnx_runtime
from serving.calibration import Calibration
from training import export

# A fixed set: the tiny model's own kind of review, both labels, short and long.
REVIEWS = [*make_frame(20, seed=7)["text"], "great", "awful dull", "the film"]
# INT8 weights move each calibrated probability by at most this much on REVIEWS (measured
# with the tiny model: 0.013 at most, 0.0003 on average; the real model's figures are in
# benchmarks/NOTES.md). Windows of at most 64 tokens are served in fp32.
TOLERANCE = 0.03


@pytest.fixture(params=onnx_runtime.RUNTIMES)
def runtime(request, monkeypatch):
    """Each runtime in turn, as this CPU would choose it if it had AMX or had not."""
    monkeypatch.setattr(onnx_runtime, "matrix_units", lambda: request.param == "openvino-bf16")
    return request.param


@pytest.fixture
def folder(tmp_path, model_dir):
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    return copy


def test_training_publishes_an_onnx_model_that_infer_serves(model_dir):
    assert (model_dir / onnx_runtime.ONNX_FILE).is_file()
    assert infer.load(model_dir).backend == "onnx"
    assert infer.load(model_dir, backend="torch").backend == "torch"


def gaps(model_dir, model, calibration=None) -> list[float]:
    fast = infer.load(model_dir, calibration=calibration)
    fast = replace(fast, model=model).classify(REVIEWS)
    plain = infer.load(model_dir, backend="torch", calibration=calibration).classify(REVIEWS)
    pairs = zip(fast, plain, strict=True)
    return [abs(f.scores["POSITIVE"] - p.scores["POSITIVE"]) for f, p in pairs]


def same_labels(model_dir, model) -> bool:
    fast = replace(infer.load(model_dir), model=model).classify(REVIEWS)
    plain = infer.load(model_dir, backend="torch").classify(REVIEWS)
    return [f.label for f in fast] == [p.label for p in plain]


def onnx_model(model_dir, runtime):
    return onnx_runtime.OnnxModel(model_dir / onnx_runtime.ONNX_FILE, runtime)


def test_attention_is_fused_and_the_residual_add_kept_out_of_layer_norm(
    model_dir, tmp_path, monkeypatch
):
    import onnx
    import onnxruntime as ort

    def session_graph(path, **kwargs) -> set[str]:
        """The ops of the graph a session builds from `path`, as `_session` builds it."""
        real = ort.InferenceSession

        def saving(model, options, **session_kwargs):
            options.optimized_model_filepath = str(tmp_path / path.name)
            return real(model, options, **(session_kwargs | kwargs))

        monkeypatch.setattr(ort, "InferenceSession", saving)
        onnx_runtime.ort_session(path)
        monkeypatch.setattr(ort, "InferenceSession", real)
        return {node.op_type for node in onnx.load(tmp_path / path.name).graph.node}

    for name, attention in (
        (onnx_runtime.SHORT_FILE, "Attention"),
        (onnx_runtime.ONNX_FILE, "QAttention"),
    ):
        path = model_dir / name
        ops = {node.op_type for node in onnx.load(path).graph.node}
        assert attention in ops and "LayerNormalization" in ops
        assert "SkipLayerNormalization" not in ops
        # ONNX Runtime fuses Add and LayerNorm again unless told not to, as `_session` tells it.
        assert "SkipLayerNormalization" not in session_graph(path)
        assert "SkipLayerNormalization" in session_graph(path, disabled_optimizers=[])


def test_int8_probabilities_stay_close_to_pytorch(model_dir):
    int8 = copy.copy(onnx_model(model_dir, "onnxruntime"))
    int8.short = None  # every window through INT8 (the tiny model's windows are all short)
    assert max(gaps(model_dir, int8)) <= TOLERANCE


def test_int8_weights_leave_no_product_that_saturates(tmp_path):
    # Without VNNI, ONNX Runtime sums uint8 x int8 products in pairs into int16: activations at
    # 255 against signed weights at 127 saturate at 32,767 (this graph read 259 for 512 on an
    # AVX2 EPYC with int8 weights, as all-mpnet-base-v2's outlier activations broke its graph).
    # With VNNI it passes either way: the products are summed in 32 bits there.
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight, x = np.ones((64, 4), np.float32), np.full((1, 64), 8.0, np.float32)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])]
    node = helper.make_node("MatMul", ["x", "w"], ["y"])
    graph = helper.make_graph([node], "g", inputs, outputs, [numpy_helper.from_array(weight, "w")])
    opsets = [helper.make_opsetid("", export.OPSET)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), tmp_path / "fp32.onnx")
    export.quantize(tmp_path / "fp32.onnx", tmp_path / "int8.onnx")
    answer = onnx_runtime.ort_session(tmp_path / "int8.onnx").run(None, {"x": x})[0]
    assert answer == pytest.approx(x @ weight, rel=0.02)


def test_short_windows_are_read_in_fp32_as_pytorch_reads_them(model_dir):
    served = onnx_model(model_dir, "onnxruntime")
    assert (model_dir / onnx_runtime.SHORT_FILE).is_file() and served.short is not None
    assert max(gaps(model_dir, served)) <= 1e-5
    assert same_labels(model_dir, served)


def test_bfloat16_probabilities_stay_close_to_pytorch(model_dir):
    bf16 = onnx_model(model_dir, "openvino-bf16")
    # bfloat16 moves each logit by about 0.01 on REVIEWS, and the tiny model's short-review
    # temperature of 0.05 multiplies that by 20, so probabilities are compared before
    # calibration (0.011 at most; on 1,000 real IMDB reviews, calibrated: 0.006).
    assert max(gaps(model_dir, bf16, Calibration())) <= TOLERANCE
    assert same_labels(model_dir, bf16)


def test_the_runtime_is_chosen_by_the_cpu(folder):
    assert onnx_runtime.matrix_units("flags\t: fpu sse2 avx512f amx_bf16 amx_tile amx_int8")
    assert not onnx_runtime.matrix_units("flags\t: fpu sse2 avx512f avx512_bf16")  # an EPYC
    # Unpatched: what this machine's own flags choose.
    expected = "openvino-bf16" if onnx_runtime.matrix_units() else "onnxruntime"
    assert infer.load(folder).model.runtime == expected


def test_without_openvino_or_the_fp32_graph_onnx_runtime_serves(folder, runtime, monkeypatch):
    assert infer.load(folder).model.runtime == runtime
    with monkeypatch.context() as patch:  # an install without OpenVINO
        patch.setattr(onnx_runtime, "find_spec", lambda name: None)
        assert infer.load(folder).model.runtime == "onnxruntime"
    (folder / onnx_runtime.SHORT_FILE).unlink()  # a folder exported before the fp32 graph
    assert infer.load(folder).model.runtime == "onnxruntime"
    with pytest.raises(ValueError, match="runtime takes"):
        onnx_model(folder, "tensorrt")


def test_calls_from_many_threads_get_their_own_answers(model_dir, runtime):
    served = infer.load(model_dir)
    alone = [p.scores for p in served.classify(REVIEWS)]
    with ThreadPoolExecutor(4) as pool:  # the app's workers share one loaded model
        together = list(pool.map(lambda text: served.classify(text)[0].scores, REVIEWS * 3))
    for got, want in zip(together, alone * 3, strict=True):
        assert np.isclose(got["POSITIVE"], want["POSITIVE"], atol=1e-6)


@pytest.mark.parametrize("change", ["config edited", "weights replaced"])
def test_a_stale_onnx_model_falls_back_to_pytorch_with_a_log_line(folder, caplog, change):
    if change == "config edited":
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(config | {"note": "edited"}))
    else:  # one weight nudged in its last bit, as retraining into the folder would change all
        weights = bytearray((folder / "model.safetensors").read_bytes())
        weights[-1] ^= 1
        (folder / "model.safetensors").write_bytes(weights)
    with caplog.at_level(logging.WARNING, logger="serving.model_folder"):
        assert infer.load(folder).backend == "torch"
    assert "is stale" in caplog.text and "python -m training.export" in caplog.text
    with pytest.raises(infer.ModelNotFoundError, match="is stale"):
        infer.load(folder, backend="onnx")


def test_a_missing_or_broken_onnx_model_falls_back_to_pytorch(folder, caplog, runtime):
    read = onnx_runtime.SHORT_FILE if runtime == "openvino-bf16" else onnx_runtime.ONNX_FILE
    (folder / read).write_bytes((folder / read).read_bytes()[:1000])
    with caplog.at_level(logging.WARNING, logger="serving.model_folder"):
        classifier = infer.load(folder)
    assert classifier.backend == "torch" and "does not load" in caplog.text
    assert classifier.predict(["great"])[0]["POSITIVE"] > 0
    (folder / onnx_runtime.ONNX_FILE).unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="serving.model_folder"):
        assert infer.load(folder).backend == "torch"
    assert f"no {onnx_runtime.ONNX_FILE}" in caplog.text


def test_the_command_remakes_it(folder, capsys, caplog):
    caplog.set_level(logging.INFO)  # as main.py logs
    (folder / onnx_runtime.ONNX_FILE).unlink()
    assert export.main([str(folder)]) == 0
    assert "infer and the app now use it" in capsys.readouterr().out
    # ONNX Runtime's tools log each fusion and tensor at INFO (about 70 lines): none shown.
    assert not [r for r in caplog.records if r.levelno < logging.ERROR]
    assert logging.getLogger().level == logging.INFO  # put back afterwards
    assert infer.load(folder).backend == "onnx"


def test_the_command_refuses_a_folder_without_a_model(tmp_path, capsys):
    assert export.main([str(tmp_path / "nothing")]) == 2
    assert "No model in" in capsys.readouterr().err


def test_int8_windows_are_read_alone_and_fp32_ones_in_batches(model_dir, runtime):
    model = onnx_model(model_dir, runtime)
    short = onnx_runtime.SHORT_TOKENS
    assert not model.alone(short)  # fp32 (ONNX Runtime) or bfloat16: no per-call scale
    assert model.alone(short + 1) == (runtime == "onnxruntime")  # INT8's scale is per call
    model.short = None
    assert model.alone(short) == (runtime == "onnxruntime")


def test_a_review_reads_the_same_alone_or_in_a_file(model_dir, runtime):
    # INT8 reads one window per call, so exactly; fp32 (these windows are short) and bfloat16
    # in batches, within their rounding.
    served = infer.load(model_dir, calibration=Calibration())
    tolerance = 1e-5 if runtime == "onnxruntime" else TOLERANCE
    together = served.classify(REVIEWS, batch_size=8)  # padded to each batch's longest
    for text, got in zip(REVIEWS, together, strict=True):
        (alone,) = served.classify([text])
        assert got.scores["POSITIVE"] == pytest.approx(alone.scores["POSITIVE"], abs=tolerance)
