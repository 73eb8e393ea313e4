"""The BPE tokenizer: trained with rustbpe, encoded with tiktoken, stored as plain JSON.

Training uses rustbpe with nanochat's GPT-4-style split pattern (digits in runs of at most two); the nine nanochat
special tokens are appended after the merges, in nanochat's order, so a nanochat tokenizer converts losslessly.
Encoding always goes through a `tiktoken.Encoding`. Ordinary text is encoded with `encode_ordinary`, so special-token
text typed into a message (e.g. a user writing "<|assistant_end|>") stays ordinary bytes and cannot inject control
tokens.

On disk a tokenizer is one canonical JSON file (`tokenizer.json`): the split pattern, every mergeable token's bytes in
base64 with its rank, and the special tokens. It never uses pickle; the same object always serialises to the same
bytes, so `sha256()` is the checksum of the file and identifies the tokenizer in checkpoints and the manifest.

This module also renders chat conversations into ids + loss masks (`render_conversation`) and primes a prefix for
sampling (`render_for_completion`). It knows nothing about the manifest, where training text comes from, or models;
from the workspace layer it only borrows the atomic file write and the file name.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from katcli.errors import KatError
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import paths as P
from katcli.workspace.atomic import atomic_write

SPECIAL_TOKENS: tuple[str, ...] = (
    "<|bos|>",
    "<|user_start|>",
    "<|user_end|>",
    "<|assistant_start|>",
    "<|assistant_end|>",
    "<|python_start|>",
    "<|python_end|>",
    "<|output_start|>",
    "<|output_end|>",
)

# GPT-4's split pattern with \p{N}{1,2} instead of \p{N}{1,3}, as in nanochat: small vocabularies should not spend
# merges on three-digit numbers.
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)

FORMAT = "kat-bpe-v1"
TOKENIZER_FILE = P.TOKENIZER_FILE
MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)

Conversation = Mapping[str, Any] | Sequence[Mapping[str, Any]]


class Tokenizer:
    """A byte-level BPE tokenizer with nanochat's special tokens and chat rendering."""

    def __init__(self, pattern: str, mergeable_ranks: Mapping[bytes, int], special_tokens: Mapping[str, int]) -> None:
        import tiktoken

        missing = [s for s in SPECIAL_TOKENS if s not in special_tokens]
        if missing:
            raise KatError(
                f"tokenizer lacks the special tokens {', '.join(missing)}",
                hint="kat needs nanochat's nine special tokens; retrain with `kat train tokenizer`",
            )
        ranks = dict(mergeable_ranks)
        if sorted(ranks.values()) != list(range(len(ranks))):
            raise KatError("tokenizer ranks are not the contiguous range 0..n-1", hint="the tokenizer file is corrupt")
        specials = {name: int(i) for name, i in special_tokens.items()}
        if set(specials.values()) & set(range(len(ranks))):
            raise KatError("tokenizer special-token ids collide with merge ranks", hint="the tokenizer file is corrupt")
        self._pattern = pattern
        self._ranks = ranks
        self._specials = specials
        try:
            self.enc = tiktoken.Encoding(
                name="kat-bpe", pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials
            )
        except ValueError as exc:
            raise KatError(f"tokenizer is unusable: {exc}", hint="the tokenizer file is corrupt") from exc
        self._ids = {name: specials[name] for name in SPECIAL_TOKENS}

    # ----------------------------------------------------------------------------------------------- construction

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        *,
        progress: ProgressFn = no_progress,
    ) -> Tokenizer:
        """Train BPE on `texts` so that merges + the nine special tokens total at most `vocab_size` ids.

        A corpus too small to support that many merges yields a smaller vocabulary; `vocab_size` reports the truth.
        """
        import rustbpe

        if vocab_size < MIN_VOCAB_SIZE:
            raise KatError(
                f"vocab size {vocab_size} is too small", hint=f"use at least {MIN_VOCAB_SIZE} (256 bytes + 9 specials)"
            )

        def counted() -> Iterator[str]:
            done = 0
            for text in texts:
                done += 1
                if done % 1000 == 0:
                    progress("reading text", done, None)
                yield text
            progress("reading text", done, done)

        trainer = rustbpe.Tokenizer()
        trainer.train_from_iterator(counted(), vocab_size - len(SPECIAL_TOKENS), pattern=SPLIT_PATTERN)
        ranks = {bytes(token): int(rank) for token, rank in trainer.get_mergeable_ranks()}
        offset = len(ranks)
        specials = {name: offset + i for i, name in enumerate(SPECIAL_TOKENS)}
        return cls(trainer.get_pattern(), ranks, specials)

    @classmethod
    def from_json_bytes(cls, data: bytes, *, source: str | None = None) -> Tokenizer:
        try:
            obj = json.loads(data.decode("utf-8"))
            if obj.get("format") != FORMAT:
                raise ValueError(f"format is {obj.get('format')!r}, expected {FORMAT!r}")
            ranks = {base64.b64decode(tok, validate=True): int(rank) for tok, rank in obj["mergeable_ranks"]}
            specials = {str(k): int(v) for k, v in obj["special_tokens"].items()}
            pattern = str(obj["pattern"])
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise KatError(
                f"not a kat tokenizer file: {exc}", file=source, hint="retrain it with `kat train tokenizer`"
            ) from exc
        return cls(pattern, ranks, specials)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Load from a `tokenizer.json` file or a directory holding one."""
        p = Path(path)
        if p.is_dir():
            p = p / TOKENIZER_FILE
        if not p.is_file():
            raise KatError("tokenizer not found", file=str(p), hint="run `kat train tokenizer` first")
        return cls.from_json_bytes(p.read_bytes(), source=str(p))

    # ----------------------------------------------------------------------------------------------- persistence

    def to_json_bytes(self) -> bytes:
        """Canonical serialisation: same tokenizer, same bytes (ranks in rank order, sorted keys)."""
        ranks = sorted(self._ranks.items(), key=lambda kv: kv[1])
        obj = {
            "format": FORMAT,
            "pattern": self._pattern,
            "mergeable_ranks": [[base64.b64encode(tok).decode("ascii"), rank] for tok, rank in ranks],
            "special_tokens": {name: self._specials[name] for name in sorted(self._specials, key=self._specials.get)},
        }
        return (json.dumps(obj, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")

    def sha256(self) -> str:
        """Checksum of the canonical file; equals sha256 of the saved `tokenizer.json`."""
        return hashlib.sha256(self.to_json_bytes()).hexdigest()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write `tokenizer.json` atomically into directory `path` (or to `path` if it names a .json file)."""
        p = Path(path)
        target = p if p.suffix == ".json" else p / TOKENIZER_FILE
        with atomic_write(target) as f:
            f.write(self.to_json_bytes())
        return target

    # ----------------------------------------------------------------------------------------------- encoding

    @property
    def vocab_size(self) -> int:
        return self.enc.n_vocab

    @property
    def pattern(self) -> str:
        return self._pattern

    @property
    def mergeable_ranks(self) -> dict[bytes, int]:
        return dict(self._ranks)

    @property
    def special_tokens(self) -> dict[str, int]:
        return dict(self._specials)

    @property
    def bos_token_id(self) -> int:
        return self._ids["<|bos|>"]

    @property
    def pad_token_id(self) -> int:
        """What batches are right-padded with: `<|bos|>` (a pad after the end token changes no reward or log-prob)."""
        return self._ids["<|bos|>"]

    def encode_special(self, name: str) -> int:
        try:
            return self._specials[name]
        except KeyError:
            raise KatError(f"unknown special token {name!r}", hint=f"one of {', '.join(SPECIAL_TOKENS)}") from None

    def encode(self, text: str, *, prepend: int | str | None = None, append: int | str | None = None) -> list[int]:
        """Encode ordinary text; special-token text inside it is encoded as plain bytes."""
        ids = self.enc.encode_ordinary(text)
        if prepend is not None:
            ids.insert(0, prepend if isinstance(prepend, int) else self.encode_special(prepend))
        if append is not None:
            ids.append(append if isinstance(append, int) else self.encode_special(append))
        return ids

    def encode_batch(self, texts: Sequence[str], *, num_threads: int = 2) -> list[list[int]]:
        return self.enc.encode_ordinary_batch(list(texts), num_threads=num_threads)

    def decode(self, ids: Iterable[int]) -> str:
        return self.enc.decode(list(ids))

    def id_to_token(self, token_id: int) -> str:
        return self.enc.decode([token_id])

    # ----------------------------------------------------------------------------------------------- chat rendering

    def render_conversation(self, conversation: Conversation, max_tokens: int = 2048) -> tuple[list[int], list[int]]:
        """Render a chat into (ids, mask); mask is 1 exactly on the tokens the assistant is trained to produce.

        `<|bos|>`, then per user turn `<|user_start|> text <|user_end|>` (mask 0), per assistant turn
        `<|assistant_start|>` (mask 0) + text + `<|assistant_end|>` (mask 1). Truncated to `max_tokens`.
        """
        messages = normalize_messages(conversation)
        ids: list[int] = []
        mask: list[int] = []

        def add(token_ids: int | list[int], m: int) -> None:
            if isinstance(token_ids, int):
                token_ids = [token_ids]
            ids.extend(token_ids)
            mask.extend([m] * len(token_ids))

        t = self._ids
        add(t["<|bos|>"], 0)
        for i, message in enumerate(messages):
            content = message["content"]
            if message["role"] == "user":
                add(t["<|user_start|>"], 0)
                add(self.encode(content), 0)
                add(t["<|user_end|>"], 0)
                continue
            add(t["<|assistant_start|>"], 0)
            if isinstance(content, str):
                add(self.encode(content), 1)
            else:
                for part in content:
                    kind, text = part["type"], self.encode(part["text"])
                    if kind == "text":
                        add(text, 1)
                    elif kind == "python":
                        add(t["<|python_start|>"], 1)
                        add(text, 1)
                        add(t["<|python_end|>"], 1)
                    else:  # python_output: produced by the tool at run time, never supervised
                        add(t["<|output_start|>"], 0)
                        add(text, 0)
                        add(t["<|output_end|>"], 0)
            add(t["<|assistant_end|>"], 1)
        return ids[:max_tokens], mask[:max_tokens]

    def render_for_completion(self, prefix: Conversation) -> list[int]:
        """Render a prefix that ends with a user turn, then `<|assistant_start|>` to prime the reply."""
        messages = normalize_messages(prefix)
        if messages[-1]["role"] != "user":
            raise KatError(
                "a completion prefix must end with a user message",
                hint="drop the trailing assistant message; the model writes the reply",
            )
        ids, _ = self.render_conversation(messages, max_tokens=1 << 62)
        ids.append(self._ids["<|assistant_start|>"])
        return ids


