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
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from serving import calibration as calibration_file
from serving import hub
from training.config import LABELS, TrainConfig, UsageError, as_saved, check_config, resolve_pooling
from training.data import (
    fingerprint,
    hub_unreachable,
    load_short_sets,
    short_reviews,
)
from training.extra import build_splits
from training.plots import truncated_share
from training.probe import classifier_layer, probe_head
from training.publish import check_push, publish
from training.report import write_results
from training.scoring import EVAL_BATCH_SIZE, calibrated, test_split, validation_metrics
from utils import HEAD_FRACTION, encode

__all__ = ["TrainConfig", "UsageError", "run"]

logger = logging.getLogger(__name__)

WARMUP_RATIO = 0.1  # share of optimizer steps spent warming up
WEIGHT_DECAY = 0.01  # AdamW's, on every weight but biases and LayerNorm
# Every dropout layer of the base model and head, attention included, while training. No
# dropout and the fitted head scored 0.59 ± 0.32 points above dropout 0.1 and a random head,
# best of 17 recipes (benchmarks/README.md, "Recipe search"); steps without masks are cheaper.
DROPOUT = 0.0
TENSORBOARD_DIR = Path("runs")


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


def tokenize(splits: dict[str, Any], tokenizer: Any, config: TrainConfig) -> dict[str, Any]:
    """Token ids per review, cleaned and cut by `config.truncation` (`utils.encode`, as
    inference does) and unpadded: the collator pads each batch to its longest review."""

    def cut(batch: dict[str, list]) -> dict[str, list]:
        encoded = encode(tokenizer, batch["text"], config.truncation)
        return {key: encoded[key] for key in ("input_ids", "attention_mask")}

    return {
        name: split.map(
            cut, batched=True, remove_columns=[c for c in split.column_names if c != "label"]
        )
        for name, split in splits.items()
    }


def training_arguments(config: TrainConfig, checkpoints: Path) -> Any:
    """The Trainer settings of a run: evaluate and save every epoch, keep the best by F1."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(checkpoints),
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="f1",
        greater_is_better=True,
        save_total_limit=1,  # the Trainer still keeps the best checkpoint beside the last
        save_only_model=True,  # no optimizer state: a checkpoint is the weights alone
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=EVAL_BATCH_SIZE,
        gradient_accumulation_steps=config.grad_accum,
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        warmup_steps=WARMUP_RATIO,  # a float below 1 is a share of all steps
        weight_decay=WEIGHT_DECAY,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=0.02,  # a share of all steps: 50 points on the loss curve
        report_to="none",  # TensorBoard, if asked, gets its own folder: see `build_trainer`
        dataloader_pin_memory=torch.cuda.is_available(),  # pinning is for copies to a GPU
    )


def checkpoint_dir(config: TrainConfig) -> Path:
    """Scratch for per-epoch checkpoints, hidden beside the model folder; removed on success."""
    output = Path(config.output_dir).absolute()
    return output.parent / f".{output.name}.checkpoints"


def build_trainer(config: TrainConfig, tokenizer: Any, model: Any, tokens: dict[str, Any]) -> Any:
    """A Trainer for the train split; after `.train()` it holds the best epoch by validation F1."""
    from transformers import DataCollatorWithPadding, PrinterCallback, ProgressCallback, Trainer

    checkpoints = checkpoint_dir(config)
    shutil.rmtree(checkpoints, ignore_errors=True)  # scratch from an earlier run
    collator = DataCollatorWithPadding(tokenizer)
    # Batches of reviews of like length pad less: 17% fewer token slots for the default's 500
    # validation reviews in batches of 32. A review scores the same in any batch.
    validation = tokens["validation"]
    validation = validation.select(np.argsort([len(ids) for ids in validation["input_ids"]]))
    callbacks = []
    if config.head_init == "probe":  # first, so its bar ends before the training bar starts
        callbacks.append(probe_head(tokens["train"], collator, EVAL_BATCH_SIZE))
    callbacks.append(console_progress())
    if config.report_to == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        logs = TENSORBOARD_DIR / f"{Path(config.output_dir).name}-{time.strftime('%Y%m%d-%H%M%S')}"
        callbacks.append(TensorBoardCallback(SummaryWriter(log_dir=str(logs))))
        logger.info("TensorBoard logs in %s/ (tensorboard --logdir %s)", logs, TENSORBOARD_DIR)
    trainer = Trainer(
        model=model,
        args=training_arguments(config, checkpoints),
        train_dataset=tokens["train"],
        eval_dataset=validation,  # the test split never reaches model selection
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=validation_metrics,
        callbacks=callbacks,
    )
    for printer in (ProgressCallback, PrinterCallback):  # they print raw log dicts
        trainer.remove_callback(printer)
    # The classifier's loss is a mean over its micro-batch. The Trainer takes any model whose
    # forward has **kwargs to normalise by the accumulated batch itself, skips its division by
    # grad_accum, and so sums the means: gradients and logged loss grad_accum times too large.
    trainer.loss_is_scaled_for_ga = False
    return trainer


def console_progress() -> Any:
    """A Trainer callback for people: one progress bar over the optimizer steps and one line
    per epoch. The raw logs go to metrics.json (and TensorBoard), not the console."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class ConsoleProgress(TrainerCallback):
        bar: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar = tqdm(total=state.max_steps, desc="Training", unit="step", dynamic_ncols=True)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar.update(state.global_step - self.bar.n)

        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            metrics = kwargs["metrics"]
            losses = [row["loss"] for row in state.log_history if "loss" in row]
            self.bar.write(
                f"Epoch {state.epoch:g}/{args.num_train_epochs:g}: training loss "
                f"{f'{losses[-1]:.3f}' if losses else 'not logged yet'}, validation loss "
                f"{metrics['eval_loss']:.3f}, accuracy {metrics['eval_accuracy']:.1%}, "
                f"F1 {metrics['eval_f1']:.1%}"
            )

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar.close()

    return ConsoleProgress()


