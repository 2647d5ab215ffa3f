"""The Hub, which tests never reach: MODEL_ID for the app, --push-to-hub for training."""

from __future__ import annotations

import pytest
from conftest import train_args

import app
import infer
import main


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
