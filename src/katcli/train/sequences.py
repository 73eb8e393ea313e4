"""Turning conversations and their replies into the token sequences every objective trains or scores on.

A sequence is `render_for_completion(prefix)` + response tokens + `<|assistant_end|>`: the reward is read at that
final token, which has seen the whole conversation, and a policy is trained on the response and that token. A row
holds one response (SFT) or two (chosen and rejected, for reward models and DPO); a row whose longest sequence
exceeds `max_len`:

1. keeps each response up to `max_response_len` tokens (longer responses are cut at the end and counted);
2. trims the prefix from the left, keeping `<|bos|>` and the whole final user turn;
3. only if the final user turn alone does not fit, cuts that turn's text from the left too (counted separately).

This rule (`fit_responses`) is the only truncation in kat. The responses of a row always share the same (trimmed)
prefix tokens, so chosen and rejected differ only through their own tokens, and each row records where its
responses start (`prompt_len`), from which collation builds loss masks. All rows are stored in one flat int32 array
with offsets, which keeps 100k+ pairs compact.

This module knows the tokenizer's chat rendering (through a duck-typed tokenizer) and nothing about models,
sampling or files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from katcli.errors import KatError
from katcli.progress import ProgressFn, no_progress

END = "<|assistant_end|>"
USER_START = "<|user_start|>"


class ChatTokenizer(Protocol):
    def render_for_completion(self, prefix: Any) -> list[int]: ...
    def encode_batch(self, texts: Sequence[str], *, num_threads: int = 2) -> list[list[int]]: ...
    def encode_special(self, name: str) -> int: ...

    @property
    def bos_token_id(self) -> int: ...


@dataclass(frozen=True)
class Trim:
    """How one row was fitted into `max_len` (all False / 0 when it fitted as is)."""

    prefix_trimmed: bool
    final_turn_cut: bool
    responses_cut: int  # how many of the row's responses were cut at the end


def fit_responses(
    prefix: list[int],
    responses: Sequence[list[int]],
    *,
    bos: int,
    user_start: int,
    max_len: int,
    max_response_len: int,
) -> tuple[list[int], list[list[int]], Trim]:
    """The one truncation rule: (fitted prefix, responses cut to `max_response_len`, what was done).

    Every `prefix + response + <|assistant_end|>` then has at most `max_len` tokens; all responses of the row share
    the fitted prefix, so they differ only in their own tokens.
    """
    cut_responses = [r[:max_response_len] for r in responses]
    cut = sum(int(len(r) > len(c)) for r, c in zip(responses, cut_responses))
    budget = max_len - (max(len(r) for r in cut_responses) + 1)
    prefix, trimmed, final_cut = trim_prefix(prefix, budget, bos=bos, user_start=user_start)
    return prefix, cut_responses, Trim(trimmed, final_cut, cut)


def fit_pair(
    prefix: list[int],
    chosen: list[int],
    rejected: list[int],
    *,
    bos: int,
    user_start: int,
    end: int,
    max_len: int,
    max_response_len: int,
) -> tuple[list[int], list[int], Trim]:
    """The chosen and rejected sequences of one pair, each at most `max_len` tokens."""
    fitted, (resp_c, resp_r), trim = fit_responses(
        prefix, [chosen, rejected], bos=bos, user_start=user_start, max_len=max_len, max_response_len=max_response_len
    )
    return fitted + resp_c + [end], fitted + resp_r + [end], trim


def trim_prefix(prefix: list[int], budget: int, *, bos: int, user_start: int) -> tuple[list[int], bool, bool]:
    """A rendered prefix cut to at most `budget` tokens from the left, keeping `<|bos|>` and the final user turn
    (whose text is cut from the left only if it alone does not fit); plus (trimmed, final turn cut)."""
    if len(prefix) <= budget:
        return prefix, False, False
    try:
        start = len(prefix) - 1 - prefix[::-1].index(user_start)
    except ValueError:  # a prefix always has a user turn; tolerate odd renderings by plain left-trimming
        start = len(prefix) - 1
    tail = prefix[start:]
    if 1 + len(tail) <= budget:
        return [bos] + prefix[len(prefix) - (budget - 1) :], True, False
    return [bos, user_start] + tail[len(tail) - (budget - 2) :], True, True


@dataclass
class EncodedSequences:
    """`k` token sequences per row sharing the row's prompt: `tokens[off[i, j] : off[i, j] + length[i, j]]`.

    `prompt_len[i]` is where the responses of row `i` start (the response and its `<|assistant_end|>` are the
    tokens a policy is trained or scored on).
    """

    tokens: np.ndarray
    off: np.ndarray  # int64 [n, k]
    length: np.ndarray  # int64 [n, k]
    prompt_len: np.ndarray  # int64 [n]
    prefix_trimmed: int = 0
    final_turn_cut: int = 0
    responses_cut: int = 0
    stats: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompt_len)

    def sequence(self, i: int, j: int = 0) -> np.ndarray:
        return self.tokens[self.off[i, j] : self.off[i, j] + self.length[i, j]]

    @property
    def row_lengths(self) -> np.ndarray:
        """The longest sequence of each row (what a batch holding the row is padded to)."""
        return self.length.max(axis=1)


class EncodedPairs(EncodedSequences):
    """Two sequences per row: column 0 the chosen reply, column 1 the rejected one."""

    @property
    def chosen_len(self) -> np.ndarray:
        return self.length[:, 0]

    @property
    def rejected_len(self) -> np.ndarray:
        return self.length[:, 1]

    @property
    def pair_lengths(self) -> np.ndarray:
        return self.row_lengths

    def chosen(self, i: int) -> np.ndarray:
        return self.sequence(i, 0)

    def rejected(self, i: int) -> np.ndarray:
        return self.sequence(i, 1)


def encode_sequences(
    tokenizer: ChatTokenizer,
    rows: Sequence[tuple[Sequence[Mapping[str, Any]], Sequence[str]]],
    *,
    max_len: int,
    max_response_len: int,
    ids: Sequence[str] | None = None,
    progress: ProgressFn = no_progress,
    task: str = "tokenizing",
    chunk: int = 2048,
    cls: type[EncodedSequences] = EncodedSequences,
) -> EncodedSequences:
    """Encode `(prefix messages, [response, ...])` rows (the same number of responses in every row).

    Prefixes shared by several rows are rendered once; `ids` (one per row) only serve to name a row whose prefix
    cannot be rendered.
    """
    bos, user_start, end = tokenizer.bos_token_id, tokenizer.encode_special(USER_START), tokenizer.encode_special(END)
    n = len(rows)
    k = len(rows[0][1]) if n else 1
    parts: list[np.ndarray] = []
    off = np.zeros((n, k), dtype=np.int64)
    length = np.zeros((n, k), dtype=np.int64)
    prompt_len = np.zeros(n, dtype=np.int64)
    prefix_cache: dict[tuple[tuple[str, str], ...], list[int]] = {}
    trimmed = final_cut = cut = 0
    pos = 0
    for lo in range(0, n, chunk):
        block = rows[lo : lo + chunk]
        if any(len(resp) != k for _, resp in block):
            raise ValueError(f"every row must have {k} responses")
        responses = tokenizer.encode_batch([t for _, resp in block for t in resp])
        for j, (messages, _) in enumerate(block):
            key = tuple((str(m["role"]), str(m["content"])) for m in messages)
            prefix = prefix_cache.get(key)
            if prefix is None:
                try:
                    prefix = prefix_cache[key] = tokenizer.render_for_completion(list(messages))
                except KatError as exc:
                    name = ids[lo + j] if ids is not None else str(lo + j)
                    raise KatError(f"pair {name}: {exc.message}", hint=exc.hint) from None
            fitted, resp, trim = fit_responses(
                prefix, responses[k * j : k * j + k],
                bos=bos, user_start=user_start, max_len=max_len, max_response_len=max_response_len,
            )
            trimmed += trim.prefix_trimmed
            final_cut += trim.final_turn_cut
            cut += trim.responses_cut
            i = lo + j
            prompt_len[i] = len(fitted)
            for c, r in enumerate(resp):
                seq = fitted + r + [end]
                off[i, c], length[i, c] = pos, len(seq)
                pos += len(seq)
                parts.append(np.asarray(seq, dtype=np.int32))
        progress(task, min(lo + chunk, n), n)
    tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return cls(
        tokens, off, length, prompt_len,
        prefix_trimmed=trimmed, final_turn_cut=final_cut, responses_cut=cut,
        stats={"rows": n, "prefix_trimmed": trimmed, "final_turn_cut": final_cut, "responses_cut": cut},
    )


def encode_pairs(
    tokenizer: ChatTokenizer,
    rows: Sequence[tuple[Sequence[Mapping[str, Any]], str, str]],
    *,
    max_len: int,
    max_response_len: int,
    ids: Sequence[str] | None = None,
    progress: ProgressFn = no_progress,
    chunk: int = 2048,
) -> EncodedPairs:
    """Encode `(prefix messages, chosen, rejected)` rows into chosen/rejected sequences."""
    enc = encode_sequences(
        tokenizer, [(m, (c, r)) for m, c, r in rows], max_len=max_len, max_response_len=max_response_len,
        ids=ids, progress=progress, task="tokenizing pairs", chunk=chunk, cls=EncodedPairs,
    )
    enc.stats = {"pairs": enc.stats.pop("rows"), **enc.stats}
    assert isinstance(enc, EncodedPairs)
    return enc
