"""The GPT: nanochat's classic architecture, key for key, so nanochat checkpoints load unchanged.

Token embedding → parameter-free RMSNorm → blocks of `x + attn(norm(x))`, `x + mlp(norm(x))` → RMSNorm → untied
`lm_head` → logits softcapped at 15. Attention uses rotary embeddings (base 10000, cos/sin tables in bf16, rotating
the two halves of each head), QK RMSNorm, causal SDPA and grouped-query attention when `n_kv_head < n_head`. The MLP is
`relu(x)²` at 4× width. There are no biases. Parameters are fp32; the forward runs under autocast to
`compute_dtype` (`--dtype`; by default bf16 on CUDA, fp16 on GPUs without native bf16, fp32 on the CPU).

Beyond nanochat, `forward` takes an optional `pad_mask` (which tokens are real) so left-padded batches of prompts of
different lengths get the same per-row rotary positions and attention as unpadded ones, and `return_hidden=True`
returns the final normed hidden states (for reward heads and mean-pooled embeddings) instead of logits.
`GPT.from_state_dict` loads weights strictly, refusing any key or shape difference with the full list of them.

This module knows nothing about tokenizers, checkpoint files, sampling policies or optimizers.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from katcli.errors import ConfigError, KatError
from katcli.model.attention_mask import positions_and_mask

if TYPE_CHECKING:
    from katcli.model.kv_cache import KVCache

ROTARY_BASE = 10000
SOFTCAP = 15.0
HEAD_DIM = 128


@dataclass(frozen=True)
class GPTConfig:
    """The six fields nanochat stores as `model_config` in its `meta_*.json`."""

    sequence_len: int = 1024
    vocab_size: int = 65536
    n_layer: int = 12
    n_head: int = 6
    n_kv_head: int = 6
    n_embd: int = 768

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"model config {f.name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"model config n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if (self.n_embd // self.n_head) % 2:
            raise ConfigError("model config head dimension n_embd / n_head must be even (rotary embeddings)")
        if self.n_kv_head > self.n_head or self.n_head % self.n_kv_head:
            raise ConfigError(
                f"model config n_kv_head ({self.n_kv_head}) must divide n_head ({self.n_head})"
            )

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @classmethod
    def from_depth(
        cls, depth: int, *, vocab_size: int, sequence_len: int = 1024, n_kv_head: int | None = None
    ) -> GPTConfig:
        """nanochat's depth rule: width 64·depth, heads of dimension 128 (at least one head)."""
        if depth < 1:
            raise ConfigError(f"--depth must be at least 1, got {depth}")
        n_embd = 64 * depth
        n_head = max(1, n_embd // HEAD_DIM)
        return cls(
            sequence_len=sequence_len,
            vocab_size=vocab_size,
            n_layer=depth,
            n_head=n_head,
            n_kv_head=n_head if n_kv_head is None else n_kv_head,
            n_embd=n_embd,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GPTConfig:
        """Build from a `model_config` dict; unknown fields are refused (they would mean another architecture)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        missing = sorted(names - set(data))
        if unknown or missing:
            parts = []
            if unknown:
                parts.append(f"unknown fields: {', '.join(unknown)}")
            if missing:
                parts.append(f"missing fields: {', '.join(missing)}")
            raise KatError(
                f"model_config does not describe kat's GPT ({'; '.join(parts)})",
                hint="kat reads exactly sequence_len, vocab_size, n_layer, n_head, n_kv_head, n_embd",
            )
        return cls(**{k: data[k] for k in sorted(names)})

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def norm(x: torch.Tensor) -> torch.Tensor:
    """Parameter-free RMSNorm over the last dimension."""
    return F.rms_norm(x, (x.size(-1),))


def apply_rotary_emb(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the two halves of each head: y1 = x1·cos + x2·sin, y2 = −x1·sin + x2·cos."""
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    y1 = x1 * cos + x2 * sin
    y2 = x1 * (-sin) + x2 * cos
    return torch.cat([y1, y2], dim=-1).to(x.dtype)


def autocast_for(device: torch.device, dtype: torch.dtype | None = None) -> contextlib.AbstractContextManager[Any]:
    """Autocast to the compute dtype (`--dtype`; None: `auto` for the device, i.e. fp32 on CPU and bf16 — fp16
    without native bf16 — on CUDA); nothing for fp32."""
    if dtype is None:
        from katcli.devices import resolve_dtype

        dtype = resolve_dtype("auto", device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def set_compute_dtype(module: nn.Module, dtype: torch.dtype | None) -> None:
    """Run every kat model inside `module` (a GPT, the GPT in a reward model, an HF backbone) in `dtype`."""
    for sub in module.modules():
        if hasattr(sub, "compute_dtype"):
            sub.compute_dtype = dtype


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.n_head = config.n_head
        self.n_kv_head = config.n_kv_head
        self.head_dim = config.head_dim
        self.c_q = nn.Linear(config.n_embd, self.n_head * self.head_dim, bias=False)
        self.c_k = nn.Linear(config.n_embd, self.n_kv_head * self.head_dim, bias=False)
        self.c_v = nn.Linear(config.n_embd, self.n_kv_head * self.head_dim, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos_sin: tuple[torch.Tensor, torch.Tensor],
        attn_mask: torch.Tensor | None,
        kv_cache: KVCache | None,
    ) -> torch.Tensor:
        B, T, C = x.size()
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)
        cos, sin = cos_sin
        q, k = apply_rotary_emb(q, cos, sin), apply_rotary_emb(k, cos, sin)
        q, k = norm(q), norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, D)
        if kv_cache is not None:
            k, v = kv_cache.insert(self.layer_idx, k, v)
        rep = self.n_head // self.n_kv_head
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        if attn_mask is None:
            # No padding anywhere: queries and keys are the same positions (plain causal attention), or one new
            # query per row that may see every cached key. Other cache cases always come with an explicit mask.
            y = F.scaled_dot_product_attention(q, k, v, is_causal=q.size(2) == k.size(2) and T > 1)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int) -> None:
        super().__init__()
        self.attn = CausalSelfAttention(config, layer_idx)
        self.mlp = MLP(config)

    def forward(
        self,
        x: torch.Tensor,
        cos_sin: tuple[torch.Tensor, torch.Tensor],
        attn_mask: torch.Tensor | None,
        kv_cache: KVCache | None,
    ) -> torch.Tensor:
        x = x + self.attn(norm(x), cos_sin, attn_mask, kv_cache)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    """nanochat's GPT. State-dict keys: `transformer.wte.weight`, `transformer.h.{i}.attn.c_q|c_k|c_v|c_proj.weight`,
    `transformer.h.{i}.mlp.c_fc|c_proj.weight`, `lm_head.weight`."""

    # transformers' name for the layers that are never split across devices: `--fsdp` shards each `Block` alone.
    _no_split_modules = ("Block",)

    def __init__(self, config: GPTConfig, *, seed: int | None = 0) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(config.vocab_size, config.n_embd),
                "h": nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
            }
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.compute_dtype: torch.dtype | None = None  # None: the device's `--dtype auto` (`autocast_for`)
        # Rotary tables are cheap; like nanochat, over-allocate 10x the training length for long generations.
        self.rotary_seq_len = config.sequence_len * 10
        cos, sin = precompute_rotary(self.rotary_seq_len, config.head_dim)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        if seed is not None:
            self.init_weights(seed)

    @classmethod
    def from_state_dict(
        cls, config: GPTConfig, state: Mapping[str, torch.Tensor], *, source: str | None = None
    ) -> GPT:
        """A GPT whose parameters *are* `state`'s fp32 tensors (no copy, no random init), after a strict key/shape
        check. Tensors in another dtype (e.g. nanochat's bf16 `wte`) are converted to fp32 first.

        Built on the meta device first, so a 2 GB checkpoint does not need 4 GB of memory to load.
        """
        check_state_keys(config, state, source=source)
        with torch.device("meta"):
            model = cls(config, seed=None)
        fp32 = {k: v if v.dtype == torch.float32 else v.float() for k, v in state.items()}
        model.load_state_dict(fp32, strict=True, assign=True)
        device = model.transformer.wte.weight.device
        cos, sin = precompute_rotary(model.rotary_seq_len, config.head_dim)
        model.cos, model.sin = cos.to(device), sin.to(device)
        return model

    # ----------------------------------------------------------------------------------------------- init

    @torch.no_grad()
    def init_weights(self, seed: int = 0) -> None:
        """nanochat's init: N(0, 1) embeddings, fan-in/fan-out scaled linears, zero lm_head and output projections."""
        gen = torch.Generator(device="cpu").manual_seed(seed)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                fan_out, fan_in = module.weight.shape
                std = 1.0 / math.sqrt(fan_in) * min(1.0, math.sqrt(fan_out / fan_in))
                _normal_(module.weight, std, gen)
            elif isinstance(module, nn.Embedding):
                _normal_(module.weight, 1.0, gen)
        nn.init.zeros_(self.lm_head.weight)
        for block in self.transformer.h:
            nn.init.zeros_(block.mlp.c_proj.weight)
            nn.init.zeros_(block.attn.c_proj.weight)

    # ----------------------------------------------------------------------------------------------- info

    @property
    def device(self) -> torch.device:
        return self.transformer.wte.weight.device

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self) -> int:
        """Approximate training FLOPs per token (6N for the matmuls plus attention), as nanochat estimates it."""
        c = self.config
        n = self.num_params() - self.transformer.wte.weight.numel()
        return 6 * n + 12 * c.n_layer * c.n_head * c.head_dim * c.sequence_len

    # ----------------------------------------------------------------------------------------------- forward

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        kv_cache: KVCache | None = None,
        pad_mask: torch.Tensor | None = None,
        return_hidden: bool = False,
        loss_reduction: str = "mean",
    ) -> torch.Tensor:
        """Logits `(B, T, V)` (fp32, softcapped); the loss if `targets` is given (`-1` targets are ignored); or the
        final normed hidden states `(B, T, C)` (fp32) if `return_hidden`.

        `pad_mask` `(B, T)` bool marks real tokens; padded positions neither get a rotary position nor are attended
        to. With a `kv_cache` the tokens continue each row from where the cache left off.
        """
        B, T = idx.shape
        if return_hidden and targets is not None:
            raise ValueError("return_hidden and targets are exclusive: hidden states carry no loss")
        if pad_mask is not None and pad_mask.shape != idx.shape:
            raise ValueError(f"pad_mask shape {tuple(pad_mask.shape)} != idx shape {tuple(idx.shape)}")
        with autocast_for(idx.device, self.compute_dtype):
            positions, attn_mask = self._positions_and_mask(idx, pad_mask, kv_cache)
            start = 0 if kv_cache is None else kv_cache.pos
            if positions is None:
                if start + T > self.rotary_seq_len:
                    raise KatError(
                        f"sequence of {start + T} tokens exceeds the model's rotary table ({self.rotary_seq_len})"
                    )
                cos_sin = self.cos[:, start : start + T], self.sin[:, start : start + T]
            else:
                # A row's positions count its real tokens only, so they stay below start + T: look at the tensor
                # (a device sync) only when that bound does not already settle it.
                if start + T > self.rotary_seq_len and int(positions.max()) >= self.rotary_seq_len:
                    raise KatError(
                        f"position {int(positions.max())} exceeds the model's rotary table ({self.rotary_seq_len})"
                    )
                cos_sin = self.cos[0, positions], self.sin[0, positions]  # (B, T, 1, D/2)
            x = norm(self.transformer.wte(idx))
            for block in self.transformer.h:
                x = block(x, cos_sin, attn_mask, kv_cache)
            x = norm(x)
            if kv_cache is not None:
                kv_cache.advance(T, pad_mask)
            if return_hidden:
                return x.float()
            logits = self._head(x)
        if targets is None:
            return logits
        return F.cross_entropy(
            logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1, reduction=loss_reduction
        )

    def logits_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """`lm_head` + softcap on final hidden states (e.g. only the last position's, when sampling)."""
        with autocast_for(hidden.device, self.compute_dtype):
            return self._head(hidden)

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(x)
        return (SOFTCAP * torch.tanh(logits / SOFTCAP)).float()

    def _positions_and_mask(
        self, idx: torch.Tensor, pad_mask: torch.Tensor | None, kv_cache: KVCache | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Per-row rotary positions and a boolean attention mask, or (None, None) on the nanochat fast path."""
        if kv_cache is not None:
            return kv_cache.positions_and_mask(idx, pad_mask)
        if pad_mask is None:
            return None, None
        return positions_and_mask(pad_mask)


def check_state_keys(config: GPTConfig, state: Mapping[str, torch.Tensor], *, source: str | None = None) -> None:
    """Refuse a state dict whose keys or shapes differ from the GPT's for `config`, listing every difference."""
    expected = expected_shapes(config)
    unexpected = sorted(set(state) - set(expected))
    missing = sorted(set(expected) - set(state))
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} != {expected[k]}"
        for k in set(state) & set(expected)
        if tuple(state[k].shape) != expected[k]
    )
    if unexpected or missing or wrong:
        parts = []
        if unexpected:
            parts.append("unexpected keys: " + ", ".join(unexpected))
        if missing:
            parts.append("missing keys: " + ", ".join(missing))
        if wrong:
            parts.append("shape mismatches: " + ", ".join(wrong))
        raise KatError(
            "checkpoint does not match kat's GPT architecture; " + "; ".join(parts),
            file=source,
            hint="kat loads nanochat's classic GPT (see the model_config fields); other architectures are refused",
        )


def expected_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Key → shape of the GPT for `config`, computed on the meta device (no memory, no init)."""
    with torch.device("meta"):
        model = GPT(config, seed=None)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def precompute_rotary(seq_len: int, head_dim: int, base: int = ROTARY_BASE) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables `(1, seq_len, 1, head_dim/2)` in bf16, inverse frequencies 1/base^(2i/head_dim)."""
    channel = torch.arange(0, head_dim, 2, dtype=torch.float32)
    inv_freq = 1.0 / (base ** (channel / head_dim))
    t = torch.arange(seq_len, dtype=torch.float32)
    freqs = torch.outer(t, inv_freq)
    cos, sin = freqs.cos().bfloat16(), freqs.sin().bfloat16()
    return cos[None, :, None, :], sin[None, :, None, :]


def _normal_(tensor: torch.Tensor, std: float, gen: torch.Generator) -> None:
    # Draw on CPU with our own generator so init is identical on every device and independent of global RNG state.
    tensor.copy_(torch.randn(tensor.shape, generator=gen, dtype=torch.float32) * std)
