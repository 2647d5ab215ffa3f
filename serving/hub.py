"""Hugging Face Hub access, the one place that reaches it: is it there, download, upload.

Serving downloads a published model (`MODEL_ID`); training asks here whether a base model
holds a file, loads datasets by name, checks the Hub before it loads a base model, and uploads
the published folder (`--push-to-hub`). No other module reaches the Hub.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from serving.model_folder import ModelNotFoundError, first_line

log = logging.getLogger(__name__)


def hub_id(name: str) -> str | None:
    """`name` when it names a Hub repository (`imdb`, `stanfordnlp/sst2`); None when it is
    meant as a local path: it exists here, starts with ".", "/" or "~", or has two "/" or more.
    Every "folder or Hub name?" question of the project is answered here.

    >>> hub_id("stanfordnlp/imdb"), hub_id("./model"), hub_id("data/imdb/train")
    ('stanfordnlp/imdb', None, None)
    """
    local = name.startswith((".", "/", "~")) or name.count("/") > 1
    return None if local or Path(name).expanduser().exists() else name


def reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers on its port, in at most `timeout` seconds.

    Without this check a download fails only after about 25 s of retries.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def has_file(repo_id: str, filename: str) -> bool:
    """Whether the Hub repository `repo_id` holds `filename`; False when the Hub is out of
    reach (whoever then loads the repository says so)."""
    if not reachable():
        return False
    from huggingface_hub import file_exists

    return file_exists(repo_id, filename)


def load_dataset(name: str) -> Any:
    """The Hub dataset `name` (`datasets.load_dataset`), from the local cache when the Hub is
    out of reach and offline mode is on; OSError within seconds when it is neither reachable
    nor cached (without the check, about 25 s of retries)."""
    import datasets

    online = reachable()
    if not online and not datasets.config.HF_HUB_OFFLINE:
        raise OSError(f"the Hugging Face Hub is unreachable and '{name}' is not cached here")
    try:
        return datasets.load_dataset(name)
    except (OSError, ConnectionError, ValueError) as error:
        if not online:
            raise OSError(
                f"the Hugging Face Hub is unreachable and '{name}' is not cached here"
            ) from error
        raise ValueError(f"could not load it ({first_line(error)})") from error


def download(repo_id: str, folder: Path) -> Path:
    """Download the Hub model repository `repo_id` into `folder` (files already there and
    unchanged are kept), or ModelNotFoundError saying plainly that the Hub is out of reach."""
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo_id, local_dir=folder)
    except (OSError, ValueError) as error:  # unreachable, no such repository, a bad id
        raise ModelNotFoundError(
            f"MODEL_ID {repo_id}: could not download it from the Hugging Face Hub "
            f"({first_line(error)}). Without the Hub, unset MODEL_ID and set MODEL_DIR to a "
            "model folder trained with `python main.py`."
        ) from error
    log.info("Model %s downloaded into %s/", repo_id, folder)
    return folder


def upload(folder: Path, repo_id: str) -> str:
    """Upload the published `folder` (weights, ONNX model, card, reports) to the Hub model
    repository `repo_id`, made if new; returns its URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    url = api.create_repo(repo_id, repo_type="model", exist_ok=True)
    api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message="Publish the model")
    return str(url)
