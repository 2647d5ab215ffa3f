"""The page's "Whole files" tab against `infer` on the same reviews.

    python -m benchmarks.batch_tab --model-dir model --data IMDB --reviews 1000

Writes the benchmark's balanced IMDB test reviews to a CSV, uploads it to the page's
`/classify_file` (`python app.py` in its own process, as `load.py` starts it, driven through
`gradio_client`), and times the call end to end; then, with the app stopped, times
`infer.load(model_dir).classify` on the same list. Prints both.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

import infer
from benchmarks.inference import reviews
from benchmarks.load import start_app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("model"))
    parser.add_argument("--data", default="stanfordnlp/imdb")
    parser.add_argument("--reviews", type=int, default=1000)
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    texts, _ = reviews(args.data, args.reviews)
    with tempfile.TemporaryDirectory() as folder, open(Path(folder) / "log", "w") as log:
        process, url, _ = start_app(args.model_dir.absolute(), log)
        try:
            client = Client(url, verbose=False)
            path = Path(folder) / "reviews.csv"
            pd.DataFrame({"text": texts}).to_csv(path, index=False)
            started = time.perf_counter()
            summary, *_ = client.predict(handle_file(str(path)), api_name="/classify_file")
            tab = time.perf_counter() - started
        finally:
            process.terminate()
            process.wait(30)
    classifier = infer.load(args.model_dir)
    started = time.perf_counter()
    classifier.classify(texts)
    direct = time.perf_counter() - started
    print(f"{summary}\nfile tab, end to end: {tab:.1f} s; infer.classify: {direct:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
