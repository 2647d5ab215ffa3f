"""Measurements on real data: clients of the public API, run as `python -m benchmarks.NAME`.

Their commands name IMDB (a folder of IMDB's train/test .parquet, .csv or .jsonl, or the Hub's
`stanfordnlp/imdb`), SHORT (a folder of short-review sets: text, label, optionally kind) and
BASE (a base model: a Hub name or a local folder). `benchmarks/README.md` lists each benchmark
with its command and current figures; `benchmarks/NOTES.md` keeps the experiments behind them.
"""
