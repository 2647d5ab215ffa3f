"""Scoring a file of any size: `python infer.py --input reviews.csv --output labelled.csv`.

    score_file(classifier, Path("reviews.parquet"), Path("labelled.parquet"), column="text")

The input (.csv, .jsonl or .parquet) is read in chunks of `CHUNK_ROWS`, so memory stays flat
however long the file is. Each chunk is classified (`batch.classify_rows`: a row that cannot
be read gets its note and no label) and written as one part file, atomically, into a hidden
folder beside the output; the output itself appears only when every part is there, joined in
order in one more pass. A run killed at any moment, SIGKILL included, leaves whole parts
only: the same command counts them and goes on from the next chunk, so no row is lost or
written twice.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from serving.batch import classify_rows

SUFFIXES = (".csv", ".jsonl", ".parquet")
# Rows per chunk: the classifier sorts a chunk's reviews by length, so long chunks pad little
# (throughput within a few percent of one in-memory list, benchmarks/NOTES.md); 4,096 IMDB
# reviews are about 5 MB of text.
CHUNK_ROWS = 4096
MANIFEST = "manifest.json"


class StreamError(ValueError):
    """The input or output cannot be used; the message says what to change."""


def parts_dir(output: Path) -> Path:
    """Where the parts of an unfinished output wait: hidden, beside it."""
    return output.parent / f".{output.name}.parts"


def check_paths(source: Path, output: Path) -> None:
    for path, role in ((source, "--input"), (output, "--output")):
        if path.suffix.lower() not in SUFFIXES:
            raise StreamError(f"{role} {path}: use a .csv, .jsonl or .parquet file.")
    if not source.is_file():
        raise StreamError(f"--input {source}: no such file.")
    if source.resolve() == output.resolve():
        raise StreamError("--output must differ from --input: the input is read to the end.")


def check_column(source: Path, column: str, names: list[Any]) -> None:
    """StreamError naming the columns there are when the reviews' `column` is not one."""
    if column not in names:
        raise StreamError(
            f"--input {source} has no column '{column}' (it has "
            f"{', '.join(map(str, names[:8]))}): pass the reviews' column with --column NAME."
        )


