"""Fine-tune a transformer on movie reviews and publish it as a model folder.

    from train import TrainConfig, run
    run(TrainConfig(subset=2000))["test"]["accuracy"]
    # 0.89

`run` reads as its steps: check the settings, load and split the data (`training/data.py`,
`training/extra.py`), build the model, fine-tune with the Trainer (the head fitted first,
`training/probe.py`; the best epoch by validation F1), test once, publish atomically
(`training/publish.py`) with reports (`training/report.py`).
About 360 lines, past the usual 350: the steps are small and read best in the order `run`
calls them; extra data and the Hub push added two short ones.
"""

from __future__ import annotations

import logging
import platform
import time
from pathlib import Path
from typing import Any

from serving import calibration as calibration_file
from serving import hub
from training import checkpoints
from training.config import (
    LABELS,
    TrainConfig,
    UsageError,
    as_saved,
    check_config,
    resolve_pooling,
)
from training.data import (
    fingerprint,
    hub_unreachable,
    load_short_sets,
    short_reviews,
)
from training.distill import check_teacher, distil
from training.extra import build_splits
from training.plots import truncated_share
from training.probe import classifier_layer
from training.publish import check_push, publish
from training.report import write_results
from training.scoring import calibrated, test_split
from training.trainer import (
    NonFiniteLoss,
    best_epoch,
    build_trainer,
    check_tracker,
    process_rank,
    resolve_precision,
)
from utils import HEAD_FRACTION, encode

__all__ = ["TrainConfig", "UsageError", "run"]

logger = logging.getLogger(__name__)

# Every dropout layer of the base model and head, attention included, while training. No
# dropout and the fitted head scored 0.59 ± 0.32 points above dropout 0.1 and a random head,
# best of 17 recipes (benchmarks/NOTES.md, "Recipe search"); steps without masks are cheaper.
DROPOUT = 0.0


