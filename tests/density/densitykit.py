"""Test data for the density tests: planted clusters, clustered clouds, and prefixes files in the real schema."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def planted(n_dup: int = 500, n_rare: int = 20, dim: int = 64, seed: int = 0) -> np.ndarray:
    """`n_dup` near-duplicates of one direction, then `n_rare` unrelated random directions."""
    rng = np.random.default_rng(seed)
    center = rng.standard_normal(dim)
    dups = center + 0.02 * np.linalg.norm(center) * rng.standard_normal((n_dup, dim)) / np.sqrt(dim)
    rare = rng.standard_normal((n_rare, dim))
    return unit(np.vstack([dups, rare]))


def clustered(n: int, dim: int = 32, seed: int = 0, n_clusters: int = 40, local_dim: int = 6) -> np.ndarray:
    """Clusters of very different sizes and spreads, each a low-dimensional cloud around a random centre."""
    rng = np.random.default_rng(seed)
    sizes = rng.zipf(1.6, n_clusters).astype(np.float64)
    labels = rng.choice(n_clusters, size=n, p=sizes / sizes.sum())
    centres = unit(rng.standard_normal((n_clusters, dim)))
    bases = rng.standard_normal((n_clusters, local_dim, dim)) / np.sqrt(dim)
    spread = rng.uniform(0.2, 1.5, n_clusters)
    z = rng.standard_normal((n, local_dim)) * spread[labels, None]
    noise = 0.1 * rng.standard_normal((n, dim)) / np.sqrt(dim)
    return unit(centres[labels] + np.einsum("nr,nrd->nd", z, bases[labels]) + noise)


def brute_force(emb: np.ndarray, k: int) -> np.ndarray:
    """Each row's k largest similarities to the other rows, in float64 from the full N×N matrix (small N only)."""
    sims = emb.astype(np.float64) @ emb.astype(np.float64).T
    np.fill_diagonal(sims, -np.inf)
    return -np.sort(-sims, axis=1)[:, :k]


def prefix_row(pid: str, messages: list[tuple[str, str]], n_pairs: int = 1, srcs=("hh-rlhf",)) -> dict:
    return {
        "id": pid,
        "prefix": {"messages": [{"role": r, "content": c} for r, c in messages]},
        "n_pairs": n_pairs,
        "srcs": list(srcs),
    }


def write_prefixes(path: Path, prompts: list[str], ids: list[str] | None = None) -> list[str]:
    """One single-turn prefix per prompt, in the schema `kat prefixes` writes; returns the ids."""
    ids = ids or [f"p{i:05d}" for i in range(len(prompts))]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for pid, text in zip(ids, prompts):
            fh.write(json.dumps(prefix_row(pid, [("user", text)]), sort_keys=True) + "\n")
    return ids


def cluster_prompts(n_dup: int = 500) -> list[str]:
    """`n_dup` near-duplicate prompts: one question with small variations."""
    openers = ["How do I", "How can I", "What is the best way to", "Tell me how to", "Can you explain how to"]
    dishes = ["bake a chocolate cake", "make a chocolate cake", "bake chocolate cake", "prepare a chocolate cake"]
    tails = ["at home", "from scratch", "for a birthday", "quickly", "without eggs", "in a small oven",
             "for beginners", "step by step", "with cocoa powder", "that is moist", "for my kids", "tonight",
             "in an hour", "for a party", "easily", "the classic way", "with dark chocolate", "for two people",
             "on a budget", "like my grandmother", "for the first time", "in a bundt pan", "for a bake sale",
             "without butter", "that stays fresh"]
    out = [f"{o} {d} {t}?" for o in openers for d in dishes for t in tails]
    return out[:n_dup]


RARE_PROMPTS = [
    "What is the capital city of Mongolia?",
    "Explain quantum entanglement to a ten year old.",
    "Write a haiku about autumn leaves.",
    "How do I change a flat tire on a bicycle?",
    "What were the main causes of the First World War?",
    "Translate 'good morning' into Japanese.",
    "How does compound interest work?",
    "Recommend a good science fiction novel.",
    "Why is the sky blue?",
    "How do I fix a leaking kitchen faucet?",
    "What is the difference between a virus and a bacterium?",
    "Give me tips for a job interview in software engineering.",
    "How many moons does Jupiter have?",
    "Describe the rules of chess for a beginner.",
    "What should I pack for a week of hiking in the Alps?",
    "How do vaccines train the immune system?",
    "Summarise the plot of Hamlet.",
    "What is a good stretching routine for lower back pain?",
    "How do I write a SQL query that joins two tables?",
    "Which houseplants survive in low light?",
]
