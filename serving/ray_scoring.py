"""Scoring a file on Ray Data: `python infer.py --input F --output F --engine ray`.

    score_file_ray(Path("model"), Path("reviews.parquet"), Path("out.parquet"), actors=2)

The same rows out as `--engine local` (`serving/stream.py`), in the same order, with the same
labels: Ray reads the input in blocks, and a pool of `actors` actors (each loads the model once,
with `cpus` CPUs and as many threads) labels them and writes each batch itself, as an atomic
part file named at random. Only each part's name and row count come back to this process,
in the input's order, so it holds no scored row however large the file: it joins the parts in
that order, one at a time. On a local Ray by default; `--ray-address` joins a cluster (`ray
start --head` on one machine, `ray start --address HEAD:6379` on the others), where the model
folder and the output's folder must be at the same path on every node (a shared disk).

No resume: Ray does not say which input rows a batch holds, so the parts of a stopped run
cannot be matched to the rows left; a rerun says so and starts over (`--engine local`
resumes). Optional: `pip install -r requirements-ray.txt`.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

from serving.stream import (
    CHUNK_ROWS,
    StreamError,
    check_column,
    check_paths,
    join_parts,
    parts_dir,
)

log = logging.getLogger(__name__)
INSTALL = "pip install -r requirements-ray.txt"
# Reading reserves no CPU: with every CPU given to the actors, a read that waited for one
# would wait for ever (Ray Data backpressure), and reading is light beside labelling.
READ = {"num_cpus": 0}


def runtime_env() -> dict[str, Any]:
    """What a Ray job needs to label: the project's modules, shipped to every worker (pass it
    to `ray.init` when starting Ray yourself)."""
    import pooling
    import serving
    import utils

    return {"py_modules": [str(Path(serving.__file__).parent), utils.__file__, pooling.__file__]}


def read_dataset(source: Path) -> Any:
    """The input as a Ray Dataset, every column of a CSV as text (as the local engine reads)."""
    import ray

    suffix = source.suffix.lower()
    if suffix == ".parquet":
        return ray.data.read_parquet(str(source), **READ)
    if suffix == ".jsonl":
        return ray.data.read_json(str(source), lines=True, **READ)
    import pyarrow.csv as pacsv

    # Every column as text and empty fields as "", as pandas reads with keep_default_na=False.
    names = pacsv.open_csv(str(source)).schema.names
    options = pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, "string"), strings_can_be_null=False
    )
    return ray.data.read_csv(str(source), convert_options=options, **READ)


def score_file_ray(
    model_dir: Path,
    source: Path,
    output: Path,
    column: str = "text",
    actors: int = 1,
    cpus: float = 1,
    address: str | None = None,
    progress: Any = None,
    truncation: str | None = None,
    backend: str = "auto",
) -> dict[str, int]:
    """Classify every row of `source` into `output` on Ray; return the rows written."""
    try:
        import ray
    except ImportError as error:
        raise StreamError(f"--engine ray needs Ray: {INSTALL}") from error
    check_paths(source, output)
    if not ray.is_initialized():
        ray.init(address=address, runtime_env=runtime_env(), log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    # Ray 2.60's new parquet reader lists the files in a task of 1 CPU that nothing can give:
    # with every CPU held by the actors (2 actors on 2 cores), it waits for ever. The first
    # reader lists them in this process.
    context.use_datasource_v2 = False
    model_dir = Path(model_dir).absolute()
    parts = parts_dir(output).absolute()
    suffix = output.suffix.lower()

    class Labeller:
        def __init__(self) -> None:
            from serving.classifier import load

            self.classifier = load(model_dir, truncation, backend=backend)

        def __call__(self, batch: Any) -> Any:
            import pandas as pd

            from serving.stream import labelled, release_free_memory, write_atomic

            name = f"part-{uuid.uuid4().hex}{suffix}"
            write_atomic(labelled(self.classifier, batch, column), parts / name)
            release_free_memory()
            return pd.DataFrame({"part": [name], "rows": [len(batch)]})

    dataset = read_dataset(source)
    check_column(source, column, dataset.schema().names)
    written_parts = dataset.map_batches(
        Labeller,
        batch_format="pandas",
        batch_size=CHUNK_ROWS,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus,
    )
    if parts.is_dir() and any(parts.iterdir()):
        log.warning(
            "%s/ holds the parts of a stopped run; Ray cannot tell which rows they hold, so "
            "scoring starts over (--engine local resumes).",
            parts,
        )
    shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir(parents=True)
    names, written = [], 0
    for row in written_parts.iter_rows():  # in the input's order: preserve_order
        names.append(parts / row["part"])
        written += int(row["rows"])
        if progress is not None:
            progress(int(row["rows"]))
    join_parts(parts, output, names)
    return {"rows": written, "resumed_from": 0}
