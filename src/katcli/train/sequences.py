"""Turning preference pairs into the token sequences a reward model scores.

A sequence is `render_for_completion(prefix)` + response tokens + `<|assistant_end|>`: the reward is read at that
final token, which has seen the whole conversation. A pair whose longer sequence exceeds `max_len`:

1. keeps each response up to `max_response_len` tokens (longer responses are cut at the end and counted);
2. trims the prefix from the left, keeping `<|bos|>` and the whole final user turn;
3. only if the final user turn alone does not fit, cuts that turn's text from the left too (counted separately).

Chosen and rejected always share the same (trimmed) prefix tokens, so the two rewards differ only through the
responses. All pairs are stored in one flat int32 array with offsets, which keeps 100k+ pairs compact.

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
    """How one pair was fitted into `max_len` (all False when it fitted as is)."""

    prefix_trimmed: bool
    final_turn_cut: bool
    responses_cut: int  # 0, 1 or 2


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
    resp_c, resp_r = chosen[:max_response_len], rejected[:max_response_len]
    cut = int(len(chosen) > len(resp_c)) + int(len(rejected) > len(resp_r))
    budget = max_len - (max(len(resp_c), len(resp_r)) + 1)
    prefix, trimmed, final_cut = trim_prefix(prefix, budget, bos=bos, user_start=user_start)
    return prefix + resp_c + [end], prefix + resp_r + [end], Trim(trimmed, final_cut, cut)


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
class EncodedPairs:
    """Token sequences of many pairs: `tokens[off:off+len]` per chosen / rejected sequence."""

    tokens: np.ndarray
    chosen_off: np.ndarray
    chosen_len: np.ndarray
    rejected_off: np.ndarray
    rejected_len: np.ndarray
    prefix_trimmed: int = 0
    final_turn_cut: int = 0
    responses_cut: int = 0
    stats: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.chosen_len)

    @property
    def pair_lengths(self) -> np.ndarray:
        """The longer of each pair's two sequences (what a batch is padded to)."""
        return np.maximum(self.chosen_len, self.rejected_len)

    def chosen(self, i: int) -> np.ndarray:
        return self.tokens[self.chosen_off[i] : self.chosen_off[i] + self.chosen_len[i]]

    def rejected(self, i: int) -> np.ndarray:
        return self.tokens[self.rejected_off[i] : self.rejected_off[i] + self.rejected_len[i]]

    def total_tokens(self) -> int:
        return int(self.chosen_len.sum() + self.rejected_len.sum())


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
    """Encode `(prefix messages, chosen, rejected)` rows; prefixes shared by several rows are rendered once.

    `ids` (one per row) only serve to name a pair whose prefix cannot be rendered.
    """
    bos, user_start, end = tokenizer.bos_token_id, tokenizer.encode_special(USER_START), tokenizer.encode_special(END)
    n = len(rows)
    parts: list[np.ndarray] = []
    c_off = np.zeros(n, dtype=np.int64)
    c_len = np.zeros(n, dtype=np.int64)
    r_off = np.zeros(n, dtype=np.int64)
    r_len = np.zeros(n, dtype=np.int64)
    prefix_cache: dict[tuple[tuple[str, str], ...], list[int]] = {}
    trimmed = final_cut = cut = 0
    pos = 0
    for lo in range(0, n, chunk):
        block = rows[lo : lo + chunk]
        responses = tokenizer.encode_batch([t for _, c, r in block for t in (c, r)])
        for j, (messages, _, _) in enumerate(block):
            key = tuple((str(m["role"]), str(m["content"])) for m in messages)
            prefix = prefix_cache.get(key)
            if prefix is None:
                try:
                    prefix = prefix_cache[key] = tokenizer.render_for_completion(list(messages))
                except KatError as exc:
                    name = ids[lo + j] if ids is not None else str(lo + j)
                    raise KatError(f"pair {name}: {exc.message}", hint=exc.hint) from None
            seq_c, seq_r, trim = fit_pair(
                prefix, responses[2 * j], responses[2 * j + 1],
                bos=bos, user_start=user_start, end=end, max_len=max_len, max_response_len=max_response_len,
            )
            trimmed += trim.prefix_trimmed
            final_cut += trim.final_turn_cut
            cut += trim.responses_cut
            i = lo + j
            c_off[i], c_len[i] = pos, len(seq_c)
            r_off[i], r_len[i] = pos + len(seq_c), len(seq_r)
            pos += len(seq_c) + len(seq_r)
            parts.append(np.asarray(seq_c + seq_r, dtype=np.int32))
        progress("tokenizing pairs", min(lo + chunk, n), n)
    tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return EncodedPairs(
        tokens, c_off, c_len, r_off, r_len,
        prefix_trimmed=trimmed, final_turn_cut=final_cut, responses_cut=cut,
        stats={"pairs": n, "prefix_trimmed": trimmed, "final_turn_cut": final_cut, "responses_cut": cut},
    )
