"""Batched sampling from a GPT: prefill each prompt once, then decode G independent samples per prompt.

Prompts of different lengths are left-padded into one batch and prefilled together through a `KVCache`; the cache
is then repeated G times per prompt and every row decodes one token per step. Each row samples independently —
including its first token, drawn from the prompt's last logits separately for each of the G rows — from a single
seeded `torch.Generator`, so the same model, prompts and seed give the same samples. With `row_seeds`, every row
instead draws from its own generator, so a row's sample depends only on its seed and its prompt, not on which other
prompts share the batch (evaluation seeds each (prompt, sample) this way). A row stops at
`<|assistant_end|>` or `<|bos|>` (the stop token is kept and is part of the completion mask, since it is what the
model must learn to emit) or after `max_new_tokens`.

`use_kv_cache=False` recomputes the whole sequence at every step with the same sampling code; it exists as the
reference the cache is tested and benchmarked against.

Log-probs are those of the sampled token under the model's own (untempered, untruncated) distribution — the same
quantity a training forward pass computes — whatever temperature/top-k/top-p shaped the sampling.

This module knows nothing about text, chat templates, rewards or training; it works on token ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from katcli.errors import ConfigError, KatError
from katcli.model.kv_cache import KVCache
from katcli.progress import ProgressFn, no_progress

if TYPE_CHECKING:
    from katcli.model.gpt import GPT
    from katcli.model.tokenizer import Tokenizer


@dataclass(frozen=True)
class SamplingConfig:
    """How to sample; each check names the CLI flag that sets the field."""

    max_new_tokens: int = 128
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    num_samples: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError("--max-new-tokens must be at least 1")
        if self.temperature < 0:
            raise ConfigError("--temperature must be 0 (greedy) or positive")
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError("--top-k must be at least 1")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ConfigError("--top-p must be in (0, 1]")
        if self.num_samples < 1:
            raise ConfigError("--num-samples must be at least 1")


@dataclass
class Generation:
    """Samples for `n` prompts × `G` samples, row `r` belonging to prompt `r // G`.

    `tokens`, `logprobs`, `mask` are `(n·G, L)`; `mask` is 1 on generated tokens up to and including the stop
    token and 0 after it (where `tokens` holds 0 and `logprobs` 0.0). `finished` says whether a row hit a stop
    token rather than `max_new_tokens`.
    """

    tokens: torch.Tensor
    logprobs: torch.Tensor
    mask: torch.Tensor
    prompt_index: torch.Tensor
    finished: torch.Tensor
    num_samples: int

    def completion(self, row: int, *, include_stop: bool = False) -> list[int]:
        """Row `row`'s generated ids, without its stop token unless asked."""
        n = int(self.mask[row].sum())
        ids = self.tokens[row, :n].tolist()
        if self.finished[row] and not include_stop:
            ids = ids[:-1]
        return ids


def sample_tokens(
    logits: torch.Tensor,
    generator: torch.Generator | None,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    uniforms: torch.Tensor | None = None,
) -> torch.Tensor:
    """One token per row of `logits` `(B, V)`: greedy at temperature 0, else temperature → top-k → top-p → draw.

    Each row consumes exactly one uniform number from `generator` (inverse-CDF sampling), so rows are independent
    and the stream is reproducible; with top-k only the k candidates are normalised and searched. `uniforms` `(B,)`
    supplies those numbers instead (then `generator` is not used).
    """
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    candidates: torch.Tensor | None = None
    if top_k is not None and top_k < logits.size(-1):
        logits, candidates = torch.topk(logits, top_k, dim=-1)  # sorted, descending
    # Cumulative sums in float64 on an accelerator, where no earlier output fixes the bits: rounding then never
    # decides between two tokens (the CPU keeps float32, so every CPU sample stays what it always was).
    acc = torch.float32 if logits.device.type == "cpu" else torch.float64
    if top_p is not None and top_p < 1.0:
        if candidates is None:
            logits, candidates = torch.sort(logits, dim=-1, descending=True)
        probs = logits.softmax(dim=-1).to(acc)
        # Drop a token when the tokens ranked above it already reach top_p; the top token always survives.
        drop = (probs.cumsum(dim=-1) - probs) >= top_p
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(dim=-1)
    cdf = probs.to(acc).cumsum(dim=-1)
    if uniforms is not None:
        u = uniforms.to(device=probs.device, dtype=torch.float32).reshape(-1, 1)
    else:
        u = torch.rand(probs.size(0), 1, generator=generator, device=probs.device, dtype=torch.float32)
    # right=True: the first index whose cdf exceeds u·total, so zero-probability tokens are never chosen.
    choice = torch.searchsorted(cdf, u.to(acc) * cdf[:, -1:], right=True).clamp_(max=probs.size(-1) - 1)
    # Guard the one rounding corner (u·total ≥ cdf[-1]): step back to the last token with probability > 0.
    # Applied unconditionally (a `bool(zero.any())` would stop the GPU once per decoded token).
    zero = probs.gather(1, choice) == 0
    last_positive = probs.size(-1) - 1 - (probs > 0).flip(-1).int().argmax(dim=-1, keepdim=True)
    choice = torch.where(zero, last_positive, choice).squeeze(-1)
    return choice if candidates is None else candidates.gather(1, choice[:, None]).squeeze(-1)


