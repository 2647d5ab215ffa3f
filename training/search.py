"""`python main.py search --trials N`: Optuna over the learning recipe, for the best epoch's
validation F1. The test split is never scored; the best recipe is saved as a config file.

    search(config, train.prepare, trials=20, storage="sqlite:///search.db")
    # search/best.yaml; python main.py --config search/best.yaml

Not `Trainer.hyperparameter_search`: it minimises unless told otherwise, scores a trial by its
last evaluation instead of its best (transformers #25247) and leaves `best_model_checkpoint`
at the last trial's (#23150). Here each trial is a plain run of `train.prepare`, scored by
`best_epoch`, the epoch a published model would keep, and pruned by the median of the
trials before it at the same epoch. With `--storage` a study persists and a rerun continues
it up to `--trials`. The study's first trial is the recipe as given, so the table says what
the search gained over it.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.checkpoints import checkpoint_dir
from training.config import TrainConfig, UsageError, as_saved
from training.extra import build_splits
from training.trainer import NonFiniteLoss, best_epoch

logger = logging.getLogger(__name__)

INSTALL = "pip install -r requirements-workbench.txt"
STUDY = "movie-sentiment"
BEST_FILE = "best.yaml"


def space(trial: Any) -> dict[str, Any]:
    """The settings one trial tries: the four that move validation F1 most in our runs."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-4, log=True),
        "epochs": float(trial.suggest_int("epochs", 1, 4)),
        "warmup_ratio": trial.suggest_float("warmup_ratio", 0.0, 0.2),
        "weight_decay": trial.suggest_float("weight_decay", 0.0, 0.1),
    }


def search(
    config: TrainConfig, prepare: Callable[..., tuple[Any, Any]], trials: int, storage: str | None
) -> dict[str, Any]:
    """Run the study to `trials` finished trials; save the best recipe under
    `config.output_dir` with a CSV of every trial; return the best settings."""
    try:
        import optuna
    except ImportError as error:
        raise UsageError(f"search needs Optuna: {INSTALL}") from error
    if trials < 1:
        raise UsageError(f"--trials {trials}: use 1 or more.")
    output = Path(config.output_dir)
    splits = build_splits(config, {})[1]
    fit = {name: splits[name] for name in ("train", "validation")}  # never the test split
    try:
        study = optuna.create_study(
            study_name=STUDY,
            storage=storage,
            load_if_exists=True,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=config.seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
        )
    except (ValueError, ImportError) as error:  # a malformed URL, a missing database driver
        raise UsageError(f"--storage {storage}: {error}") from error
    if not study.trials:
        study.enqueue_trial(
            {key: getattr(config, key) for key in ("learning_rate", "warmup_ratio", "weight_decay")}
            | {"epochs": round(config.epochs)}
        )
    done = [t for t in study.trials if t.state.is_finished()]
    logger.info("Study %s: %d of %d trials done", STUDY, len(done), trials)

    def objective(trial: Any) -> float:
        trial_config = dataclasses.replace(
            config, **space(trial), output_dir=str(output / "trial"), report_to="none"
        )
        shutil.rmtree(checkpoint_dir(trial_config), ignore_errors=True)
        _, trainer = prepare(trial_config, fit)
        pruner = pruning(trial)
        trainer.add_callback(pruner)
        try:
            trainer.train()
        finally:
            shutil.rmtree(checkpoint_dir(trial_config), ignore_errors=True)
        if pruner.pruned:
            raise optuna.TrialPruned()
        return best_epoch(trainer.state.log_history)["f1"]

    # A diverged trial (NaN loss) fails on its own; the study goes on.
    study.optimize(objective, n_trials=max(0, trials - len(done)), catch=(NonFiniteLoss,))
    best = study.best_trial
    settings = space(optuna.trial.FixedTrial(best.params))
    write_results(study, output, as_saved(dataclasses.replace(config, **settings)))
    command = f"python main.py --config {output / BEST_FILE}"
    logger.info(
        "Best of %d trials: validation F1 %.2f%% (trial %d: %s). Train it: %s",
        len(study.trials),
        100 * best.value,
        best.number,
        ", ".join(f"{k} {v:.3g}" for k, v in settings.items()),
        command,
    )
    print(command)
    return settings


def pruning(trial: Any) -> Any:
    """A Trainer callback reporting each epoch's validation F1 to `trial` and stopping the run
    when Optuna's pruner says the trial is behind the others at that epoch."""
    from transformers import TrainerCallback

    class Pruning(TrainerCallback):
        pruned = False

        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            trial.report(kwargs["metrics"]["eval_f1"], step=round(state.epoch))
            if trial.should_prune():
                self.pruned = control.should_training_stop = True

    return Pruning()


def write_results(study: Any, output: Path, best: dict[str, Any]) -> None:
    """`best.yaml` (the best recipe, a config file for `--config`) and `trials.csv`."""
    import yaml

    output.mkdir(parents=True, exist_ok=True)
    best["output_dir"] = "model"
    (output / BEST_FILE).write_text(yaml.safe_dump(best, sort_keys=False))
    names = sorted({name for t in study.trials for name in t.params})
    with open(output / "trials.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["trial", "state", "validation_f1", *names])
        for t in study.trials:
            writer.writerow([t.number, t.state.name, t.value, *(t.params.get(n) for n in names)])
