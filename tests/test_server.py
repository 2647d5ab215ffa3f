"""`python app.py`'s server on loopback: the REST API, the health check, the guard, and the
bad-input matrix through every entry point (infer API and CLI, Gradio API, REST)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from gradio_client import Client
from gradio_client.exceptions import AppError

import app
import infer
from serving import server as server_module
from serving import words
from utils import MAX_CHARS


class Served:
    def __init__(self, url: str, demo) -> None:
        self.url, self.demo = url, demo

    def post(self, path: str, **kwargs) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", timeout=60, **kwargs)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=60)


def start(model_dir: Path) -> Iterator[Served]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo = app.build_demo(model_dir)
    served = server_module.build_server(demo, model_dir)
    config = uvicorn.Config(served, "127.0.0.1", port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start in 30 s"
    yield Served(f"http://127.0.0.1:{port}", demo)
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def served(model_dir):
    infer.reset()
    yield from start(model_dir)


@pytest.fixture(scope="module")
def client(served):
    return Client(served.url, verbose=False)


@pytest.fixture(scope="module")
def classifier(model_dir):
    return infer.load(model_dir)


# --- REST ---------------------------------------------------------------------------------


def test_rest_predicts_one_review_as_the_library_does(served, model_dir):
    response = served.post("/api/v1/predict", json={"texts": ["great wonderful superb film"]})
    assert response.status_code == 200
    (prediction,) = response.json()["predictions"]
    expected = infer.load(model_dir).classify(["great wonderful superb film"])[0]
    assert prediction["label"] == expected.label == "POSITIVE"
    assert prediction["scores"] == pytest.approx(expected.scores)
    assert prediction["unsure"] == expected.unsure


def test_rest_predicts_a_batch_in_order_and_takes_a_single_string(served):
    texts = ["great wonderful film", "awful dull boring plot", "loved it superb"]
    batch = served.post("/api/v1/predict", json={"texts": texts}).json()["predictions"]
    assert [p["label"] for p in batch] == ["POSITIVE", "NEGATIVE", "POSITIVE"]
    one = served.post("/api/v1/predict", json={"texts": texts[1]}).json()["predictions"]
    assert one[0]["scores"] == pytest.approx(batch[1]["scores"])


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"texts": []}, "Send 1 to 64 reviews; got 0"),
        ({"texts": ["great"] * 65}, "Send 1 to 64 reviews; got 65"),
        ({"texts": 42}, "texts"),
        ({"texts": [42]}, "texts"),
        ({"texts": {"a": "great"}}, "texts"),
        ({"text": ["great"]}, "texts"),
        ({"texts": [""]}, "Review 0 is empty"),
        ({"texts": ["great", "😀🍿"]}, "Review 1 has no words"),
    ],
)
def test_rest_refuses_bad_bodies_with_422_and_a_message(served, body, says):
    response = served.post("/api/v1/predict", json=body)
    assert response.status_code == 422
    # One error shape, FastAPI's own validation errors included: a sentence.
    assert set(response.json()) == {"detail"} and says in response.json()["detail"]


def test_rest_refuses_bodies_that_are_not_json_with_the_fix(served):
    response = served.post("/api/v1/predict", content=b"{not json", headers=_JSON)
    assert response.status_code == 422
    assert 'Send JSON such as {"texts": ["A fine film."]}' in response.json()["detail"]
    undecodable = served.post("/api/v1/predict", content=b"\xff\xfe\xfa", headers=_JSON)
    assert undecodable.status_code == 400
    assert "content-type: application/json" in undecodable.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("TRACE", "/healthz", "GET"),
        ("GET", "/api/v1/predict", "POST"),
        ("QUERY", "/healthz", "GET"),
    ],
)
def test_a_method_a_rest_path_does_not_serve_gets_405_and_allow(served, method, path, allow):
    response = httpx.request(method, served.url + path, timeout=60)
    assert response.status_code == 405 and response.headers["allow"] == allow
    assert response.json() == {"detail": f"{path} takes {allow} only."}
    assert httpx.request(method, served.url + "/no/such/path").status_code == 404


@pytest.mark.slow
def test_the_api_keeps_the_promises_of_its_openapi_document(served, tmp_path):
    """schemathesis (property-based, every check): requests the document allows are answered,
    every answer matches its declared schema and status, undeclared methods get 405."""
    result = subprocess.run(
        [
            shutil.which("schemathesis") or "schemathesis", "--no-color", "run",
            f"{served.url}/openapi.json", "--checks", "all", "--max-examples", "40", "--seed", "1",
        ],
        capture_output=True, text=True, timeout=300,
        cwd=tmp_path,  # its cache of failing cases, which later runs replay, stays out of the tree
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
    assert "No issues found" in result.stdout


def test_oversized_bodies_get_413_before_they_are_read(served):
    big = json.dumps({"texts": ["great " * 400_000]}).encode()  # 2.4 MB
    response = served.post("/api/v1/predict", content=big, headers=_JSON)
    assert response.status_code == 413
    assert "at most 100,000 characters" in response.json()["detail"]
    assert "1 MiB a request" in response.json()["detail"]
    # Chunked, with no Content-Length: cut off at the cap all the same.
    chunked = served.post("/api/v1/predict", content=iter([big[:600_000], big[600_000:]]))
    assert chunked.status_code == 413
    assert "too large" in chunked.json()["detail"]
    queue = served.post("/gradio_api/queue/join", content=big, headers=_JSON)
    assert queue.status_code == 413
    upload = served.post("/gradio_api/upload", files={"files": ("a.txt", b"x" * (3 << 20))})
    assert upload.status_code == 413
    small = served.post("/api/v1/predict", json={"texts": ["great " * 15_000]})  # 90 KB
    assert small.status_code == 200  # under the REST cap: read


def _post_urllib(url: str, body: bytes) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers=dict(_JSON), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _post_requests(url: str, body: bytes) -> tuple[int, str]:
    import requests

    response = requests.post(url, data=body, headers=_JSON, timeout=60)
    return response.status_code, response.text


def _post_httpx(url: str, body: bytes) -> tuple[int, str]:
    response = httpx.post(url, content=body, headers=_JSON, timeout=60)
    return response.status_code, response.text


def _post_curl(url: str, body: bytes) -> tuple[int, str]:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (apt install curl)")
    result = subprocess.run(
        ["curl", "-sS", "-X", "POST", "-H", "content-type: application/json",
         "--data-binary", "@-", "-w", "\n%{http_code}", url],
        input=body, capture_output=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    text, _, status = result.stdout.decode().rpartition("\n")
    return int(status), text


@pytest.mark.parametrize("megabytes", [2, 12])
@pytest.mark.parametrize("post", [_post_urllib, _post_requests, _post_httpx, _post_curl])
def test_every_client_reads_the_413_of_a_large_body(served, post, megabytes):
    """The server reads and drops the refused body before it answers, so a client that sends
    all of it before reading (urllib) gets the 413, not "Broken pipe". 12 MB passes what the
    loopback's socket buffers hold, where an answer sent before reading always broke urllib."""
    body = json.dumps({"texts": ["great " * (megabytes * 166_667)]}).encode()
    for _ in range(10):
        status, text = post(f"{served.url}/api/v1/predict", body)
        assert status == 413
        assert "fewer reviews per request" in json.loads(text)["detail"]


