"""Where one GRPO step's time goes: rollout (KV-cache sampling), reward scoring, log-prob passes, the update.

Runs kat's real GRPO objective inside the real training loop (`TrainingLoop` over a `WeightedSampler` of prompts):
a policy and a reward model of `--depth` with random weights (timing does not depend on their values), a BPE
tokenizer trained on a small synthetic corpus, `--prompts` prompts × `--group-size` replies of exactly
`--new-tokens` tokens per step (no stop token: the policy's random weights would otherwise stop at random lengths).
The first step is a warm-up and is excluded; the remaining `--steps` are summed. Phases:

- rollout: `Engine.generate` with per-reply row seeds (prefill once, decode G rows per prompt);
- scoring: decoding the replies, re-rendering them with the reward model's tokenizer, the reward model's forward;
- logprob: the reference model's no-grad pass (β > 0) and, with `--num-iterations` > 1, the old-policy pass;
- update: every pass's forward + backward + clip + AdamW step (what the loop spends outside `prepare`).

With random weights the policy samples any id, special tokens included, whose text the reward model's tokenizer
re-encodes into several tokens: a 64-token random reply is ~118 tokens for the reward model (measured with this
corpus), so scoring's share is larger than with a trained policy's text replies.

The baseline each phase is compared with is the whole step: the JSON holds each phase's seconds per step and its
share. Prints one JSON object.

    python bench/bench_grpo.py [--quick] [--depth 4] [--prompts 8] [--group-size 8] [--new-tokens 64] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import random

import numpy as np
import torch
from bench_sampling import random_weights

from katcli.model.engine import SamplingConfig
from katcli.model.gpt import GPT, GPTConfig
from katcli.model.tokenizer import Tokenizer
from katcli.train.ddp import DistContext
from katcli.train.grpo_losses import GRPOConfig
from katcli.train.loop import LoopSettings, TrainingLoop
from katcli.train.objectives.grpo import GRPOObjective
from katcli.train.reward_model import RewardModel
from katcli.train.rm_scoring import RewardScorer
from katcli.train.sampler import WeightedSampler, item_probabilities

WORDS = ("apple river stone cloud green table music light paper horse bread window summer glass please maybe "
         "how what when why could would the a of to in is it you").split()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="depth 2, 4 prompts × 4, 16 new tokens, 2 steps")
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--beta", type=float, default=0.04)
    ap.add_argument("--num-iterations", type=int, default=1)
    ap.add_argument("--vocab-size", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if args.quick:
        args.depth, args.prompts, args.group_size, args.new_tokens, args.steps = 2, 4, 4, 16, 2
    torch.set_num_threads(args.threads)

    rng = random.Random(0)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(30)) for _ in range(400)]
    tok = Tokenizer.train(corpus, args.vocab_size)
    cfg = GPTConfig.from_depth(args.depth, vocab_size=tok.vocab_size, sequence_len=512)
    policy = GPT(cfg, seed=0)
    random_weights(policy, 0)
    ref = GPT(cfg, seed=1)
    ref.load_state_dict(policy.state_dict())
    rm = RewardModel(GPT(cfg, seed=2))
    random_weights(rm.gpt, 2)

    n_items = 64
    prompts = [[{"role": "user", "content": " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 20)))}]
               for _ in range(n_items)]
    tokens = [tok.render_for_completion(m) for m in prompts]
    ids = [f"{i:016x}" for i in range(n_items)]
    scorer = RewardScorer(rm, tok, max_len=512, max_response_len=256, batch_size=args.prompts * args.group_size)
    objective = GRPOObjective(
        policy, tok, prompts=prompts, prompt_tokens=tokens, prompt_ids=ids, scorer=scorer,
        config=GRPOConfig(group_size=args.group_size, beta=args.beta, num_iterations=args.num_iterations),
        sampling=SamplingConfig(max_new_tokens=args.new_tokens, temperature=1.0), seed=0,
        ref=ref if args.beta > 0 else None,
        stop_token_ids=[],  # no stop token: every reply has exactly --new-tokens tokens (comparable steps)
    )

    steps = args.steps + 1
    sampler = WeightedSampler(item_probabilities(ids), np.asarray([len(t) for t in tokens]), seed=0,
                              batch_size=args.prompts)
    settings = LoopSettings(max_steps=steps, micro_batch_size=args.prompts, lr=1e-5, warmup_steps=0)
    per_step: list[dict[str, float]] = []

    def on_step(live: dict) -> None:
        per_step.append({k: live[k] for k in ("rollout_s", "scoring_s", "logprob_s", "update_s")})

    loop = TrainingLoop(objective, np.arange(n_items), sampler, settings, dist=DistContext(), out_dir=None,
                        on_step=on_step)
    loop.train()
    timed = per_step[1:]  # the first step warms allocators and kernels up
    phases = {k: sum(s[k] for s in timed) / len(timed) for k in timed[0]}
    total = sum(phases.values())
    tokens_per_step = args.prompts * args.group_size * args.new_tokens
    result = {
        "bench": "grpo_step",
        "quick": args.quick,
        "model": {"depth": args.depth, **cfg.to_dict(), "params": policy.num_params()},
        "prompts": args.prompts, "group_size": args.group_size, "new_tokens": args.new_tokens,
        "beta": args.beta, "num_iterations": args.num_iterations, "steps_timed": len(timed),
        "step_seconds": round(total, 4),
        "seconds_per_step": {k.removesuffix("_s"): round(v, 4) for k, v in phases.items()},
        "share_of_step": {k.removesuffix("_s"): round(v / total, 3) for k, v in phases.items()},
        "rollout_tokens_per_s": round(tokens_per_step / phases["rollout_s"], 1),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
    }
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
