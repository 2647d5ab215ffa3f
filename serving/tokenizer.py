"""A model folder's tokenizer read from its tokenizer.json with the `tokenizers` library alone:
the serving install needs no transformers (127 MB; benchmarks/NOTES.md, "Serving install
size"). It answers the calls serving makes, with the ids transformers' fast tokenizer gives
(tests/test_infer.py compares both).

    tokenizer = FolderTokenizer.from_folder(Path("model"))
    tokenizer(["A fine film."], return_special_tokens_mask=True)["input_ids"]
    # [[101, 1037, 2986, 2143, 1012, 102]]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class FolderTokenizer:
    """The subset of a transformers tokenizer that `utils.encode` and `serving` use."""

    backend: Any  # tokenizers.Tokenizer
    model_max_length: int
    cls_token_id: int | None
    sep_token_id: int | None
    pad_token_id: int | None

    @classmethod
    def from_folder(cls, path: Path) -> FolderTokenizer:
        """The tokenizer of the folder `path`, from its tokenizer.json and tokenizer_config.json;
        OSError when either is missing, ValueError when one is not a tokenizer's."""
        from tokenizers import Tokenizer

        settings = json.loads((path / "tokenizer_config.json").read_text())
        try:
            backend = Tokenizer.from_file(str(path / TOKENIZER_FILE))
        except Exception as error:  # the Rust library raises its own Exception for bad JSON
            if not (path / TOKENIZER_FILE).is_file():
                raise OSError(f"no {TOKENIZER_FILE}") from error
            raise ValueError(f"{TOKENIZER_FILE} is not a tokenizer's: {error}") from error
        # Windows are cut by `utils.encode`, never here; batches are padded where they run.
        backend.no_truncation()
        backend.no_padding()
        # "[CLS]" typed in a review is text, not structure (transformers' split_special_tokens).
        backend.encode_special_tokens = True
        ids = {
            name: backend.token_to_id(settings[f"{name}_token"])
            if isinstance(settings.get(f"{name}_token"), str)
            else None
            for name in ("cls", "sep", "pad")
        }
        return cls(
            backend=backend,
            model_max_length=int(settings["model_max_length"]),
            cls_token_id=ids["cls"],
            sep_token_id=ids["sep"],
            pad_token_id=ids["pad"],
        )

    def __call__(
        self,
        text: str | list[str],
        add_special_tokens: bool = True,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        split_special_tokens: bool = True,
        verbose: bool = False,
    ) -> dict[str, Any]:
        """`input_ids` and `attention_mask` of `text` (one string or a list), and if asked its
        `special_tokens_mask` and `offset_mapping`, as transformers returns them."""
        if not split_special_tokens:
            raise ValueError("serving reads typed special tokens as text: split_special_tokens")
        texts = [text] if isinstance(text, str) else list(text)
        encoded = self.backend.encode_batch(texts, add_special_tokens=add_special_tokens)
        out: dict[str, list] = {
            "input_ids": [e.ids for e in encoded],
            "attention_mask": [e.attention_mask for e in encoded],
        }
        if return_special_tokens_mask:
            out["special_tokens_mask"] = [e.special_tokens_mask for e in encoded]
        if return_offsets_mapping:
            out["offset_mapping"] = [e.offsets for e in encoded]
        return {key: value[0] for key, value in out.items()} if isinstance(text, str) else out
