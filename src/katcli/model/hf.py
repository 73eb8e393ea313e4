"""Hugging Face `transformers` models as kat backbones: checks on a model directory, tokenizer adapters, saving.

Where `hf:NAME|DIR` is found is `katcli.pipeline.hf_source`; the model modules are `katcli.model.hf_models`. Weights
load from safetensors only (a directory with only `.bin` pickles is refused); models that need their own code
(`auto_map` in config.json) are refused unless `trust_remote_code` is given.

The adapters make an HF model look like kat's GPT to the training core:
- `HFChatTokenizer` (decoders): `render_for_completion` is the chat template with `add_generation_prompt=True`, a
  reply is ended by the template's end-of-turn token (kat's `<|assistant_end|>` role); `HFSegmentTokenizer`
  (encoders): the conversation as `role: content` lines is segment A, the reply segment B (`[CLS] A [SEP] B [SEP]`).
  Neither has a user-start token, so an over-long prompt is trimmed from the left keeping its first (BOS/CLS) id.
Models and tokenizers save with `save_pretrained` (safetensors), file by file atomically (`atomic_save_pretrained`).
This module imports no torch; it knows transformers' files and tokenizers, not the workspace, the hub cache, losses
or the loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from katcli.errors import KatError

PREFIX = "hf:"
END = "<|assistant_end|>"
USER_START = "<|user_start|>"
NO_TOKEN = -1  # what `encode_special(USER_START)` gives: no id equals it, so trimming keeps only the first id
WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# Files a run directory's HF export consists of (cleared with the run, never half-replaced).
EXPORT_FILES = ("config.json", "generation_config.json", "model.safetensors")
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "vocab.txt",
    "added_tokens.json",
)


def weights_file(d: Path) -> Path:
    """The file that identifies a model directory's weights: `model.safetensors`, or a sharded model's index."""
    return next((d / w for w in WEIGHTS if (d / w).is_file()), d / WEIGHTS[0])


def is_hf_ref(ref: str | None) -> bool:
    return ref is not None and ref.startswith(PREFIX)


def is_hf_dir(path: Path | None) -> bool:
    """A `save_pretrained` directory (an HF model, or a kat run trained from one, LoRA adapters included)."""
    return path is not None and ((path / "config.json").is_file() or (path / "adapter_config.json").is_file())


def weights_sha256(d: Path) -> str:
    """What identifies an HF model's weights: model.safetensors' sha256, or one over a sharded model's files."""
    from katcli.workspace.hashing import sha256_file

    if (d / "model.safetensors").is_file():
        return sha256_file(d / "model.safetensors")
    index = d / "model.safetensors.index.json"
    shards = sorted(set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values()))
    digest = hashlib.sha256(sha256_file(index).encode())
    for name in shards:
        digest.update(f"\0{name}:{sha256_file(d / name)}".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class HFSource:
    """Which copy of which model was loaded: recorded in the run's meta and the manifest."""

    requested: str
    source: str  # "local" | "hub-cache" | "hub" | "bundled"
    location: str
    revision: str | None = None  # the hub commit hash, when known
    files_sha256: dict[str, str] = field(default_factory=dict)  # local / bundled directories
    trust_remote_code: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check_model_dir(d: Path, *, trust_remote_code: bool) -> dict[str, Any]:
    """config.json of a model directory, refusing pickled weights and (without the flag) remote code."""
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        raise KatError("not a Hugging Face model directory (no config.json)", file=str(d),
                       hint="pass a directory written by save_pretrained")
    config = json.loads(cfg_path.read_text(encoding="utf-8"))
    if not any((d / w).is_file() for w in WEIGHTS):
        if any((d / w).is_file() for w in PICKLES):
            raise KatError(
                "the model's weights are .bin pickles; kat loads safetensors only", file=str(d),
                hint="convert once: AutoModel.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True)",
            )
        raise KatError("the model directory has no model.safetensors", file=str(d), hint="pass a save_pretrained directory")
    if config.get("auto_map") and not trust_remote_code:
        raise KatError(
            "this model needs its own Python code (auto_map in config.json), which kat does not run by default",
            file=str(cfg_path), hint="read that code, then pass --trust-remote-code (it is recorded with the run)",
        )
    return config


def is_encoder(config: Any) -> bool:
    """Bidirectional encoders (BERT, DeBERTa, MiniLM, …): the model types transformers has a masked-LM head for."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    mt = config.model_type
    return mt in MODEL_FOR_MASKED_LM_MAPPING_NAMES and (mt not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or mt in _ENCODERS)


_ENCODERS = {"bert", "roberta", "xlm-roberta", "camembert", "electra", "ernie", "data2vec-text", "xmod", "roc_bert"}


# ---------------------------------------------------------------------------------------------------- tokenizers


def _tok_sha(tok: Any, extra: str) -> str:
    h = hashlib.sha256(tok.backend_tokenizer.to_str().encode("utf-8"))
    h.update(b"\0" + (tok.chat_template or "").encode("utf-8") + b"\0" + extra.encode("utf-8"))
    return h.hexdigest()


class _HFTokenizerBase:
    def __init__(self, tok: Any, *, end_id: int, pad_id: int, bos_id: int) -> None:
        self.tok = tok
        self.end_id, self._pad, self._bos = int(end_id), int(pad_id), int(bos_id)

    @property
    def vocab_size(self) -> int:
        return len(self.tok)

    @property
    def bos_token_id(self) -> int:
        return self._bos

    @property
    def pad_token_id(self) -> int:
        return self._pad

    def encode_special(self, name: str) -> int:
        if name == END:
            return self.end_id
        if name == USER_START:
            return NO_TOKEN
        raise KatError(f"unknown special token {name!r}", hint="an HF tokenizer has only its end token here")

    def encode_batch(self, texts: Any, *, num_threads: int = 2) -> list[list[int]]:
        if not texts:
            return []
        return [list(x) for x in self.encode_texts(list(texts))]

    def encode_texts(self, texts: list[str]) -> list[list[int]]:
        """Token ids without special tokens; kat fits lengths itself, so transformers' length warning is noise."""
        with quiet_transformers():
            return self.tok(texts, add_special_tokens=False)["input_ids"]

    def decode(self, ids: Any) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True)

    def sha256(self) -> str:
        return _tok_sha(self.tok, f"{type(self).__name__}:{self.end_id}:{self._pad}")

    def save(self, path: str | os.PathLike[str]) -> list[Path]:
        """Write the tokenizer's files into the directory holding `path` (atomically, file by file)."""
        p = Path(path)
        return atomic_save_pretrained(self.tok, p.parent if p.suffix == ".json" else p)


