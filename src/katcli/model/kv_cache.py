"""The key/value cache that lets the GPT decode one token per row without recomputing the prefix.

One preallocated buffer per layer holds keys and values `(B, n_kv_head, max_len, head_dim)`. All rows share a write
pointer `pos` (every forward appends the same number of slots to every row); per row the cache also remembers which
slots hold real tokens (`valid`, so left padding is never attended to) and the rotary position of that row's next
real token (`next_pos`, so a left-padded prompt is positioned exactly as if it were unpadded).

`repeat_rows(g)` turns a cache prefilled with n prompts into one for n·g sampling rows, so each prompt's prefix is
computed once. The buffers take the dtype of the first keys written (bf16 under CUDA autocast, fp32 on CPU).

This module knows nothing about sampling, tokenizers or the model's weights; `GPT.forward` drives it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from katcli.errors import KatError
from katcli.model.attention_mask import positions_and_mask

if TYPE_CHECKING:
    from katcli.model.gpt import GPTConfig


class KVCache:
    def __init__(
        self, *, batch_size: int, n_layer: int, n_kv_head: int, head_dim: int, max_len: int, device: torch.device
    ) -> None:
        self.batch_size = batch_size
        self.n_layer = n_layer
        self.n_kv_head = n_kv_head
        self.head_dim = head_dim
        self.max_len = max_len
        self.device = torch.device(device)
        self.pos = 0
        self.valid = torch.zeros(batch_size, max_len, dtype=torch.bool, device=self.device)
        self.next_pos = torch.zeros(batch_size, dtype=torch.long, device=self.device)
        # Known on the host, so decoding never asks the device: whether every committed slot holds a real token.
        self.all_valid = True
        self._one_real: torch.Tensor | None = None  # the `(B, 1)` all-real mask of a decoding step, made once
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    @classmethod
    def for_model(cls, config: GPTConfig, *, batch_size: int, max_len: int, device: torch.device) -> KVCache:
        return cls(
            batch_size=batch_size,
            n_layer=config.n_layer,
            n_kv_head=config.n_kv_head,
            head_dim=config.head_dim,
            max_len=max_len,
            device=device,
        )

    def _allocate(self, dtype: torch.dtype) -> None:
        shape = (self.n_layer, self.batch_size, self.n_kv_head, self.max_len, self.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=self.device)
        self.v = torch.zeros(shape, dtype=dtype, device=self.device)

    def positions_and_mask(
        self, idx: torch.Tensor, pad_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Rotary positions `(B, T)` and attention mask `(B, 1, T, pos+T)` for the next `T` tokens.

        Returns (None, None) when every row is unpadded and aligned, so the model takes nanochat's fast path.
        """
        B, T = idx.shape
        if B != self.batch_size:
            raise ValueError(f"batch of {B} rows does not match the cache's {self.batch_size}")
        start = self.pos
        if start + T > self.max_len:
            raise KatError(f"KV cache overflow: {start + T} tokens for a cache of {self.max_len}")
        if pad_mask is not None:
            real = pad_mask.bool()
        elif T == 1:
            if self._one_real is None:
                self._one_real = torch.ones(B, 1, dtype=torch.bool, device=idx.device)
            real = self._one_real
        else:
            real = torch.ones(B, T, dtype=torch.bool, device=idx.device)
        return positions_and_mask(
            real, past_valid=self.valid[:, :start], next_pos=self.next_pos,
            all_real=True if pad_mask is None else None, past_all_valid=self.all_valid,
        )

    def insert(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write this forward's keys/values at `pos` and return all keys/values so far for `layer`."""
        if self.k is None:
            self._allocate(k.dtype)
        assert self.k is not None and self.v is not None
        T = k.size(2)
        self.k[layer, :, :, self.pos : self.pos + T] = k
        self.v[layer, :, :, self.pos : self.pos + T] = v
        return self.k[layer, :, :, : self.pos + T], self.v[layer, :, :, : self.pos + T]

    def advance(self, T: int, pad_mask: torch.Tensor | None) -> None:
        """Commit the `T` slots written by every layer of one forward."""
        if pad_mask is None:
            self.valid[:, self.pos : self.pos + T] = True
            self.next_pos += T
        else:
            real = pad_mask.bool()
            self.valid[:, self.pos : self.pos + T] = real
            self.next_pos += real.long().sum(1)
            # Asked once per padded forward (a prefill), never per decoded token.
            self.all_valid = self.all_valid and bool(real.all())
        self.pos += T

    def repeat_rows(self, repeats: int, *, max_len: int | None = None) -> KVCache:
        """A new cache with each row repeated `repeats` times in place (row r → rows r·g … r·g+g−1)."""
        max_len = self.max_len if max_len is None else max_len
        if max_len < self.pos:
            raise ValueError(f"max_len {max_len} is shorter than the {self.pos} cached tokens")
        out = KVCache(
            batch_size=self.batch_size * repeats,
            n_layer=self.n_layer,
            n_kv_head=self.n_kv_head,
            head_dim=self.head_dim,
            max_len=max_len,
            device=self.device,
        )
        out.pos = self.pos
        out.all_valid = self.all_valid
        out.valid[:, : self.pos] = self.valid[:, : self.pos].repeat_interleave(repeats, dim=0)
        out.next_pos = self.next_pos.repeat_interleave(repeats, dim=0)
        if self.k is not None and self.v is not None:
            out._allocate(self.k.dtype)
            assert out.k is not None and out.v is not None
            out.k[:, :, :, : self.pos] = self.k[:, :, :, : self.pos].repeat_interleave(repeats, dim=1)
            out.v[:, :, :, : self.pos] = self.v[:, :, :, : self.pos].repeat_interleave(repeats, dim=1)
        return out
