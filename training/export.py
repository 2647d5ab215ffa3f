"""The ONNX exporter: a model folder's weights as the graphs `serving/onnx_runtime.py` runs.

    python -m training.export model/   # writes model/model_quantized.onnx beside the weights

Training's publishing step calls it; this command makes the graphs for a folder that lacks
them. Serving never imports this module.

Three steps, each measured in `benchmarks/inference.py` (2 cores, MiniLM, 256 tokens):
export with eager attention (so ONNX Runtime can fuse attention; SDPA exports as loose ops),
fuse with ONNX Runtime's transformer optimizer (attention, LayerNorm, GELU), then quantize
the weights of every MatMul to 8 bits, per output channel (dynamic: activations are
quantized per call, so no calibration data is needed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from serving.model_folder import ModelNotFoundError, check_model_dir, torch_model
from serving.onnx_runtime import (
    MANIFEST_FILE,
    ONNX_FILE,
    SHORT_FILE,
    ort_session,
    source_digest,
)

OPSET = 17


def export(model_dir: str | Path) -> Path:
    """Write `model_quantized.onnx`, `model_fp32.onnx` and their manifest into `model_dir`,
    replacing any old ones (each with one rename, the manifest last). Returns the INT8 file."""
    model_dir = Path(check_model_dir(model_dir))
    # Loaded as infer serves it in PyTorch: a folder whose weights do not fit is refused here.
    model = torch_model(model_dir)
    model.set_attn_implementation("eager")
    with tempfile.TemporaryDirectory(prefix=".onnx-", dir=model_dir) as scratch:
        plain, fused, quantized = (Path(scratch) / n for n in ("plain", "fused", "int8"))
        export_onnx(model, plain)
        with _quiet_onnx_tools():
            fuse(plain, fused, model)
            quantize(fused, quantized)
        for made in (quantized, fused):
            ort_session(made)  # it loads: a broken file never replaces a good one
        os.replace(fused, model_dir / SHORT_FILE)
        os.replace(quantized, model_dir / ONNX_FILE)
        manifest = Path(scratch) / "manifest"
        manifest.write_text(json.dumps({"sources": source_digest(model_dir)}, indent=2))
        os.replace(manifest, model_dir / MANIFEST_FILE)
    return model_dir / ONNX_FILE


@contextlib.contextmanager
def _quiet_onnx_tools() -> Iterator[None]:
    """Keep ONNX Runtime's optimizer and quantizer out of `main.py`'s log: at INFO they log
    every fusion and every tensor (about 70 lines a model), and on the root logger advice that
    does not apply to dynamic INT8. Errors still show."""
    loggers = [logging.getLogger(), logging.getLogger("onnxruntime")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export_onnx(model: Any, path: Path) -> None:
    """The PyTorch model as an fp32 ONNX graph with dynamic batch and sequence axes."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    example = torch.ones(2, 8, dtype=torch.long)
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    # The tracer warns about Python branches on shapes; the axes above keep them dynamic, and
    # tests/test_onnx.py checks the graph against PyTorch on reviews of many lengths.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Logits(model),
            (example, example),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes=axes | {"logits": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: the dynamo one needs onnxscript
        )


def fuse(source: Path, target: Path, model: Any) -> None:
    """ONNX Runtime's BERT fusions (attention, LayerNorm, GELU); DistilBERT's graph fuses too.
    The residual Add stays out of LayerNorm: see `UNFUSED`."""
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    config = getattr(model, "encoder", model).config  # mean pooling wraps the base model
    options = FusionOptions("bert")
    options.enable_skip_layer_norm = options.enable_bias_skip_layer_norm = False
    fused = optimizer.optimize_model(
        str(source),
        model_type="bert",
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
        optimization_options=options,
    )
    fused.save_model_to_file(str(target))


def quantize(source: Path, target: Path) -> None:
    """INT8 weights for every MatMul, one scale per output channel; activations quantized per
    call at run time. One scale per weight matrix cost 1.6 points of IMDB accuracy (86.8% to
    85.2%, 95.8% of labels as fp32's); per channel, none (86.8%, 99.0%).

    Unsigned weights, because without VNNI (AVX2, and AVX-512 without it) ONNX Runtime
    multiplies uint8 activations by signed weights two at a time into int16, which saturates
    above 32,767 (255 x 127 x 2 does not fit); its uint8 x uint8 kernel widens to 16 bits
    first and sums in 32. Saturated, all-mpnet-base-v2's INT8 graph kept 46.0% of 200 IMDB
    labels as fp32's on an AVX2 EPYC; with uint8 weights 98.0% (MiniLM: 98.2% to 99.1% of
    1,000). 7-bit signed weights
    (`reduce_range`, ONNX Runtime's other remedy) kept 97.5% and 98.6%. The price: a
    256-token MiniLM window in 34.5 ms against 30.5 (benchmarks/NOTES.md, "INT8 saturation")."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Fused ops come from ONNX Runtime's own domain, whose output types shape inference
    # cannot name; they are all float32.
    extra = {"DefaultTensorType": TensorProto.FLOAT}
    quantize_dynamic(
        source,
        target,
        weight_type=QuantType.QUInt8,
        per_channel=True,
        extra_options=extra,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a model folder's INT8 ONNX model.")
    parser.add_argument("model_dir", type=Path, help="a folder written by python main.py")
    args = parser.parse_args(argv)
    try:
        check_model_dir(args.model_dir)
    except ModelNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    path = export(args.model_dir)
    print(f"Wrote {path} ({path.stat().st_size / 1e6:.1f} MB); infer and the app now use it.")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