class HFChatTokenizer(_HFTokenizerBase):
    """A decoder's tokenizer with a chat template, as the sequences layer sees a tokenizer."""

    @property
    def stop_token_ids(self) -> list[int]:
        """Where sampling stops: the end-of-turn token and the model's EOS."""
        eos = self.tok.eos_token_id
        return sorted({self.end_id, *([int(eos)] if eos is not None else [])})

    def render_for_completion(self, prefix: Any) -> list[int]:
        from katcli.model.tokenizer import normalize_messages

        messages = [{"role": m["role"], "content": m["content"]} for m in normalize_messages(prefix)]
        text = self.tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(self.encode_texts([text])[0])


class HFSegmentTokenizer(_HFTokenizerBase):
    """An encoder's tokenizer: `[CLS] role: content lines [SEP]` then the reply and `[SEP]`."""

    @property
    def uses_token_types(self) -> bool:
        """Whether `tokenizer(a, b)` marks segment B (BERT's token_type_ids); the model then gets the same marks."""
        return "token_type_ids" in self.tok.model_input_names

    def render_text(self, prefix: Any) -> str:
        from katcli.model.tokenizer import normalize_messages

        return "\n".join(f"{m['role']}: {m['content']}" for m in normalize_messages(prefix))

    def render_for_completion(self, prefix: Any) -> list[int]:
        ids = self.encode_texts([self.render_text(prefix)])[0]
        return [self._bos, *ids, self.end_id]