def read_chunks(source: Path, column: str, rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The input in frames of at most `rows` rows, every column as text, checked for `column`."""
    suffix = source.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        # A streamed read, page by page: the default reads a whole row group at once, and a
        # file written in one call is one row group (250,000 IMDB reviews: 325 MB of text, a
        # 364 MB peak to read it against 169 MB this way; benchmarks/NOTES.md).
        reader = pq.ParquetFile(source, buffer_size=1 << 20, pre_buffer=False)
        batches = reader.iter_batches(batch_size=rows, use_threads=False)
        chunks: Any = (batch.to_pandas() for batch in batches)
    elif suffix == ".jsonl":
        chunks = pd.read_json(source, lines=True, dtype=False, chunksize=rows)
    else:
        chunks = pd.read_csv(
            source, dtype=str, keep_default_na=False, chunksize=rows, encoding_errors="replace"
        )
    try:
        for chunk in chunks:
            check_column(source, column, list(chunk.columns))
            yield chunk
    except (ValueError, pd.errors.ParserError) as error:
        if isinstance(error, StreamError):
            raise
        raise StreamError(f"--input {source}: cannot read it ({error}).") from error


def labelled(classifier: Any, chunk: pd.DataFrame, column: str) -> pd.DataFrame:
    """`chunk` with the label, a probability per label, the unsure flag and a note added; an
    added name the input already has gets `_predicted` after it."""
    texts = [value if isinstance(value, str) else "" for value in chunk[column].tolist()]
    added = classify_rows(classifier, texts).drop(columns="text")
    added["unsure"] = added["unsure"].astype("boolean")  # empty for unread rows, in any chunk
    added.columns = [f"{name}_predicted" if name in chunk.columns else name for name in added]
    return pd.concat([chunk.reset_index(drop=True), added], axis=1)


def score_file(
    classifier: Any, source: Path, output: Path, column: str = "text", progress: Any = None
) -> dict[str, int]:
    """Classify every row of `source` into `output` (see the module's docstring); return
    the rows written and the row it resumed from (0 for a fresh run). `progress(rows)` is
    called after each chunk."""
    check_paths(source, output)
    parts = parts_dir(output)
    stat = source.stat()
    manifest = {
        "input": str(source.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "column": column,
        "chunk_rows": CHUNK_ROWS,
        "labels": list(classifier.labels),
    }
    done = resume_point(parts, manifest)
    resumed = done * CHUNK_ROWS
    written = resumed
    if progress is not None and resumed:
        progress(resumed)
    for index, chunk in enumerate(read_chunks(source, column)):
        if index < done:
            continue
        table = labelled(classifier, chunk, column)
        write_atomic(table, parts / f"part-{index:06d}{output.suffix.lower()}")
        written += len(table)
        if progress is not None:
            progress(len(table))
        release_free_memory()
    join_parts(parts, output)
    return {"rows": written, "resumed_from": resumed}


def release_free_memory() -> None:
    """Hand the memory the last chunk freed back to the system. glibc keeps freed memory for
    reuse, but chunks' texts, token windows and frames differ in size, so the kept memory
    fragments and the resident set creeps up chunk after chunk (benchmarks/NOTES.md). A
    no-op where the C library is not glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def resume_point(parts: Path, manifest: dict[str, Any]) -> int:
    """How many chunks an earlier run of the same command finished; 0, with a fresh parts
    folder, when there was none. Parts of another input or setting are refused."""
    if parts.is_dir():
        try:
            saved = json.loads((parts / MANIFEST).read_text())
        except (OSError, ValueError):
            saved = None
        if saved == manifest:
            names = sorted(p.name for p in parts.glob("part-*") if not p.name.endswith(".tmp"))
            # Parts are written in order, each whole (renamed into place): count the run.
            done = 0
            while done < len(names) and names[done].startswith(f"part-{done:06d}."):
                done += 1
            return done
        if saved is not None:
            raise StreamError(
                f"{parts}/ holds the unfinished output of another input or model ({saved['input']}"
                f", column {saved['column']}). Run that command again to finish it, or delete "
                f"the folder to start over: rm -r {parts}"
            )
        shutil.rmtree(parts)
    parts.mkdir(parents=True)
    (parts / MANIFEST).write_text(json.dumps(manifest))
    return 0


def write_atomic(table: pd.DataFrame, path: Path) -> None:
    """`table` in `path`'s format, written beside it and renamed into place."""
    partial = path.with_name(path.name + ".tmp")
    suffix = path.suffix
    if suffix == ".parquet":
        table.to_parquet(partial, index=False)
    elif suffix == ".jsonl":
        table.to_json(partial, orient="records", lines=True, force_ascii=False)
    else:
        table.to_csv(partial, index=False)
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, path)


def join_parts(parts: Path, output: Path, names: list[Path] | None = None) -> None:
    """The parts, in order (`names`, or by name), as one `output` file (written beside it,
    renamed into place); then the parts folder goes. Memory: one part at a time."""
    if names is None:
        names = sorted(p for p in parts.glob("part-*") if not p.name.endswith(".tmp"))
    partial = output.with_name(f".{output.name}.partial")
    if output.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        writer = None
        for name in names:
            table = pq.read_table(name)
            writer = writer or pq.ParquetWriter(partial, table.schema)
            writer.write_table(table.cast(writer.schema))
        if writer is None:  # an input with no rows
            pd.DataFrame().to_parquet(partial)
        else:
            writer.close()
    else:
        with open(partial, "wb") as out:
            for number, name in enumerate(names):
                with open(name, "rb") as part:
                    if number and output.suffix.lower() == ".csv":
                        part.readline()  # each CSV part has the header; the output has it once
                    shutil.copyfileobj(part, out)
    os.replace(partial, output)
    shutil.rmtree(parts)