def test_health_check_runs_the_model(served):
    response = served.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "labels": ["NEGATIVE", "POSITIVE"]}


def test_openapi_docs_describe_the_predict_route(served):
    spec = served.get("/openapi.json").json()
    assert "/api/v1/predict" in spec["paths"] and "/healthz" in spec["paths"]
    assert served.get("/docs").status_code == 200


def test_over_capacity_rest_requests_get_fast_503s(served, monkeypatch):
    monkeypatch.setattr(server_module, "MAX_QUEUE", 1)
    results: list[int] = []
    with server_module.MODEL_LOCK:  # the model is busy with someone else's review
        first = threading.Thread(
            target=lambda: results.append(
                served.post("/api/v1/predict", json={"texts": "great"}).status_code
            )
        )
        first.start()
        time.sleep(1.0)  # the first request is now waiting for the model
        started = time.monotonic()
        busy = [served.post("/api/v1/predict", json={"texts": "great"}) for _ in range(3)]
        elapsed = time.monotonic() - started
    first.join(30)
    assert [r.status_code for r in busy] == [503] * 3
    assert "busy" in busy[0].json()["detail"]
    assert elapsed < 5  # answered at once, not after the model freed up
    assert results == [200]


# --- The guard ----------------------------------------------------------------------------


def test_the_queue_is_the_only_way_in(served):
    response = served.post("/gradio_api/run/predict", json={"data": ["great film"]})
    assert response.status_code == 404
    assert "join the queue" in response.text


