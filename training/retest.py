"""Re-test a published model and rewrite its metrics and reports, without training.

    retest(Path("model"), data="../shared/data/imdb")["test"]["accuracy"]
    # 0.895

The test reviews are drawn as the training run drew them (its saved settings and seed), from
`data` and `test_subset` where given, and the calibration is fitted again on the validation
reviews it drew (the same ones, so the same fit). `python main.py evaluate` calls this.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from serving import calibration as calibration_file
from training.config import UsageError, as_saved, saved_config
from training.data import fingerprint, load_short_sets, short_reviews
from training.extra import build_splits
from training.plots import truncated_share
from training.publish import publish
from training.report import REWRITTEN_FILES, write_results
from training.scoring import calibrated, test_split


def retest(model_dir: Path, data: str | None = None, test_subset: int | None = None) -> dict:
    """Test `model_dir` again and publish it with fresh metrics; return the new metrics.json."""
    from serving.classifier import Calibration, ModelNotFoundError, check_model_dir, load

    try:
        check_model_dir(model_dir)
        # Long reviews read as saved with the model; the calibration fitted again below.
        classifier = load(model_dir, calibration=Calibration(), backend="torch")
    except ModelNotFoundError as error:
        raise UsageError(str(error)) from error
    if not (model_dir / "metrics.json").is_file():
        raise UsageError(
            f"{model_dir}/ has no metrics.json, so its test settings are unknown; "
            "retrain it with python main.py."
        )
    saved = json.loads((model_dir / "metrics.json").read_text())
    config = saved_config(saved["config"], f"{model_dir}/", data=data, test_subset=test_subset)
    short_sets = load_short_sets(config.short_data) if config.short_data else {}
    imdb, splits, sources = build_splits(config, short_sets)
    classifier, calibration = calibrated(
        classifier, splits["validation"], config.seed, short_reviews(imdb, splits), sources
    )
    test, rows = test_split(classifier, splits["test"])
    short = {name: test_split(classifier, split, name)[0] for name, split in short_sets.items()}
    hashes = fingerprint(splits)
    baseline = saved["baseline"]
    if hashes["test"] != saved["data"]["sha256"]["test"]:
        baseline = None  # measured on other reviews; the card then says "not measured"
    report = saved | {
        "test": test,
        "baseline": baseline,
        "calibration": calibration,
        "short": short,
        "test_truncated_share": truncated_share(rows["tokens"], classifier.max_length),
        "data": saved["data"]
        | {
            "source": config.data,
            "extra": sources,  # as rebuilt: folders published before --extra-data lack it
            "test": len(splits["test"]),
            "sha256": hashes,
        },
        "config": as_saved(config),
    }

    def write(folder: Path) -> None:
        for file in model_dir.iterdir():
            if file.name in REWRITTEN_FILES:
                continue  # written afresh below, never edited in place
            try:
                os.link(file, folder / file.name)  # the same weights, without a copy
            except OSError:
                shutil.copy2(file, folder / file.name)
        calibration_file.write(folder, classifier.calibration)
        write_results(folder, report, rows)

    publish(write, model_dir)
    return report
