"""`python app.py` under load and abuse, from loopback only, bounded in count and time.

    python -m benchmarks.load --model-dir model

Starts the app as a visitor's host would (`python app.py`, its own process) and reports:

- start to first answer: from the process start to the first `POST /api/v1/predict` answer;
- 30 concurrent clients for 60 s through the page's queue (`gradio_client`, as a browser
  goes): answers per second, p50 and p95 latency, count of "busy" refusals and of any other
  error (must be 0);
- a burst of 120 simultaneous REST requests: how many were answered and how many refused fast;
- a soak of 2,000 requests mixing normal and bad inputs over both APIs: the server's resident
  memory at request 500 and at the end (growth must stay within 5%);
- the bad-input matrix: what each bad input gets from the REST API and the page's API.

Writes benchmarks/results/load.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
REVIEWS = [  # what visitors type, and one long review
    "Loved it!",
    "Not bad at all.",
    "It was okay, nothing special.",
    "A complete waste of two hours. The plot makes no sense and the acting is wooden.",
    "The cinematography is gorgeous, but the story drags badly in the middle.",
    "I expected little, but this film won me over: a sharp script, a warm lead performance "
    "and an ending that made me cry.",
    " ".join(["The first hour is slow and the dialogue clunky, but the final act is superb."] * 25),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_app(model_dir: Path, log: Any) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    env = os.environ | {"MODEL_DIR": str(model_dir), "GRADIO_SERVER_PORT": str(port)}
    env |= {"GRADIO_ANALYTICS_ENABLED": "False"}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env,
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = started + 120
    while time.perf_counter() < deadline:
        try:
            answer = httpx.post(f"{url}/api/v1/predict", json={"texts": ["A fine film."]})
            if answer.status_code == 200:
                return process, url, time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("the app gave no answer in 120 s: see its log")


def concurrent_clients(url: str, clients: int, seconds: float) -> dict[str, Any]:
    from gradio_client import Client

    latencies: list[float] = []
    busy, other, lock = [0], [0], threading.Lock()
    stop = time.perf_counter() + seconds

    def visitor(index: int) -> None:
        client = Client(url, verbose=False)
        turn = index
        while time.perf_counter() < stop:
            text = REVIEWS[turn % len(REVIEWS)]
            turn += 1
            start = time.perf_counter()
            try:
                client.predict(text, api_name="/predict")
            except Exception as error:  # a refusal is a result here, counted by kind
                with lock:
                    (busy if "queue" in str(error).lower() else other)[0] += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(visitor, range(clients)))
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "answered": len(latencies),
        "per_second": len(latencies) / elapsed,
        "p50_s": float(np.percentile(latencies, 50)),
        "p95_s": float(np.percentile(latencies, 95)),
        "busy": busy[0],
        "other_errors": other[0],
    }


def burst(url: str, requests: int) -> dict[str, Any]:
    def one(_: int) -> tuple[int, float]:
        start = time.perf_counter()
        status = httpx.post(f"{url}/api/v1/predict", json={"texts": [REVIEWS[-1]]}, timeout=300)
        return status.status_code, time.perf_counter() - start

    with ThreadPoolExecutor(requests) as pool:
        results = list(pool.map(one, range(requests)))
    refused = [t for code, t in results if code == 503]
    return {
        "requests": requests,
        "answered": sum(code == 200 for code, _ in results),
        "refused_503": len(refused),
        "refused_p95_s": float(np.percentile(refused, 95)) if refused else None,
        "other": sum(code not in (200, 503) for code, _ in results),
    }


def gradio_call(url: str, body: bytes) -> str:
    """What the page's API answers a raw JSON body: the status and the event's outcome."""
    joined = httpx.post(
        f"{url}/gradio_api/call/predict", content=body,
        headers={"content-type": "application/json"}, timeout=60,
    )  # fmt: skip
    if joined.status_code != 200:
        return f"{joined.status_code}: {joined.text[:80]}"
    event = joined.json()["event_id"]
    stream = httpx.get(f"{url}/gradio_api/call/predict/{event}", timeout=60).text
    kind = "answered" if "event: complete" in stream else "refused"
    data = stream.split("data:", 1)[-1].strip()
    return f"{kind}: {data[:110]}"


def rest_call(url: str, body: bytes) -> str:
    answer = httpx.post(
        f"{url}/api/v1/predict", content=body,
        headers={"content-type": "application/json"}, timeout=60,
    )  # fmt: skip
    if answer.status_code == 200:
        (prediction,) = answer.json()["predictions"]
        return f"200: {prediction['label']} {max(prediction['scores'].values()):.0%}"
    detail = answer.json().get("detail")
    text = detail if isinstance(detail, str) else json.dumps(detail)[:110]
    return f"{answer.status_code}: {text[:110]}"


BAD_TEXTS = {  # name: JSON value of the text, as a client would send it
    "empty": '""',
    "zero-width only": '"\\u200b\\u200c\\u200d"',
    "controls only": '"\\u0000\\u0001\\u0007"',
    "emoji only": '"\\ud83d\\ude00\\ud83c\\udfac"',
    "lone surrogate + review": '"Terrible \\ud800film."',
    "50 x [CLS] [SEP] + Terrible film.": json.dumps("[CLS] [SEP] " * 50 + "Terrible film."),
    "Terrible film. (reference)": '"Terrible film."',
    "[UNK]": '"[UNK]"',
    "the number 42": "42",
    "a list": '["great"]',
    "a dict": '{"text": "great"}',
    "1 MiB paste": json.dumps("great film " * 104_858),
    "20,414 characters, the last 414 negative": json.dumps(
        "A fine film. " * 1_538 + "Awful. " * 60
    ),
}


def matrix(url: str) -> list[dict[str, str]]:
    rows = []
    for name, value in BAD_TEXTS.items():
        rows.append({
            "input": name,
            "REST": rest_call(url, f'{{"texts": [{value}]}}'.encode()),
            "page API": gradio_call(url, f'{{"data": [{value}]}}'.encode()),
        })  # fmt: skip
    routes = {
        "data: [] (page API)": lambda: gradio_call(url, b'{"data": []}'),
        "50 MiB body": lambda: str(
            httpx.post(f"{url}/api/v1/predict", content=b"x" * (50 << 20)).status_code
        ),
        "100 MiB upload": lambda: str(
            httpx.post(
                f"{url}/gradio_api/upload", files={"files": ("a.txt", b"x" * (100 << 20))}
            ).status_code
        ),
        "POST /gradio_api/run/predict (bypass)": lambda: str(
            httpx.post(f"{url}/gradio_api/run/predict", json={"data": ["great"]}).status_code
        ),
        "GET /monitoring": lambda: str(httpx.get(f"{url}/monitoring").status_code),
        "GET /gradio_api/dev/reload": lambda: str(
            httpx.get(f"{url}/gradio_api/dev/reload").status_code
        ),
    }
    for name, call in routes.items():
        rows.append({"input": name, "REST": call(), "page API": ""})
    return rows


def soak(url: str, pid: int, requests: int) -> dict[str, Any]:
    bodies = [f'{{"texts": [{json.dumps(text)}]}}'.encode() for text in REVIEWS]
    bodies += [f'{{"texts": [{value}]}}'.encode() for value in list(BAD_TEXTS.values())[:6]]
    # Memory is read once the caches have filled (after 500 requests, or a quarter of a short
    # soak) and at the end: growth between the two is a leak.
    warm = max(1, min(500, requests // 4))
    memory = {}
    errors = 0
    for i in range(requests):
        body = bodies[i % len(bodies)]
        if i % 4 == 3:
            outcome = gradio_call(url, body.replace(b'{"texts": [', b'{"data": ['))
        else:
            outcome = rest_call(url, body)
        errors += outcome.startswith("500")
        if i + 1 in (warm, requests):
            memory[i + 1] = rss_mb(pid)
    return {
        "requests": requests,
        "warm": warm,
        "rss_mb_warm": memory[warm],
        "rss_mb_at_end": memory[requests],
        "growth": memory[requests] / memory[warm] - 1,
        "server_errors": errors,
    }


def markdown(report: dict[str, Any]) -> str:
    c, b, s = report["concurrent"], report["burst"], report["soak"]
    lines = [
        f"Start to first answer: {report['first_answer_s']:.1f} s.",
        "",
        "| test | result |",
        "| --- | --- |",
        f"| {c['clients']} clients x {c['seconds']:.0f} s through the queue "
        f"| {c['per_second']:.1f} answers/s, p50 {c['p50_s']:.2f} s, p95 {c['p95_s']:.2f} s, "
        f"{c['busy']} busy, {c['other_errors']} other errors |",
        f"| burst of {b['requests']} REST requests | {b['answered']} answered, "
        f"{b['refused_503']} refused with 503, {b['other']} other |",
        f"| soak of {s['requests']} mixed requests | "
        f"memory {s['rss_mb_warm']:.0f} MB at {s['warm']}, "
        f"{s['rss_mb_at_end']:.0f} MB at the end ({s['growth']:+.1%}), "
        f"{s['server_errors']} server errors |",
        "",
        "| bad input | REST `/api/v1/predict` | page API `/gradio_api/call/predict` |",
        "| --- | --- | --- |",
    ]
    for row in report["matrix"]:
        cells = [row[k].replace("|", "\\|").replace("\n", " ") for k in ("REST", "page API")]
        lines.append(f"| {row['input']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("model"))
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--soak", type=int, default=2000)
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="folder for load.md and load.json"
    )
    args = parser.parse_args()
    with tempfile.TemporaryFile("w+") as server_log:
        process, url, first = start_app(args.model_dir.absolute(), server_log)
        try:
            report = {"first_answer_s": first, "matrix": matrix(url)}
            print("matrix done", file=sys.stderr)
            report["concurrent"] = concurrent_clients(url, args.clients, args.seconds)
            print(report["concurrent"], file=sys.stderr)
            report["burst"] = burst(url, 120)
            print(report["burst"], file=sys.stderr)
            report["soak"] = soak(url, process.pid, args.soak)
        finally:
            process.terminate()
            process.wait(30)
            server_log.seek(0)
            log = server_log.read()
    report["server_log_tracebacks"] = log.count("Traceback")
    text = markdown(report) + f"\n\nTracebacks in the server's log: {log.count('Traceback')}.\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load.md").write_text(text)
    (args.out / "load.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