def load_base(config: TrainConfig) -> tuple[Any, Any]:
    """The base tokenizer (cut at `max_length`) and a 2-label classifier with named labels."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pooling import MeanPoolingClassifier

    local = Path(config.model).expanduser().is_dir()
    if not local and hub.hub_id(config.model) is None:
        raise UsageError(f"--model {config.model}: no such folder.")
    offline = not local and not hub.reachable()
    options = {  # a head with named labels, loaded as the Hub allows
        "num_labels": len(LABELS),
        "id2label": dict(enumerate(LABELS)),
        "label2id": {name: i for i, name in enumerate(LABELS)},
        "local_files_only": offline,
    }
    try:
        tokenizer = AutoTokenizer.from_pretrained(config.model, local_files_only=offline)
        if resolve_pooling(config).pooling == "mean":  # benchmarks call this with "auto"
            model = MeanPoolingClassifier.from_encoder(config.model, **options)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(config.model, **options)
    except OSError as error:
        if offline:
            raise hub_unreachable("--model", config.model) from error
        raise UsageError(f"--model {config.model}: could not load it ({error}).") from error
    positions = getattr(model.base_model.config, "max_position_embeddings", None)
    # RoBERTa and MPNet number positions from after the padding id: 514 of them hold 512 tokens.
    table = getattr(getattr(model.base_model, "embeddings", None), "position_embeddings", None)
    offset = getattr(table, "padding_idx", None)
    if positions is not None and offset is not None:
        positions -= offset + 1
    if positions is not None and config.max_length > positions:
        raise UsageError(
            f"--max-length {config.max_length} exceeds the {positions} positions of "
            f"{config.model}; use --max-length {positions} or less."
        )
    set_dropout(model, DROPOUT)
    # Saved with the tokenizer and the model config, so inference reads reviews as trained.
    tokenizer.model_max_length = config.max_length
    model.config.truncation = {
        "train": config.truncation,
        "inference": config.inference_truncation,
        "head_fraction": HEAD_FRACTION,
    }
    return tokenizer, model


def set_dropout(model: Any, probability: float) -> None:
    """Set every dropout layer of `model` to `probability`: the encoder's hidden and attention
    dropout and the head's, whatever the architecture names them (BERT's attention reads its
    probability from its `nn.Dropout` module too)."""
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = probability


def freeze_below(model: Any, top: int) -> None:
    """Leave only the top `top` layers of the encoder and the head trainable: the embeddings
    and the layers beneath stay as pretrained (seed 001's "unfreeze the last 3 layers")."""
    from torch import nn

    stacks = [m for m in model.base_model.modules() if isinstance(m, nn.ModuleList)]
    layers = max(stacks, key=len, default=None)  # BERT's encoder.layer, DistilBERT's
    if layers is None or top > len(layers):
        count = 0 if layers is None else len(layers)
        raise UsageError(f"--train-layers {top}: the base model has {count} layers.")
    for parameter in model.base_model.parameters():
        parameter.requires_grad = False
    for layer in layers[len(layers) - top :]:
        for parameter in layer.parameters():
            parameter.requires_grad = True


def tokenize(splits: dict[str, Any], tokenizer: Any, config: TrainConfig) -> dict[str, Any]:
    """Token ids per review, cleaned and cut by `config.truncation` (`utils.encode`, as
    inference does) and unpadded: the collator pads each batch to its longest review."""

    def cut(batch: dict[str, list]) -> dict[str, list]:
        encoded = encode(tokenizer, batch["text"], config.truncation)
        return {key: encoded[key] for key in ("input_ids", "attention_mask")}

    kept = ("label", "soft_labels")  # the targets: labels, and a teacher's (training/distill.py)
    return {
        name: split.map(
            cut, batched=True, remove_columns=[c for c in split.column_names if c not in kept]
        )
        for name, split in splits.items()
    }


def serving_classifier(model: Any, tokenizer: Any, config: TrainConfig) -> Any:
    """`model` as `infer` will serve it: eval mode, reading as the config says."""
    from serving.classifier import Classifier

    model.eval()  # training leaves dropout on
    return Classifier(model, tokenizer, LABELS, truncation=config.inference_truncation)


def base_description(name: str, model: Any) -> dict[str, Any]:
    """The base model's name, architecture and size, for metrics.json and the card."""
    base = model.base_model.config
    return {
        "model": name,
        "architecture": base.model_type,
        "layers": base.num_hidden_layers,
        "hidden_size": base.hidden_size,
        "parameters": model.num_parameters(),
    }


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape a run."""
    from importlib.metadata import version

    names = ("torch", "transformers", "accelerate", "datasets", "scikit-learn", "evaluate")
    return {"python": platform.python_version()} | {name: version(name) for name in names}


def prepare(config: TrainConfig, splits: dict[str, Any]) -> tuple[Any, Any]:
    """The tokenizer, and a Trainer with the base model and the tokenized splits, seeded.

    `trainer.train()` then fine-tunes; `run` calls this, and so do the benchmarks.
    """
    from transformers import set_seed

    set_seed(config.seed)  # before the classifier head is initialised
    tokenizer, model = load_base(config)
    if config.train_layers:
        freeze_below(model, config.train_layers)
    # A mean-pooled head never reads BERT's pooler: its weights get no gradient, which
    # torchrun's DDP refuses (ddp_find_unused_parameters=False). Frozen, they are left out.
    pooler = getattr(getattr(model, "encoder", None), "pooler", None)
    if config.pooling == "mean" and pooler is not None:
        pooler.requires_grad_(False)
    if config.head_init == "probe":
        classifier_layer(model)  # a head the probe cannot fit stops the run now, not at epoch 0
    processes, accum = process_rank()[1], config.grad_accum
    per_update = f"{processes} process{'es' if processes > 1 else ''} x {accum} steps per update"
    batching = (
        f"batches of like-length texts within {config.batch_tokens:,} tokens ({per_update})"
        if config.batch_tokens
        else f"batch {config.batch_size * processes * accum} ({config.batch_size} per step x "
        f"{per_update})"
    )
    logger.info(
        "Model %s (%.1fM parameters, %s pooling), %d tokens (%s), %g epochs, lr %g, %s",
        Path(config.model).name,
        model.num_parameters() / 1e6,
        config.pooling,
        config.max_length,
        config.truncation,
        config.epochs,
        config.learning_rate,
        batching,
    )
    fit = {name: splits[name] for name in ("train", "validation")}  # the test split stays out
    return tokenizer, build_trainer(config, tokenizer, model, tokenize(fit, tokenizer, config))


def run(config: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Train, test and publish one model as `config` says; return what `metrics.json` holds.
    With `resume`, continue the interrupted run of the same settings from its newest complete
    checkpoint (`training/checkpoints.py`)."""
    from transformers import set_seed

    started = time.perf_counter()
    check_config(config)
    check_tracker(config.report_to)
    precision = resolve_precision(config.precision)
    if config.push_to_hub:
        check_push(config.push_to_hub)
    teacher = check_teacher(config) if config.teacher else None
    config = resolve_pooling(config)
    rank = process_rank()[0]
    resume_from = checkpoints.start(config, resume, main_process=rank == 0)
    short_sets = load_short_sets(config.short_data) if config.short_data else {}
    imdb, splits, sources = build_splits(config, short_sets)
    for count in sources:
        logger.info(
            "Extra data %s: %s rows, %s to training and %s to validation (%s dropped: they are "
            "or lie inside validation, test or --short-data texts, or hold no word)",
            count["source"],
            *(f"{count[key]:,}" for key in ("rows", "train", "validation", "dropped")),
        )
    distilled, unlabelled = None, []
    if teacher is not None:
        splits, distilled, unlabelled = distil(config, teacher, splits, short_sets)
    sizes = {name: len(split) for name, split in splits.items()}
    logger.info(
        "Data %s: %s train, %s validation, %s test reviews (balanced)",
        config.data,
        *(f"{n:,}" for n in sizes.values()),
    )
    tokenizer, trainer = prepare(config, splits)
    if rank == 0:
        classifier = serving_classifier(trainer.model, tokenizer, config)
        baseline, _ = test_split(classifier, splits["test"], "Baseline (untrained head)")
    set_seed(config.seed)  # each DataLoader draws from the global RNG: training starts afresh
    if resume_from is None and rank == 0:
        checkpoints.begin(config)
    try:
        trained = trainer.train(resume_from_checkpoint=resume_from)
    except NonFiniteLoss:
        if rank == 0:
            checkpoints.finish(config)  # a diverged run is not worth resuming
        raise
    if rank != 0:  # testing, calibrating and publishing happen once, in process 0
        return {}
    classifier, calibration = calibrated(
        serving_classifier(trainer.model, tokenizer, config),
        splits["validation"],
        config.seed,
        short_reviews(imdb, splits),
        sources,
    )
    test, rows = test_split(classifier, splits["test"])
    short = {name: test_split(classifier, split, name)[0] for name, split in short_sets.items()}
    report = {
        "name": f"{Path(config.model).name}-imdb-sentiment",
        "labels": list(LABELS),
        "base": base_description(config.model, trainer.model),
        "max_length": config.max_length,
        "test": test,
        "baseline": baseline,
        "validation": best_epoch(trainer.state.log_history),
        "train": {
            "loss": trained.training_loss,  # mean over all steps
            "seconds": round(trained.metrics["train_runtime"], 1),
            "reviews_per_second": round(trained.metrics["train_samples_per_second"], 2),
            "precision": precision,
            "processes": process_rank()[1],
            "resumed_from": Path(resume_from).name if resume_from else None,
        },
        "calibration": calibration,
        "short": short,
        "test_truncated_share": truncated_share(rows["tokens"], config.max_length),
        "teacher": distilled,
        "data": {"source": config.data, "extra": sources, "unlabelled": unlabelled}
        | sizes
        | {"sha256": fingerprint(splits)},
        "config": as_saved(config),
        "versions": versions(),
        "history": trainer.state.log_history,
    }
    report["seconds"] = round(time.perf_counter() - started, 1)

    def write(folder: Path) -> None:
        trainer.model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        calibration_file.write(folder, classifier.calibration)
        write_results(folder, report, rows)

    publish(write, Path(config.output_dir))
    if config.push_to_hub:
        try:
            logger.info("Pushed to %s", hub.upload(Path(config.output_dir), config.push_to_hub))
        except OSError as error:  # the Hub's HTTP and connection errors
            raise UsageError(
                f"--push-to-hub {config.push_to_hub}: the model is published in "
                f"{config.output_dir}/, but the upload failed ({error}). Push it with: "
                f"hf upload {config.push_to_hub} {config.output_dir}/"
            ) from error
    checkpoints.finish(config)  # the model folder replaces them
    return report