def left_pad(prompts: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """`(ids, real)` `[n, P]`: prompts right-aligned in P = the longest prompt's columns (every prompt's last token
    in the last column, so one step of decoding continues every row); pad ids are 0. Training rows built from a
    generation (`katcli.train.rollout`) pad the same way."""
    width = max(len(p) for p in prompts)
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    real = torch.zeros(len(prompts), width, dtype=torch.bool)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(list(p), dtype=torch.long)
        real[i, width - len(p) :] = True
    return ids, real


STOP_CHECK_EVERY = 8


class Engine:
    """Samples completions from `model`; stop tokens come from `tokenizer` (or are given explicitly)."""

    def __init__(
        self, model: GPT, tokenizer: Tokenizer | None = None, *, stop_token_ids: Sequence[int] | None = None
    ) -> None:
        if stop_token_ids is None:
            if tokenizer is None:
                raise ValueError("Engine needs a tokenizer or explicit stop_token_ids")
            stop_token_ids = getattr(tokenizer, "stop_token_ids", None) or [  # an HF adapter names its own
                tokenizer.encode_special("<|assistant_end|>"), tokenizer.bos_token_id
            ]
        self.model = model
        self.tokenizer = tokenizer
        self.stop_token_ids = sorted({int(t) for t in stop_token_ids})
        # How often decoding asks whether every row has stopped: each answer stops the host until the device has
        # caught up, so on a GPU only every few tokens (the extra steps write nothing); on the CPU it is free.
        self.stop_check_every = 1 if model.device.type == "cpu" else STOP_CHECK_EVERY

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        config: SamplingConfig | None = None,
        *,
        use_kv_cache: bool = True,
        row_seeds: Sequence[int] | None = None,
        progress: ProgressFn = no_progress,
        **overrides: object,
    ) -> Generation:
        """Sample `config.num_samples` completions for every prompt (lists of token ids).

        Keyword overrides (`temperature=0.0`, `num_samples=4`, …) replace fields of `config`. `row_seeds` (one per
        row, `n·G`, row `r` = prompt `r // G`) gives each row its own random stream in place of `config.seed`.
        """
        cfg = config or SamplingConfig()
        if overrides:
            cfg = SamplingConfig(**{**cfg.__dict__, **overrides})  # type: ignore[arg-type]
        model = self.model
        device = model.device
        vocab = model.config.vocab_size
        if not prompts:
            raise KatError("no prompts to sample from")
        for i, p in enumerate(prompts):
            if len(p) == 0:
                raise KatError(f"prompt {i} is empty", hint="render it with Tokenizer.render_for_completion")
            if min(p) < 0 or max(p) >= vocab:
                raise KatError(f"prompt {i} has token ids outside the model's vocabulary (0..{vocab - 1})")

        n, G = len(prompts), cfg.num_samples
        idx, real = left_pad(prompts)
        P = idx.size(1)
        padded = not bool(real.all())  # on the CPU tensors: no device sync
        idx, real = idx.to(device), real.to(device)
        pad_mask = real if padded else None
        total = P + cfg.max_new_tokens
        if total > model.rotary_seq_len:
            raise KatError(
                f"prompt ({P}) + --max-new-tokens ({cfg.max_new_tokens}) exceeds the model's limit "
                f"of {model.rotary_seq_len} tokens"
            )

        generator = torch.Generator(device=device).manual_seed(cfg.seed)
        stops = torch.tensor(self.stop_token_ids, dtype=torch.long, device=device)
        B = n * G
        row_uniforms: torch.Tensor | None = None
        if row_seeds is not None:
            if len(row_seeds) != B:
                raise ValueError(f"row_seeds has {len(row_seeds)} seeds for {B} rows")
            # One CPU stream per row, drawn up front: the numbers are the same on any device and batch.
            row_uniforms = torch.stack(
                [torch.rand(cfg.max_new_tokens, generator=torch.Generator().manual_seed(int(s))) for s in row_seeds]
            ).to(device)

        def last_logits(hidden: torch.Tensor) -> torch.Tensor:
            # Only the last position is sampled from: skip lm_head on the rest (both paths, so the comparison
            # between them measures the cache alone).
            return model.logits_from_hidden(hidden[:, -1, :])

        cache: KVCache | None = None
        hf_state = None
        if use_kv_cache and hasattr(model, "start_generation"):  # an HF backbone: transformers' own KV cache
            hidden, hf_state = model.start_generation(idx, real)
            logits = last_logits(hidden)
            hf_state.repeat_rows(G)
        elif use_kv_cache:
            prefill = KVCache.for_model(model.config, batch_size=n, max_len=P, device=device)
            logits = last_logits(model(idx, kv_cache=prefill, pad_mask=pad_mask, return_hidden=True))
            cache = prefill.repeat_rows(G, max_len=total)
            del prefill
        else:
            logits = last_logits(model(idx, pad_mask=pad_mask, return_hidden=True))
            seq = idx.repeat_interleave(G, dim=0)
            seq_real = real.repeat_interleave(G, dim=0)
        logits = logits.repeat_interleave(G, dim=0)

        tokens = torch.zeros(B, cfg.max_new_tokens, dtype=torch.long, device=device)
        logprobs = torch.zeros(B, cfg.max_new_tokens, dtype=torch.float32, device=device)
        mask = torch.zeros(B, cfg.max_new_tokens, dtype=torch.long, device=device)
        done = torch.zeros(B, dtype=torch.bool, device=device)
        finished = torch.zeros(B, dtype=torch.bool, device=device)

        for t in range(cfg.max_new_tokens):
            nxt = sample_tokens(
                logits, generator, temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p,
                uniforms=None if row_uniforms is None else row_uniforms[:, t],
            )
            lp = F.log_softmax(logits.float(), dim=-1).gather(1, nxt[:, None]).squeeze(1)
            live = ~done
            tokens[:, t] = torch.where(live, nxt, torch.zeros_like(nxt))
            logprobs[:, t] = torch.where(live, lp, torch.zeros_like(lp))
            mask[:, t] = live.long()
            hit = live & torch.isin(nxt, stops)
            finished |= hit
            done |= hit
            progress("sampling", t + 1, cfg.max_new_tokens)
            if t + 1 == cfg.max_new_tokens or ((t + 1) % self.stop_check_every == 0 and bool(done.all())):
                break
            step = tokens[:, t : t + 1]
            if hf_state is not None:
                logits = last_logits(hf_state.step(step))
            elif cache is not None:
                logits = last_logits(model(step, kv_cache=cache, return_hidden=True))
            else:
                seq = torch.cat([seq, step], dim=1)
                seq_real = torch.cat([seq_real, torch.ones_like(step, dtype=torch.bool)], dim=1)
                pm = seq_real if padded else None  # the prompts' padding, then real tokens only
                logits = last_logits(model(seq, pad_mask=pm, return_hidden=True))

        width = int(mask.sum(1).max())
        return Generation(
            tokens=tokens[:, :width].cpu(),
            logprobs=logprobs[:, :width].cpu(),
            mask=mask[:, :width].cpu(),
            prompt_index=torch.arange(n).repeat_interleave(G),
            finished=finished.cpu(),
            num_samples=G,
        )
