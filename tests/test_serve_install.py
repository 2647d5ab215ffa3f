"""The slim serving install (`requirements-serve.txt`): the app starts and answers from a venv
without torch. CI builds that venv and names its Python in SERVE_PYTHON (`.ci/run`)."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import httpx
import pytest
from conftest import ROOT

import infer

SERVE_PYTHON = os.environ.get("SERVE_PYTHON")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not SERVE_PYTHON,
        reason="set SERVE_PYTHON to the Python of a venv made from requirements-serve.txt",
    ),
]


def test_the_app_serves_from_the_slim_install(model_dir, tmp_path):
    python = str(SERVE_PYTHON)
    for package in ("torch", "transformers"):
        missing = subprocess.run([python, "-c", f"import {package}"], capture_output=True)
        assert missing.returncode != 0, f"the serving venv should not hold {package}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = os.environ | {
        "MODEL_DIR": str(model_dir),
        "GRADIO_SERVER_PORT": str(port),
        "HF_HOME": str(tmp_path / "hf"),
    }
    log = open(tmp_path / "app.log", "w")  # noqa: SIM115 (closed below, after the process)
    app = subprocess.Popen([python, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.5)  # starting, or loading the model (503): ask again shortly
        else:
            pytest.fail("no answer in 120 s: " + (tmp_path / "app.log").read_text()[-2000:])
        answer = httpx.post(f"{url}/api/v1/predict", json={"texts": ["great wonderful film"]})
        assert answer.status_code == 200
        (prediction,) = answer.json()["predictions"]
        # The slim install answers as the full one does, in this process, on the same folder.
        expected = infer.load(model_dir).classify(["great wonderful film"])[0]
        assert prediction["label"] == expected.label == "POSITIVE"
        assert prediction["scores"]["POSITIVE"] == pytest.approx(
            expected.scores["POSITIVE"], abs=1e-4
        )
        assert httpx.get(url, timeout=10).status_code == 200  # the page itself
    finally:
        app.terminate()
        app.wait(20)
        log.close()
