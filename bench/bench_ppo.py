"""Where one PPO step's time goes: rollout, reward, value (+ old log-probs), reference, update.

Runs kat's real PPO objective inside the real training loop, as `bench/bench_grpo.py` does for GRPO: a policy, a
reference, a reward model and a critic of `--depth` with random weights (timing does not depend on their values),
a BPE tokenizer trained on a small synthetic corpus, `--prompts` prompts × one reply of exactly `--new-tokens`
tokens per step (no stop token), `--ppo-epochs` × `--num-minibatches` updates. The first step is a warm-up and is
excluded. Phases:

- rollout: `Engine.generate` with per-reply row seeds (KV cache);
- reward: decoding the replies, re-rendering them with the reward model's tokenizer, its forward;
- value: the no-grad pass of the policy and the critic at rollout time (old log-probs and values);
- reference: the reference model's no-grad pass (`--kl-coef` > 0);
- update: every minibatch's forward + backward of policy and critic, clip, AdamW step.

The peer: TRL's `PPOTrainer` (TRL 0.29.1, `trl.experimental.ppo`, the last release that has it) on GPT-2 models of
the same width and depth (policy, reference, reward and value model), the same prompts (token ids through a
word-level tokenizer over kat's ids), batch, reply length (no stop token), epochs and minibatches, fp32 on the CPU
with the same thread count, timed from the end of its first (warm-up) update to the end of training. TRL runs in
its own environment (`--trl-python`, default /work/bench-trl/bin/python) as a subprocess of this script; it is
never a kat dependency. Prints one JSON object with each kat phase's seconds per step, its share, the step's reply
tokens/s for both, and the ratio kat / TRL.

    python bench/bench_ppo.py [--quick] [--depth 4] [--prompts 16] [--new-tokens 64] [--steps 3] [--no-trl]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_sampling import random_weights

from katcli.model.engine import SamplingConfig
from katcli.model.gpt import GPT, GPTConfig
from katcli.model.tokenizer import Tokenizer
from katcli.train.ddp import DistContext
from katcli.train.loop import LoopSettings, TrainingLoop
from katcli.train.objectives.ppo import PPOObjective
from katcli.train.ppo_losses import PPOConfig
from katcli.train.reward_model import RewardModel
from katcli.train.rm_scoring import RewardScorer
from katcli.train.sampler import WeightedSampler, item_probabilities

WORDS = ("apple river stone cloud green table music light paper horse bread window summer glass please maybe "
         "how what when why could would the a of to in is it you").split()
PHASES = ("rollout_s", "reward_s", "value_s", "reference_s", "update_s")
DEFAULT_TRL_PYTHON = "/work/bench-trl/bin/python"


def trl_worker(spec_path: str) -> None:
    """Runs inside the TRL environment: PPOTrainer on GPT-2 models of the given size; prints one JSON object."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch as T
    import transformers
    import trl
    from datasets import Dataset
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import (
        GPT2Config,
        GPT2ForSequenceClassification,
        GPT2LMHeadModel,
        PreTrainedTokenizerFast,
        TrainerCallback,
    )
    from trl.experimental.ppo import PPOConfig as TRLPPOConfig
    from trl.experimental.ppo import PPOTrainer

    transformers.logging.set_verbosity_error()
    logging.getLogger("trl").setLevel(logging.ERROR)
    spec = json.loads(Path(spec_path).read_text())
    T.set_num_threads(spec["threads"])
    vocab = {f"t{i}": i for i in range(spec["vocab_size"])}
    core = HFTokenizer(WordLevel(vocab, unk_token="t0"))
    core.pre_tokenizer = WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token=f"t{spec['end_id']}",
                                        pad_token=f"t{spec['pad_id']}", unk_token="t0")
    tokenizer.padding_side = "left"
    data = Dataset.from_list([{"input_ids": ids} for ids in spec["prompts"]])
    config = GPT2Config(
        vocab_size=spec["vocab_size"], n_positions=spec["max_len"], n_embd=spec["n_embd"], n_layer=spec["depth"],
        n_head=spec["n_head"], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=False,
        bos_token_id=spec["pad_id"], eos_token_id=spec["end_id"], pad_token_id=spec["pad_id"], num_labels=1,
    )
    T.manual_seed(0)
    policy, ref = GPT2LMHeadModel(config), GPT2LMHeadModel(config)
    reward, value = GPT2ForSequenceClassification(config), GPT2ForSequenceClassification(config)

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.t0: float | None = None
            self.t1: float | None = None
            self.steps = 0

        def on_step_end(self, args, state, control, **kw):
            self.steps += 1
            if self.steps == 1:
                self.t0 = time.perf_counter()
            self.t1 = time.perf_counter()

    clock = Clock()
    batch = spec["prompts_per_step"]
    args = TRLPPOConfig(
        output_dir=str(Path(spec_path).parent / "trl_out"), per_device_train_batch_size=batch // spec["num_minibatches"],
        gradient_accumulation_steps=1, num_mini_batches=spec["num_minibatches"], num_ppo_epochs=spec["ppo_epochs"],
        total_episodes=batch * (spec["steps"] + 1), response_length=spec["new_tokens"], stop_token=None,
        temperature=1.0, kl_coef=spec["kl_coef"], learning_rate=1e-5, num_sample_generations=0,
        local_rollout_forward_batch_size=batch, use_cpu=True, bf16=False, report_to=[], save_strategy="no",
        logging_steps=10**9, disable_tqdm=True, seed=0, missing_eos_penalty=None, dataloader_num_workers=0,
    )
    trainer = PPOTrainer(args=args, processing_class=tokenizer, model=policy, ref_model=ref, reward_model=reward,
                         value_model=value, train_dataset=data, callbacks=[clock])
    trainer.train()
    seconds = clock.t1 - clock.t0
    timed = clock.steps - 1
    print(json.dumps({
        "reply_tokens_per_s": batch * spec["new_tokens"] * timed / seconds if seconds > 0 else None,
        "seconds_per_step": seconds / timed if timed else None, "updates_timed": timed,
        "params_policy": sum(p.numel() for p in policy.parameters()),
        "trl": trl.__version__, "transformers": transformers.__version__, "torch": T.__version__,
    }))