@pytest.mark.parametrize(
    "path",
    ["/monitoring", "/monitoring/summary", "/gradio_api/monitoring", "/gradio_api/dev/reload"],
)
def test_monitoring_and_dev_routes_are_closed(served, path):
    assert served.get(path).status_code == 404


def test_responses_carry_security_headers(served):
    for response in (served.get("/"), served.get("/healthz")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors" in response.headers["content-security-policy"]


def gradio_call(served: Served, body: bytes) -> str:
    """The event stream of one queued call to the page's /predict, from a raw JSON body."""
    response = served.post("/gradio_api/call/predict", content=body, headers=_JSON)
    assert response.status_code == 200, response.text
    event = response.json()["event_id"]
    return httpx.get(f"{served.url}/gradio_api/call/predict/{event}", timeout=60).text


def test_empty_gradio_data_is_refused_without_a_traceback(served, capfd):
    stream = gradio_call(served, b'{"data": []}')
    assert "event: error" in stream and "takes 1 input(s)" in stream
    assert "Traceback" not in capfd.readouterr().err


# --- The bad-input matrix: every entry point ----------------------------------------------

# Texts with nothing to read: each entry point refuses them with a message, never a verdict.
NOTHING_TO_READ = {
    "blank": "   \n\t ",
    "zero-width only": "\u200b\u200c\u200d\ufeff",
    "controls only": "\x00\x01\x07\x1b",
    "emoji only": "😀🎬🍿",
    "symbols and digits": "10/10 !!! ***",
    "over the length cap": "great " * 20_000,  # 120,000 characters
}
NOT_TEXT = {"number": 42, "list": ["great"], "mapping": {"text": "great"}, "null": None}


@pytest.mark.parametrize("text", NOTHING_TO_READ.values(), ids=NOTHING_TO_READ.keys())
def test_nothing_to_read_is_refused_everywhere(served, client, classifier, model_dir, capsys, text):
    with pytest.raises(ValueError, match=r"Review 0 (is|has)"):
        classifier.classify([text])
    assert infer.main(["--model-dir", str(model_dir), text]) == 2
    assert "error: Review 0" in capsys.readouterr().err
    with pytest.raises(AppError, match="review"):
        client.predict(text, api_name="/predict")
    response = served.post("/api/v1/predict", json={"texts": [text]})
    assert response.status_code == 422 and "Review 0" in response.json()["detail"]


@pytest.mark.parametrize("value", NOT_TEXT.values(), ids=NOT_TEXT.keys())
def test_what_is_not_a_string_is_refused_everywhere(served, client, classifier, value):
    with pytest.raises(TypeError, match="string"):
        classifier.classify([value])
    if not isinstance(value, list):
        with pytest.raises(TypeError, match="string"):
            classifier.classify(value)
    with pytest.raises(AppError, match="Type or paste a movie review"):
        client.predict(value, api_name="/predict")
    response = served.post("/api/v1/predict", json={"texts": [value]})
    assert response.status_code == 422


def test_a_lone_surrogate_is_dropped_and_the_rest_read(served, client, classifier):
    clean = classifier.classify(["great wonderful film"])[0]
    assert classifier.classify(["great \ud800wonderful film"])[0].scores == clean.scores
    body = b'{"texts": ["great \\ud800wonderful film"]}'  # valid JSON, invalid UTF-16
    response = served.post("/api/v1/predict", content=body, headers=_JSON)
    assert response.status_code == 200
    assert response.json()["predictions"][0]["scores"] == pytest.approx(clean.scores)
    # gradio_client cannot encode a lone surrogate: the raw call route, as a script would.
    body = b'{"data": ["great \\ud800wonderful film"]}'
    stream = gradio_call(served, body)
    assert "event: complete" in stream and clean.label in stream


def test_special_token_strings_are_read_as_text(served, classifier):
    typed = "[CLS] [SEP] " * 50 + "terrible film."
    tokens = classifier.tokenizer
    encoded = infer.encode(tokens, [typed])["input_ids"][0]
    assert encoded.count(tokens.cls_token_id) == 1 and encoded.count(tokens.sep_token_id) == 1
    response = served.post("/api/v1/predict", json={"texts": [typed]})
    assert response.json()["predictions"][0]["tokens"] > 100  # 4 for "[CLS] terrible film. [SEP]"


def test_invisible_characters_change_nothing(classifier):
    clean = classifier.classify(["great wonderful film"])[0].scores
    assert classifier.classify(["gre\u200bat wonder\u00adful\x07 film\ufeff"])[0].scores == clean


def test_text_past_the_read_cap_says_how_much_was_read(served, classifier):
    review = "great film. " * 2_000  # 24,000 characters; the model reads MAX_CHARS of them
    prediction = classifier.classify([review])[0]
    assert (prediction.chars, prediction.chars_read) == (24_000, MAX_CHARS)
    line = words.coverage(prediction, classifier)
    assert line.startswith(f"Read the first {MAX_CHARS:,} of 24,000 characters")
    rest = served.post("/api/v1/predict", json={"texts": [review]}).json()["predictions"][0]
    assert (rest["chars"], rest["chars_read"]) == (24_000, MAX_CHARS)


# --- Broken model folders -----------------------------------------------------------------


def break_folder(model_dir: Path, folder: Path, how: str) -> Path:
    shutil.copytree(model_dir, folder)
    weights, config = folder / "model.safetensors", folder / "config.json"
    if how == "truncated weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "truncated config":
        config.write_text(config.read_text()[:40])
    elif how in ("config of another size", "config with more layers"):
        settings = json.loads(config.read_text())
        encoder = settings.get("encoder_config", settings)  # mean pooling nests the encoder's
        if how == "config of another size":
            encoder["hidden_dim"] *= 2
        else:
            encoder["n_layers"] += 1
        config.write_text(json.dumps(settings))
    elif how == "empty folder":
        shutil.rmtree(folder)
        folder.mkdir()
    return folder


BROKEN = ["truncated weights", "truncated config", "config of another size"]
BROKEN += ["config with more layers", "empty folder"]


@pytest.mark.parametrize("how", BROKEN)
def test_a_broken_model_folder_is_a_clear_error(tmp_path, model_dir, how):
    folder = break_folder(model_dir, tmp_path / "model", how)
    with pytest.raises(infer.ModelNotFoundError, match=r"model|weights") as error:
        infer.load(folder)
    assert "python main.py" in str(error.value)
    assert "Traceback" not in str(error.value) and len(str(error.value)) < 600


def test_a_broken_model_shows_in_the_page_and_the_health_check(tmp_path, model_dir):
    folder = break_folder(model_dir, tmp_path / "model", "truncated weights")
    for served in start(folder):
        health = served.get("/healthz")
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable"
        assert "Could not load the model" in health.json()["detail"]
        assert app.model_notice(folder).startswith("⚠️ **The model is unavailable")
        response = served.post("/api/v1/predict", json={"texts": ["great"]})
        assert response.status_code == 503


_JSON = {"content-type": "application/json"}