VALIDATION_KEYS = ("loss", "accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")


def best_epoch(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The validation metrics of the epoch the Trainer kept (the first of equal F1s, as it does)."""
    best = max((row for row in history if "eval_f1" in row), key=lambda row: row["eval_f1"])
    metrics = {key: best[f"eval_{key}"] for key in VALIDATION_KEYS}
    matrix = [[best["eval_tn"], best["eval_fp"]], [best["eval_fn"], best["eval_tp"]]]
    return {"epoch": best["epoch"]} | metrics | {"confusion_matrix": matrix}


def serving_classifier(model: Any, tokenizer: Any, config: TrainConfig) -> Any:
    """`model` as `infer` will serve it: eval mode, reading as the config says."""
    from serving.classifier import Classifier

    model.eval()  # training leaves dropout on
    return Classifier(model, tokenizer, LABELS, truncation=config.inference_truncation)


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
    if config.head_init == "probe":
        classifier_layer(model)  # a head the probe cannot fit stops the run now, not at epoch 0
    logger.info(
        "Model %s (%.1fM parameters, %s pooling), %d tokens (%s), %g epochs, batch %d x %d, lr %g",
        Path(config.model).name,
        model.num_parameters() / 1e6,
        config.pooling,
        config.max_length,
        config.truncation,
        config.epochs,
        config.batch_size,
        config.grad_accum,
        config.learning_rate,
    )
    fit = {name: splits[name] for name in ("train", "validation")}  # the test split stays out
    return tokenizer, build_trainer(config, tokenizer, model, tokenize(fit, tokenizer, config))


def run(config: TrainConfig) -> dict[str, Any]:
    """Train, test and publish one model as `config` says; return what `metrics.json` holds."""
    from transformers import set_seed

    started = time.perf_counter()
    check_config(config)
    if config.push_to_hub:
        check_push(config.push_to_hub)
    config = resolve_pooling(config)
    short_sets = load_short_sets(config.short_data) if config.short_data else {}
    imdb, splits, sources = build_splits(config, short_sets)
    for count in sources:
        logger.info(
            "Extra data %s: %s rows, %s to training and %s to validation (%s dropped: they "
            "are or lie inside validation, test or --short-data texts)",
            count["source"],
            *(f"{count[key]:,}" for key in ("rows", "train", "validation", "dropped")),
        )
    sizes = {name: len(split) for name, split in splits.items()}
    logger.info(
        "Data %s: %s train, %s validation, %s test reviews (balanced)",
        config.data,
        *(f"{n:,}" for n in sizes.values()),
    )
    tokenizer, trainer = prepare(config, splits)
    classifier = serving_classifier(trainer.model, tokenizer, config)
    baseline, _ = test_split(classifier, splits["test"], "Baseline (untrained head)")
    set_seed(config.seed)  # each DataLoader draws from the global RNG: training starts afresh
    trained = trainer.train()
    classifier, calibration = calibrated(
        serving_classifier(trainer.model, tokenizer, config),
        splits["validation"],
        config.seed,
        short_reviews(imdb, splits),
    )
    test, rows = test_split(classifier, splits["test"])
    short = {name: test_split(classifier, split, name)[0] for name, split in short_sets.items()}
    report = {
        "name": f"{Path(config.model).name}-imdb-sentiment",
        "labels": list(LABELS),
        "max_length": config.max_length,
        "test": test,
        "baseline": baseline,
        "validation": best_epoch(trainer.state.log_history),
        "train": {
            "loss": trained.training_loss,  # mean over all steps
            "seconds": round(trained.metrics["train_runtime"], 1),
            "reviews_per_second": round(trained.metrics["train_samples_per_second"], 2),
        },
        "calibration": calibration,
        "short": short,
        "test_truncated_share": truncated_share(rows["tokens"], config.max_length),
        "data": {"source": config.data, "extra": sources} | sizes | {"sha256": fingerprint(splits)},
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
    shutil.rmtree(trainer.args.output_dir, ignore_errors=True)  # the model folder replaces them
    return report
