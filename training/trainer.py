"""The Trainer of a run: its arguments, precision, callbacks (the head's probe, the console,
early stopping, the non-finite-loss guard, tracking) and the epoch it keeps. `train.prepare`
builds one; `trainer.train()` fine-tunes.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from training.checkpoints import checkpoint_dir
from training.config import TrainConfig, UsageError
from training.probe import probe_head
from training.scoring import EVAL_BATCH_SIZE, validation_metrics

logger = logging.getLogger(__name__)

TENSORBOARD_DIR = Path("runs")


# What `--report-to` hands the Trainer's own integrations, and where to get each package.
TRACKERS = {"mlflow": "pip install -r requirements-workbench.txt", "wandb": "pip install wandb"}


def process_rank() -> tuple[int, int]:
    """This process's rank and the number of processes (`torchrun`, `accelerate launch`);
    (0, 1) when run alone. Work done once (testing, calibrating, publishing) is rank 0's."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


class NonFiniteLoss(UsageError):
    """The training loss became NaN or infinite; the message names the step and the fix."""


def resolve_precision(choice: str) -> str:
    """`--precision` made explicit for this machine: auto is bf16 on a CUDA GPU that has it,
    fp16 on an older CUDA GPU, fp32 on a CPU (bf16 autocast on an AMX Xeon measured 3.1
    against 3.0 steps/s at batch 2: no gain). fp16 without a CUDA GPU is refused."""
    import torch

    cuda = torch.cuda.is_available()
    if choice == "auto":
        return ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
    if choice == "fp16" and not cuda:
        raise UsageError("--precision fp16 needs a CUDA GPU; use bf16 or fp32 here.")
    return choice


def check_tracker(report_to: str) -> None:
    """UsageError naming the install when `--report-to` names a package that is missing."""
    from importlib.util import find_spec

    if report_to in TRACKERS and find_spec(report_to) is None:
        raise UsageError(
            f"--report-to {report_to} needs the {report_to} package: {TRACKERS[report_to]}; "
            "or leave --report-to at none or tensorboard."
        )


def training_arguments(config: TrainConfig, checkpoints: Path) -> Any:
    """The Trainer settings of a run: evaluate and save every epoch, keep the best by F1."""
    import torch
    from transformers import TrainingArguments

    precision = resolve_precision(config.precision)
    return TrainingArguments(
        output_dir=str(checkpoints),
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="f1",
        greater_is_better=True,
        save_total_limit=1,  # the Trainer still keeps the best checkpoint beside the last
        # Optimizer, scheduler and RNG states too, so --resume continues where a run stopped.
        save_only_model=False,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=EVAL_BATCH_SIZE,
        gradient_accumulation_steps=config.grad_accum,
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a share of all steps
        weight_decay=config.weight_decay,  # AdamW's, on every weight but biases and LayerNorm
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=0.02,  # a share of all steps: 50 points on the loss curve
        logging_nan_inf_filter=False,  # the guard must see a NaN loss, not last step's mean
        # TensorBoard, if asked, gets its own folder: see `build_trainer`.
        report_to=[config.report_to] if config.report_to in TRACKERS else "none",
        run_name=Path(config.output_dir).name,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        activation_checkpointing=config.gradient_checkpointing,
        dataloader_pin_memory=torch.cuda.is_available(),  # pinning is for copies to a GPU
        # Said outright, so torchrun's processes on CPUs train as one (DDP over gloo).
        use_cpu=not torch.cuda.is_available(),
        ddp_find_unused_parameters=False,  # every trainable weight takes part in each step
        # A teacher's targets (`soft_labels`) are no argument of the model's forward; the
        # splits hold nothing else the model does not read.
        remove_unused_columns=not config.teacher,
    )


