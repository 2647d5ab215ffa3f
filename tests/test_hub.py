"""The Hub, which tests never reach: MODEL_ID for the app, --push-to-hub for training."""

from __future__ import annotations

import shutil

import huggingface_hub
import pytest
from conftest import train_args

import app
import infer
import main
import train


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("me/movie-sentiment", "the Hugging Face Hub is unreachable from here"),
        ("movie-sentiment", "name a Hub repository as owner/name"),
    ],
)
def test_push_to_hub_without_the_hub_stops_before_training(
    tmp_path, base_model, data_dir, capsys, name, says
):
    output = tmp_path / "model"
    args = train_args(base_model, data_dir, output, "--push-to-hub", name)
    assert main.main(args) == 2
    assert says in capsys.readouterr().err
    assert not output.exists() and not (tmp_path / ".model.checkpoints").exists()


def test_model_id_without_the_hub_says_so_plainly(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    monkeypatch.setenv("MODEL_DIR", str(folder))
    monkeypatch.setenv("MODEL_ID", "someone/movie-sentiment")
    infer.reset()
    with pytest.raises(infer.ModelNotFoundError, match="MODEL_ID someone/movie-sentiment: could"):
        infer.get_classifier()
    notice = app.model_notice(folder)
    assert "could not download it from the Hugging Face Hub" in notice
    assert "set MODEL_DIR to a model folder" in notice


def test_model_id_is_not_fetched_when_the_folder_holds_a_model(model_dir, monkeypatch):
    monkeypatch.setenv("MODEL_DIR", str(model_dir))
    monkeypatch.setenv("MODEL_ID", "someone/movie-sentiment")  # unreachable: never asked
    infer.reset()
    assert infer.get_classifier().labels == ("NEGATIVE", "POSITIVE")
    infer.reset()


def test_model_id_downloads_into_the_served_folder_once(model_dir, tmp_path, monkeypatch):
    """The Hub stood in for by a copy: what the app asks of huggingface_hub, and what it does
    with the answer."""
    calls = []

    def snapshot_download(repo_id, local_dir):
        calls.append((repo_id, local_dir))
        shutil.copytree(model_dir, local_dir, dirs_exist_ok=True)
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    folder = tmp_path / "model"
    monkeypatch.setenv("MODEL_DIR", str(folder))
    monkeypatch.setenv("MODEL_ID", "someone/movie-sentiment")
    infer.reset()
    assert infer.get_classifier().backend == "onnx"
    assert calls == [("someone/movie-sentiment", folder)]
    infer.reset()
    infer.get_classifier()  # the folder now holds the model: no second download
    assert len(calls) == 1
    infer.reset()


@pytest.mark.slow
def test_push_to_hub_uploads_the_published_folder(tmp_path, base_model, data_dir, monkeypatch):
    uploads = []

    class FakeApi:
        def create_repo(self, repo_id, repo_type, exist_ok):
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, folder_path, repo_id, commit_message):
            uploads.append((repo_id, sorted(p.name for p in folder_path.iterdir())))

    monkeypatch.setattr(train, "check_push", lambda repo_id: None)  # as if the Hub answered
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    output = tmp_path / "model"
    args = train_args(base_model, data_dir, output, "--push-to-hub", "me/movie-sentiment")
    assert main.main([*args, "--epochs", "1"]) == 0
    ((repo, files),) = uploads
    assert repo == "me/movie-sentiment"
    assert {"config.json", "model.safetensors", "model_quantized.onnx", "README.md"} <= set(files)
