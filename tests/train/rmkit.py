"""Test kit for reward-model training: planted-signal pairs and a workspace with every upstream stage recorded.

Deliberately not a conftest.py (several conftest modules would collide under one name); tests in this directory
`from rmkit import ...`, tests elsewhere load this file by path (see `load_rmkit` in the CLI tests).

The planted signal: every chosen reply contains the word "please", every rejected reply the word "maybe" at a
random position, otherwise both are random words of the same length distribution, so nothing but the planted word
separates them. With `random_labels=True` chosen and rejected are swapped by a coin flip, so nothing is learnable.
"""

from __future__ import annotations

import io
import json
import math
import random
from collections import OrderedDict
from pathlib import Path

import numpy as np

from katcli.data.keys import prefix_id
from katcli.model.tokenizer import Tokenizer
from katcli.pipeline.stage import StageRun
from katcli.workspace import Workspace
from katcli.workspace import paths as P

WORDS = "apple river stone cloud green table music light paper horse bread window summer glass".split()
SOURCES = ("src-a", "src-b")


def planted_pairs(
    n_prompts: int = 240, per_prompt: int = 2, *, seed: int = 0, random_labels: bool = False, multi_turn: bool = True
) -> list[dict]:
    rng = random.Random(seed)
    pairs = []
    for q in range(n_prompts):
        first = f"q{q} " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
        messages = [{"role": "user", "content": first}]
        if multi_turn and q % 5 == 0:
            messages += [
                {"role": "assistant", "content": " ".join(rng.choice(WORDS) for _ in range(3))},
                {"role": "user", "content": " ".join(rng.choice(WORDS) for _ in range(2))},
            ]
        for k in range(per_prompt):
            good = [rng.choice(WORDS) for _ in range(rng.randint(2, 5))]
            bad = [rng.choice(WORDS) for _ in range(rng.randint(2, 5))]
            good.insert(rng.randint(0, len(good)), "please")
            bad.insert(rng.randint(0, len(bad)), "maybe")
            chosen, rejected = " ".join(good), " ".join(bad)
            if random_labels and rng.random() < 0.5:
                chosen, rejected = rejected, chosen
            pairs.append(
                {
                    "id": f"p{q:04d}-{k}",
                    "prefix": {"messages": messages},
                    "chosen": chosen,
                    "rejected": rejected,
                    "src": SOURCES[q % len(SOURCES)],
                    "split": "train",
                    "prefix_id": prefix_id(messages),
                    "meta": {},
                }
            )
    return pairs


def chi2_critical(df: int, z: float = 3.090232) -> float:
    """Wilson–Hilferty approximation of the chi-square quantile (z = 3.09 ↔ p = 0.001), for sampling tests."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def pairs_bytes(pairs: list[dict]) -> bytes:
    return b"".join((json.dumps(p, separators=(",", ":")) + "\n").encode() for p in pairs)


def prefixes_of(pairs: list[dict]) -> list[dict]:
    rows: OrderedDict[str, dict] = OrderedDict()
    for p in pairs:
        row = rows.setdefault(p["prefix_id"], {"id": p["prefix_id"], "prefix": p["prefix"], "n_pairs": 0, "srcs": []})
        row["n_pairs"] += 1
        if p["src"] not in row["srcs"]:
            row["srcs"].append(p["src"])
    return list(rows.values())


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _record(ws: Workspace, stage: str, outputs: dict[str, bytes], inputs: tuple[str, ...] = ()) -> None:
    with StageRun(ws, stage, params={"fake": True}, command=f"kat test-{stage}") as run:
        for rel in inputs:
            run.input(rel)
        for rel, data in outputs.items():
            run.output(rel).write_bytes(data)


def write_pairs(ws: Workspace, pairs: list[dict]) -> None:
    """Record the pairs and prefixes stages (again, after a change: as a re-download and `kat prefixes` would)."""
    prefixes = prefixes_of(pairs)
    _record(ws, "pairs", {P.PAIRS: pairs_bytes(pairs)})
    _record(
        ws, "prefixes",
        {
            P.PREFIXES: b"".join((json.dumps(r, separators=(",", ":")) + "\n").encode() for r in prefixes),
            P.PREFIX_ID_MAP: b"".join(f"{p['id']}\t{p['prefix_id']}\n".encode() for p in pairs),
        },
        inputs=(P.PAIRS,),
    )


def make_tokenizer(pairs: list[dict], vocab_size: int = 300) -> Tokenizer:
    texts = [t for p in pairs for t in [m["content"] for m in p["prefix"]["messages"]] + [p["chosen"], p["rejected"]]]
    return Tokenizer.train(texts, vocab_size)


def density_weights(prefix_ids: list[str], seed: int = 0) -> np.ndarray:
    """Positive weights spanning ~30x, summing to 1 (float32), like `kat embed` writes."""
    rng = np.random.default_rng(seed)
    w = np.exp(rng.uniform(0.0, 3.4, size=len(prefix_ids)))
    return (w / w.sum()).astype(np.float32)


def make_workspace(
    root: Path,
    pairs: list[dict],
    *,
    vocab_size: int = 300,
    with_weights: bool = True,
    weights: np.ndarray | None = None,
    tokenizer: Tokenizer | None = None,
) -> Workspace:
    """pairs → prefixes → tokenizer (→ embed) recorded through the real StageRun protocol."""
    ws = Workspace(root)
    prefixes = prefixes_of(pairs)
    write_pairs(ws, pairs)
    tok = tokenizer or make_tokenizer(pairs, vocab_size)
    _record(ws, "tokenizer", {f"{P.TOKENIZER_DIR}/tokenizer.json": tok.to_json_bytes()}, inputs=(P.PAIRS,))
    if with_weights:
        ids = [r["id"] for r in prefixes]
        w = density_weights(ids) if weights is None else weights
        _record(
            ws, "embed",
            {
                P.EMBEDDINGS: _npy(np.zeros((len(ids), 4), dtype=np.float32)),
                P.DENSITY_WEIGHTS: _npy(w),
                P.EMBED_IDS: json.dumps(ids).encode(),
                P.EMBED_METADATA: b"{}",
            },
            inputs=(P.PREFIXES,),
        )
    return ws


MARKER = "please"  # the word every planted chosen reply carries


def planted_rm_and_policy(root: Path, *, n_prompts: int = 200, rm_steps: int = 60, sft_steps: int = 20) -> Workspace:
    """A planted workspace with a reward model (`rm/uniform`, which learns to reward "please") and a weak SFT
    policy (`sft/uniform`, a few steps on the chosen replies, so it says "please" only sometimes), both trained by
    the real stages at toy size."""
    from katcli.pipeline.train_rm import run_train_rm, tiny_config
    from katcli.pipeline.train_sft import run_train_sft, tiny_sft_config

    ws = make_workspace(root, planted_pairs(n_prompts))
    run_train_rm(ws, tiny_config(max_steps=rm_steps, max_len=64, lr=3e-3))
    run_train_sft(ws, tiny_sft_config(max_steps=sft_steps, max_len=64))
    return ws


TEMPLATE = "sure thing : please"


def templated_pairs(n_prompts: int = 200, per_prompt: int = 1, *, seed: int = 0) -> list[dict]:
    """Planted SFT data: every chosen reply is the fixed `TEMPLATE`; rejected replies are random words."""
    pairs = planted_pairs(n_prompts, per_prompt, seed=seed, multi_turn=True)
    rng = random.Random(seed + 1)
    for p in pairs:
        p["chosen"] = TEMPLATE
        p["rejected"] = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
    return pairs