def build_trainer(config: TrainConfig, tokenizer: Any, model: Any, tokens: dict[str, Any]) -> Any:
    """A Trainer for the train split; after `.train()` it holds the best epoch by validation F1."""
    from transformers import (
        DataCollatorWithPadding,
        EarlyStoppingCallback,
        PrinterCallback,
        ProgressCallback,
    )

    collator = DataCollatorWithPadding(tokenizer)
    # Batches of reviews of like length pad less: 17% fewer token slots for the default's 500
    # validation reviews in batches of 32. A review scores the same in any batch.
    validation = tokens["validation"]
    validation = validation.select(np.argsort([len(ids) for ids in validation["input_ids"]]))
    callbacks = []
    if config.head_init == "probe":  # first, so its bar ends before the training bar starts
        callbacks.append(probe_head(tokens["train"], collator, EVAL_BATCH_SIZE))
    callbacks += [console_progress(), finite_loss_guard(config)]
    if config.patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.patience))
    if config.report_to == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        logs = TENSORBOARD_DIR / f"{Path(config.output_dir).name}-{time.strftime('%Y%m%d-%H%M%S')}"
        callbacks.append(TensorBoardCallback(SummaryWriter(log_dir=str(logs))))
        logger.info("TensorBoard logs in %s/ (tensorboard --logdir %s)", logs, TENSORBOARD_DIR)
    trainer = trainer_class(config)(
        model=model,
        args=training_arguments(config, checkpoint_dir(config)),
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


def trainer_class(config: TrainConfig) -> type:
    """The Trainer, with what `config` asks beyond it: with `--batch-tokens`, training batches
    of like-length texts within that many tokens (`training/batching.py`); with `--teacher`,
    a loss against each text's `soft_labels` (`training/distill.py`)."""
    from transformers import Trainer

    if not config.batch_tokens and not config.teacher:
        return Trainer

    class RecipeTrainer(Trainer):
        def compute_loss(
            self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, **kwargs: Any
        ) -> Any:
            targets = inputs.pop("soft_labels", None)
            if targets is None:  # validation: the true labels
                return super().compute_loss(model, inputs, return_outputs, **kwargs)
            from training.distill import soft_cross_entropy

            inputs.pop("labels", None)
            outputs = model(**inputs)
            loss = soft_cross_entropy(outputs.logits, targets)
            return (loss, outputs) if return_outputs else loss

        def get_train_dataloader(self) -> Any:
            if not config.batch_tokens:
                return super().get_train_dataloader()
            from torch.utils.data import DataLoader

            from training.batching import TokenBudgetSampler

            dataset = self._remove_unused_columns(self.train_dataset, description="Training")
            lengths = [len(ids) for ids in dataset["input_ids"]]
            loader = DataLoader(
                dataset,
                batch_sampler=TokenBudgetSampler(lengths, config.batch_tokens, config.seed),
                collate_fn=self.data_collator,
                num_workers=self.args.dataloader_num_workers,
                pin_memory=self.args.dataloader_pin_memory,
            )
            # Under torchrun, accelerate gives each process every n-th batch of the list.
            return self.accelerator.prepare(loader)

    return RecipeTrainer


def finite_loss_guard(config: TrainConfig) -> Any:
    """A Trainer callback that stops the run with NonFiniteLoss when a logged training loss
    or gradient norm is NaN or infinite: nothing after it would be worth publishing."""
    import math

    from transformers import TrainerCallback

    class FiniteLossGuard(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            logs = kwargs.get("logs") or {}
            bad = {k: logs[k] for k in ("loss", "grad_norm", "eval_loss") if k in logs}
            bad = {k: v for k, v in bad.items() if not math.isfinite(v)}
            if bad:
                raise NonFiniteLoss(
                    f"The training {', '.join(bad)} became {', '.join(map(str, bad.values()))} "
                    f"at step {state.global_step} (epoch {state.epoch:.2f}): the run diverged. "
                    f"Lower --learning-rate (now {config.learning_rate:g}; try "
                    f"{config.learning_rate / 10:g}). The published model is unchanged."
                )

    return FiniteLossGuard()


def console_progress() -> Any:
    """A Trainer callback for people: one progress bar over the optimizer steps and one line
    per epoch. The raw logs go to metrics.json (and TensorBoard), not the console."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class ConsoleProgress(TrainerCallback):
        bar: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar = tqdm(
                total=state.max_steps,
                desc="Training",
                unit="step",
                dynamic_ncols=True,
                disable=not state.is_world_process_zero,  # one bar for all torchrun processes
            )

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar.update(state.global_step - self.bar.n)

        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar.disable:
                return
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
