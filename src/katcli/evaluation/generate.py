"""Sampling a policy's replies to evaluation prompts, reproducibly.

Every (prompt, sample) pair has its own random stream, seeded by (seed, prompt id, sample index)
(`Engine.generate(row_seeds=...)`), so a reply depends on the policy, its prompt and the seed, not on which prompts
share its batch; a re-run gives the same replies, and two policies see the same random numbers for the same
(prompt, sample), which makes their comparison paired. Prompts are rendered with the policy's own tokenizer; a
prompt too long for the policy's context (`sequence_len − max_new_tokens`) loses tokens from the left, keeping
`<|bos|>` and the final user turn, exactly as reward-model sequences are fitted (`katcli.train.sequences`).
Batches are formed from prompts of similar length to waste little on padding.

This module knows models, tokenizers and the engine; not files, rewards or measures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from katcli.errors import ConfigError
from katcli.progress import ProgressFn, no_progress

USER_START = "<|user_start|>"


@dataclass(frozen=True)
class Reply:
    text: str
    tokens: int  # generated tokens, without the stop token
    truncated: bool  # stopped by --max-new-tokens rather than by <|assistant_end|>


@dataclass(frozen=True)
class GenerationConfig:
    samples: int = 4
    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float | None = None
    seed: int = 0
    batch_prompts: int = 16

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ConfigError("--samples must be at least 1")
        if self.batch_prompts < 1:
            raise ConfigError("--batch-size must be at least 1")
        self.sampling()  # the engine's own checks of --max-new-tokens, --temperature, --top-p

    def sampling(self) -> Any:
        from katcli.model.engine import SamplingConfig

        return SamplingConfig(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
            num_samples=self.samples, seed=self.seed,
        )


def sample_seed(seed: int, prompt_id: str, sample: int) -> int:
    """The 63-bit seed of one (prompt, sample) stream."""
    digest = hashlib.sha256(f"kat-eval-sample:{seed}:{prompt_id}:{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def render_prompts(
    tokenizer: Any, prompts: Sequence[Sequence[Mapping[str, Any]]], *, context: int, max_new_tokens: int, name: str
) -> tuple[list[list[int]], int]:
    """Rendered prompts fitted into `context − max_new_tokens` tokens; plus how many had to be trimmed."""
    from katcli.train.sequences import trim_prefix

    budget = context - max_new_tokens
    if budget < 8:
        raise ConfigError(
            f"--max-new-tokens {max_new_tokens} leaves no room for a prompt in {name}'s context of {context} tokens",
            hint=f"use --max-new-tokens {max(1, context // 2)} or less",
        )
    bos, user_start = tokenizer.bos_token_id, tokenizer.encode_special(USER_START)
    out: list[list[int]] = []
    trimmed = 0
    for messages in prompts:
        ids, cut, _ = trim_prefix(tokenizer.render_for_completion(list(messages)), budget, bos=bos, user_start=user_start)
        trimmed += cut
        out.append(ids)
    return out, trimmed


def generate_replies(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[Mapping[str, Any]]],
    prompt_ids: Sequence[str],
    cfg: GenerationConfig,
    *,
    name: str = "policy",
    progress: ProgressFn = no_progress,
) -> tuple[list[list[Reply]], dict[str, int]]:
    """`cfg.samples` replies per prompt (outer list in prompt order), and counts (tokens generated, trimmed)."""
    from katcli.model.engine import Engine

    rendered, trimmed = render_prompts(
        tokenizer, prompts, context=model.config.sequence_len, max_new_tokens=cfg.max_new_tokens, name=name
    )
    engine = Engine(model, tokenizer)
    sampling = cfg.sampling()
    order = sorted(range(len(rendered)), key=lambda i: (len(rendered[i]), i))
    out: list[list[Reply]] = [[] for _ in rendered]
    generated = 0
    task = f"generating {name}"
    progress(task, 0, len(rendered))
    was_training = model.training
    model.eval()
    try:
        for lo in range(0, len(order), cfg.batch_prompts):
            chunk = order[lo : lo + cfg.batch_prompts]
            seeds = [sample_seed(cfg.seed, prompt_ids[i], k) for i in chunk for k in range(cfg.samples)]
            gen = engine.generate([rendered[i] for i in chunk], sampling, row_seeds=seeds)
            for row in range(len(seeds)):
                ids = gen.completion(row)
                generated += len(ids)
                reply = Reply(tokenizer.decode(ids), len(ids), not bool(gen.finished[row]))
                out[chunk[row // cfg.samples]].append(reply)
            progress(task, min(lo + cfg.batch_prompts, len(order)), len(rendered))
    finally:
        model.train(was_training)
    return out, {"tokens": generated, "prompts_trimmed": trimmed}
