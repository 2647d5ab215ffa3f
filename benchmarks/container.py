"""The Docker image, built and served as a user would: the check the README's Docker line rests on.

    python -m benchmarks.container --model-dir MODEL                 # with Docker
    python -m benchmarks.container --model-dir MODEL --engine ../shared/tools/container.sh

Builds the image from the repository's Dockerfile (`ENGINE build -t NAME .`; with podman,
`--format docker`, which keeps the HEALTHCHECK), then starts it twice on the host's network:
with MODEL mounted read-only at /home/user/app/model, and without a model. Checks, each printed
with what it found: `/healthz` answers 200 and `/api/v1/predict` labels a review; the server
runs as uid 1000 (Spaces' convention); the image's health check reports healthy; without a
model `/healthz` answers 503 with the reason. Prints the image's size; exits 1 when a check
fails. Needs Docker or podman; `--engine` takes either, or a wrapper of podman's build and run
(this project's machines: ../shared/tools/container.sh), the rest going to podman itself.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORT = 7860
REVIEW = {"texts": ["A warm, funny film with a superb cast."]}


def engine_command(engine: str, *args: str, check: bool = True) -> str:
    """`engine args...`'s standard output; RuntimeError with its error output when it fails.
    A wrapper (`container.sh`) builds and runs; podman does the rest."""
    if podman(engine) and args[0] not in ("build", "run"):
        engine = "podman"
    done = subprocess.run(
        [*shlex.split(engine), *args], capture_output=True, text=True, cwd=ROOT, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{engine} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip()


def podman(engine: str) -> bool:
    """Whether `engine` is podman, which drops HEALTHCHECK unless told `--format docker`."""
    return "podman" in engine or "container.sh" in engine


def wait_for(url: str, seconds: float) -> tuple[int, dict]:
    """The status and JSON of GET `url` once the server answers, or (0, {}) after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
        except OSError:
            time.sleep(1)
    return 0, {}


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def health(engine: str, container: str, seconds: float) -> str:
    """The container's health-check status once it leaves `starting`, as the engine reports it."""
    deadline = time.monotonic() + seconds
    status = ""
    while time.monotonic() < deadline:
        if podman(engine):  # podman runs the check on a timer only under systemd: run it now
            engine_command(engine, "healthcheck", "run", container, check=False)
        state = json.loads(engine_command(engine, "inspect", container))[0]["State"]
        status = (state.get("Health") or state.get("Healthcheck") or {}).get("Status", "")
        if status and status != "starting":
            return status
        time.sleep(2)
    return status or "no health check"


def serve(engine: str, image: str, model_dir: Path | None, seconds: float) -> dict:
    """Start `image` (with `model_dir` mounted, or without a model), run the checks, stop it."""
    name = f"movie-sentiment-check-{int(time.time())}"
    mount = ["-v", f"{model_dir.resolve()}:/home/user/app/model:ro"] if model_dir else []
    engine_command(engine, "run", "-d", "--name", name, "--network", "host", *mount, image)
    url = f"http://127.0.0.1:{PORT}"
    try:
        started = time.monotonic()
        status, body = wait_for(f"{url}/healthz", seconds)
        found = {"healthz": status, "healthz_body": body, "start_s": time.monotonic() - started}
        if model_dir:
            found["predict"] = post(f"{url}/api/v1/predict", REVIEW)
            found["uid"] = engine_command(engine, "exec", name, "id", "-u")
            found["health"] = health(engine, name, seconds)
        return found
    finally:
        logs = engine_command(engine, "logs", name, check=False)
        engine_command(engine, "rm", "-f", name, check=False)
        if logs and "Traceback" in logs:
            print(logs[-3000:], file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="a published model folder")
    parser.add_argument("--engine", default="docker", help="docker, podman, or a wrapper of one")
    parser.add_argument("--image", default="movie-sentiment")
    parser.add_argument("--seconds", type=float, default=180, help="wait for each start")
    args = parser.parse_args(argv)
    if not (args.model_dir / "config.json").is_file():
        parser.error(f"--model-dir {args.model_dir}: not a model folder; train one first.")

    started = time.monotonic()
    form = ["--format", "docker"] if podman(args.engine) else []
    engine_command(args.engine, "build", *form, "-t", args.image, ".")
    built = time.monotonic() - started
    image = json.loads(engine_command(args.engine, "inspect", "--type", "image", args.image))[0]
    # Docker keeps it under Config; podman at the top.
    healthcheck = (image.get("Config") or {}).get("Healthcheck") or image.get("Healthcheck")
    with_model = serve(args.engine, args.image, args.model_dir, args.seconds)
    without = serve(args.engine, args.image, None, args.seconds)

    status, predicted = with_model["predict"]
    checks = {
        "image keeps its HEALTHCHECK": bool(healthcheck),
        "/healthz 200 with the model": with_model["healthz"] == 200,
        "/api/v1/predict labels a review": status == 200
        and predicted["predictions"][0]["label"] in ("POSITIVE", "NEGATIVE"),
        "runs as uid 1000": with_model["uid"] == "1000",
        "health check healthy": with_model["health"] == "healthy",
        "/healthz 503 without a model, with the reason": without["healthz"] == 503
        and bool(without["healthz_body"].get("detail")),
    }
    print(f"Built {args.image} in {built:.0f} s; {image['Size'] / 1e6:.0f} MB")
    print(f"Start to /healthz 200: {with_model['start_s']:.1f} s")
    print(f"Prediction: {json.dumps(predicted)[:200]}")
    print(f"Without a model: {without['healthz']} {json.dumps(without['healthz_body'])[:200]}")
    for check, passed in checks.items():
        print(f"{'ok  ' if passed else 'FAIL'} {check}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