def normalize_messages(conversation: Conversation) -> list[dict[str, Any]]:
    """Validate roles/contents and merge a leading system message into the first user message.

    Accepts `{"messages": [...]}` or a bare list of `{"role", "content"}` dicts. Returns a new list; the input is
    never mutated.
    """
    if isinstance(conversation, Mapping):
        if "messages" not in conversation:
            raise KatError("conversation has no 'messages' field", hint='use {"messages": [{"role", "content"}, ...]}')
        raw = conversation["messages"]
    else:
        raw = conversation
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        raise KatError("conversation messages must be a list", hint='use [{"role": "user", "content": "..."}, ...]')
    messages = [copy.deepcopy(dict(m)) if isinstance(m, Mapping) else m for m in raw]
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise KatError(f"message {i} is not a {{role, content}} object", hint="every message needs both fields")
    if messages and messages[0]["role"] == "system":
        if len(messages) < 2 or messages[1]["role"] != "user":
            raise KatError(
                "a system message must be followed by a user message",
                hint="the system text is merged into the first user turn",
            )
        system, first = messages[0], messages[1]
        if not isinstance(system["content"], str) or not isinstance(first["content"], str):
            raise KatError("system and user message contents must be strings")
        first["content"] = system["content"] + "\n\n" + first["content"]
        messages = messages[1:]
    if not messages:
        raise KatError("conversation has no messages", hint="it needs at least one user message")
    for i, m in enumerate(messages):
        expected = "user" if i % 2 == 0 else "assistant"
        if m["role"] != expected:
            raise KatError(
                f"message {i} has role {m['role']!r} but {expected!r} was expected",
                hint="roles must alternate user/assistant starting with user "
                "(only a leading system message is allowed)",
            )
        content = m["content"]
        if expected == "user" and not isinstance(content, str):
            raise KatError(f"message {i}: user content must be a string")
        if expected == "assistant" and not isinstance(content, str):
            _check_parts(i, content)
    return messages


def _check_parts(index: int, content: Any) -> None:
    """Assistant content may be a list of nanochat parts (text / python / python_output)."""
    if not isinstance(content, list):
        raise KatError(f"message {index}: assistant content must be a string or a list of parts")
    for part in content:
        if (
            not isinstance(part, Mapping)
            or part.get("type") not in ("text", "python", "python_output")
            or not isinstance(part.get("text"), str)
        ):
            raise KatError(
                f"message {index}: bad content part {part!r}",
                hint='parts look like {"type": "text"|"python"|"python_output", "text": "..."}',
            )