def end_of_turn_id(tok: Any) -> int:
    """The token the chat template closes an assistant turn with (found by rendering a probe reply)."""
    probe = "kat-probe-reply"
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": probe}], tokenize=False
    )
    tail = text[text.rindex(probe) + len(probe):]
    specials = set(tok.all_special_ids) | {int(i) for i in getattr(tok, "added_tokens_decoder", {})}
    for i in tok(tail, add_special_tokens=False)["input_ids"]:
        if int(i) in specials:
            return int(i)
    if tok.eos_token_id is not None:
        return int(tok.eos_token_id)
    raise KatError("the chat template ends an assistant turn with no special token", hint="pass --chat-template FILE")


def load_tokenizer(d: Path, *, encoder: bool, chat_template: str | None, trust_remote_code: bool) -> Any:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(d), trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001
        raise KatError(f"cannot load the model's tokenizer: {exc}", file=str(d), hint="save it beside the model") from None
    if not getattr(tok, "is_fast", False):
        raise KatError("kat needs a fast (tokenizers) tokenizer", file=str(d), hint="save a tokenizer.json beside the model")
    if encoder:
        if tok.cls_token_id is None or tok.sep_token_id is None:
            raise KatError("an encoder reward model needs [CLS] and [SEP] tokens", file=str(d), hint="use a BERT-style tokenizer")
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        return HFSegmentTokenizer(tok, end_id=tok.sep_token_id, pad_id=pad, bos_id=tok.cls_token_id)
    if chat_template is not None:
        tok.chat_template = Path(chat_template).read_text(encoding="utf-8")
    if not tok.chat_template:
        raise KatError(
            "the model's tokenizer has no chat template, so kat cannot render prompts for it", file=str(d),
            hint="pass --chat-template FILE (a Jinja template, e.g. the one of the model's instruct version)",
        )
    end = end_of_turn_id(tok)
    candidates = [tok.pad_token_id, tok.eos_token_id, tok.bos_token_id, 0, 1]
    pad = next(int(c) for c in candidates if c is not None and int(c) != end)
    bos = tok.bos_token_id if tok.bos_token_id is not None else pad
    return HFChatTokenizer(tok, end_id=end, pad_id=pad, bos_id=bos)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers prints load reports and progress bars; the CLI owns the terminal (kat reports what it did)."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def is_reward_dir(d: Path) -> bool:
    config = json.loads((d / "config.json").read_text(encoding="utf-8"))
    return any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or [])


def vocab_difference(a: Any, b: Any) -> str | None:
    """How two transformers tokenizers' token → id maps differ (None: the same), for a reference's refusal."""
    va, vb = a.get_vocab(), b.get_vocab()
    if va == vb:
        return None
    moved = sum(1 for t, i in va.items() if vb.get(t) != i)
    return f"{moved:,} of the policy's {len(va):,} tokens have another id or none in the reference's {len(vb):,}"


# ---------------------------------------------------------------------------------------------------- saving


def atomic_save_pretrained(obj: Any, directory: Path, *, state_dict: Any = None) -> list[Path]:
    """`obj.save_pretrained` into a temporary directory, then each file fsync'ed and `os.replace`d into place."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".hf-save-", dir=directory))
    try:
        with quiet_transformers():
            obj.save_pretrained(str(tmp), **({"state_dict": state_dict} if state_dict is not None else {}))
        out = []
        for f in sorted(tmp.iterdir()):
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(f, directory / f.name)
            out.append(directory / f.name)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
