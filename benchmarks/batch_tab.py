"""The page's "Whole files" tab against `infer` on the same reviews.

    python benchmarks/batch_tab.py --model-dir model --data ../shared/data/imdb --reviews 1000

Writes the benchmark's balanced IMDB test reviews to a CSV, uploads it to the page's
`/classify_file` (the app launched in this process, through `gradio_client`), and times the
call end to end; then times `infer.load(model_dir).classify` on the same list. Prints both.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inference import reviews

import app
import infer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("model"))
    parser.add_argument("--data", default="stanfordnlp/imdb")
    parser.add_argument("--reviews", type=int, default=1000)
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    texts, _ = reviews(args.data, args.reviews)
    demo = app.build_demo(args.model_dir)
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False)
        client.predict("A warm-up review.", api_name="/predict")
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "reviews.csv"
            pd.DataFrame({"text": texts}).to_csv(path, index=False)
            started = time.perf_counter()
            summary, *_ = client.predict(handle_file(str(path)), api_name="/classify_file")
            tab = time.perf_counter() - started
    finally:
        demo.close()
    classifier = infer.load(args.model_dir)
    started = time.perf_counter()
    classifier.classify(texts)
    direct = time.perf_counter() - started
    print(f"{summary}\nfile tab, end to end: {tab:.1f} s; infer.classify: {direct:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