def run_trl(python: str, spec: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                   HF_HOME=str(Path(tmp) / "hf_home"), WANDB_DISABLED="true", OMP_NUM_THREADS=str(spec["threads"]))
        proc = subprocess.run([python, __file__, "--trl-worker", str(spec_path)], capture_output=True, text=True,
                              env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"TRL worker failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="depth 2, 8 prompts, 16 new tokens, 2 steps")
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--kl-coef", type=float, default=0.05)
    ap.add_argument("--ppo-epochs", type=int, default=4)
    ap.add_argument("--num-minibatches", type=int, default=1)
    ap.add_argument("--vocab-size", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--trl-python", default=DEFAULT_TRL_PYTHON, help="python of the environment with TRL")
    ap.add_argument("--no-trl", action="store_true", help="skip the TRL peer")
    ap.add_argument("--trl-worker", metavar="SPEC", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.trl_worker:
        trl_worker(args.trl_worker)
        return
    if args.quick:
        args.depth, args.prompts, args.new_tokens, args.steps = 2, 8, 16, 2
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
    critic = copy.deepcopy(rm)  # the pipeline's choice when the reward model reads the policy's tokens

    n_items = 64
    prompts = [[{"role": "user", "content": " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 20)))}]
               for _ in range(n_items)]
    tokens = [tok.render_for_completion(m) for m in prompts]
    ids = [f"{i:016x}" for i in range(n_items)]
    scorer = RewardScorer(rm, tok, max_len=512, max_response_len=256, batch_size=args.prompts)
    objective = PPOObjective(
        policy, critic, tok, prompts=prompts, prompt_tokens=tokens, prompt_ids=ids, scorer=scorer,
        config=PPOConfig(kl_coef=args.kl_coef, ppo_epochs=args.ppo_epochs, num_minibatches=args.num_minibatches),
        sampling=SamplingConfig(max_new_tokens=args.new_tokens, temperature=1.0), seed=0,
        ref=ref if args.kl_coef > 0 else None, stop_token_ids=[],
    )
    sampler = WeightedSampler(item_probabilities(ids), np.asarray([len(t) for t in tokens]), seed=0,
                              batch_size=args.prompts)
    settings = LoopSettings(max_steps=args.steps + 1, micro_batch_size=args.prompts, lr=1e-5, warmup_steps=0)
    per_step: list[dict[str, float]] = []

    def on_step(live: dict) -> None:
        per_step.append({k: live[k] for k in PHASES})

    loop = TrainingLoop(objective, np.arange(n_items), sampler, settings, dist=DistContext(), out_dir=None,
                        on_step=on_step)
    loop.train()
    timed = per_step[1:]  # the first step warms allocators and kernels up
    phases = {k: sum(s[k] for s in timed) / len(timed) for k in PHASES}
    total = sum(phases.values())
    reply_tokens = args.prompts * args.new_tokens
    peer = None
    if not args.no_trl:
        peer = run_trl(args.trl_python, {
            "vocab_size": tok.vocab_size, "pad_id": tok.pad_token_id, "end_id": tok.encode_special("<|assistant_end|>"),
            "max_len": 512, "n_embd": cfg.n_embd, "n_head": cfg.n_head, "depth": args.depth,
            "prompts": tokens, "prompts_per_step": args.prompts, "new_tokens": args.new_tokens,
            "ppo_epochs": args.ppo_epochs, "num_minibatches": args.num_minibatches, "kl_coef": args.kl_coef,
            "steps": args.steps, "threads": args.threads,
        })
    kat_tps = reply_tokens / total
    print(json.dumps({
        "bench": "ppo_step", "quick": args.quick,
        "trl": peer, "kat_vs_trl_reply_tokens_per_s": round(kat_tps / peer["reply_tokens_per_s"], 2)
        if peer and peer.get("reply_tokens_per_s") else None,
        "model": {"depth": args.depth, **cfg.to_dict(), "params": policy.num_params()},
        "prompts": args.prompts, "new_tokens": args.new_tokens, "kl_coef": args.kl_coef,
        "ppo_epochs": args.ppo_epochs, "num_minibatches": args.num_minibatches, "steps_timed": len(timed),
        "step_seconds": round(total, 4),
        "seconds_per_step": {k.removesuffix("_s"): round(v, 4) for k, v in phases.items()},
        "share_of_step": {k.removesuffix("_s"): round(v / total, 3) for k, v in phases.items()},
        "reply_tokens_per_s": round(reply_tokens / total, 1),
        "rollout_tokens_per_s": round(reply_tokens / phases["rollout_s"], 1),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
    }, sort_keys=True))


if __name__ == "__main__":
    main()
