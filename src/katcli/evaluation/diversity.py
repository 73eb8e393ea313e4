"""Diversity and style of generated replies, as pure functions of texts and embeddings.

- `distinct_n(texts, n)`: unique n-grams / total n-grams over all the texts together (Li et al. 2016, "A
  Diversity-Promoting Objective Function for Neural Conversation Models"); words are whitespace-separated tokens.
  K copies of one reply whose n-grams are all different score 1/K.
- `self_bleu(texts)`: each text scored by sentence BLEU against all the others as references, averaged (Zhu et al.
  2018, "Texygen"); computed by sacrebleu (its default 13a tokenisation and exponential smoothing), on sacrebleu's
  0–100 scale: 100 = every sample repeats the others, lower = more varied.
- `embedding_diversity(E)`: 1 − mean pairwise cosine similarity of unit-row embeddings (pairs i < j); 0 for copies.
- `vendi_score(E)`: exp of the Shannon entropy of the eigenvalues of K/n, K the cosine-similarity matrix (Friedman
  & Dieng 2023, "The Vendi Score"): the effective number of distinct items, 1 for copies, n for orthogonal items.
- `words`, `em_dashes`: the style counts (em-dash rate = U+2014 characters per 1,000 words).
- `*_from_similarity`, `distinct_from_counts`: the same set measures on a multiset (item k counted c_k times), which
  is what a bootstrap resample is; computed from precomputed similarities and n-gram ids, so 200 resamples are cheap.

A measure that is undefined for its input (fewer than two texts, no n-grams) returns None, never a made-up number.
This module knows nothing about models, prompts, files or how the embeddings were computed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

EM_DASH = "\u2014"


def words(text: str) -> list[str]:
    return text.split()


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """Unique n-grams / total n-grams across `texts`; None when they hold no n-gram at all."""
    if n < 1:
        raise ValueError("n must be at least 1")
    grams = [g for t in texts for g in ngrams(words(t), n)]
    return len(set(grams)) / len(grams) if grams else None


_BLEU = None


def _bleu():  # one configured scorer; sacrebleu is imported only when a score is needed
    global _BLEU
    if _BLEU is None:
        from sacrebleu.metrics import BLEU

        _BLEU = BLEU(effective_order=True)
    return _BLEU


def self_bleu(texts: Sequence[str]) -> float | None:
    """Mean over i of sentence-BLEU(texts[i], references = the other texts), 0–100; None for fewer than two."""
    if len(texts) < 2:
        return None
    bleu = _bleu()
    scores = [bleu.sentence_score(t, [o for j, o in enumerate(texts) if j != i]).score for i, t in enumerate(texts)]
    return float(np.mean(scores))


def _unit(emb: np.ndarray) -> np.ndarray:
    e = np.asarray(emb, dtype=np.float64)
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    return e / np.where(norms == 0, 1.0, norms)


def embedding_diversity(emb: np.ndarray) -> float | None:
    """1 − mean cosine similarity over the pairs i < j of the rows of `emb`; None for fewer than two rows."""
    e = _unit(emb)
    return embedding_diversity_from_similarity(e @ e.T, np.ones(len(e)))


def vendi_score(emb: np.ndarray) -> float | None:
    """exp(−Σ λ log λ) over the eigenvalues λ of K/n, K = cosine similarities of the rows; None for no rows."""
    e = _unit(emb)
    n = len(e)
    if n == 0:
        return None
    if e.shape[1] < n:  # the eigenvalues of E·Eᵀ/n equal the non-zero ones of Eᵀ·E/n: use the smaller matrix
        return _entropy_exp(np.linalg.eigvalsh((e.T @ e) / n))
    return vendi_from_similarity(e @ e.T, np.ones(n))


# -- the same measures on a multiset of items: item k counted c_k times (bootstrap resamples repeat items) --------


def embedding_diversity_from_similarity(sim: np.ndarray, counts: np.ndarray) -> float | None:
    """`embedding_diversity` of the multiset holding item k `counts[k]` times, from the items' cosine matrix.

    Pairs are of distinct *positions*, so two copies of one item form a pair of similarity 1."""
    c = np.asarray(counts, dtype=np.float64)
    m = c.sum()
    if m < 2:
        return None
    pair_sum = float(c @ sim @ c - (c * np.diag(sim)).sum())
    return float(1.0 - pair_sum / (m * (m - 1)))


def vendi_from_similarity(sim: np.ndarray, counts: np.ndarray) -> float | None:
    """`vendi_score` of the multiset holding item k `counts[k]` times, from the items' cosine matrix.

    The m×m similarity matrix of the multiset, P·S·Pᵀ, has the non-zero eigenvalues of diag(√c)·S·diag(√c), so only
    the distinct items' block is decomposed."""
    c = np.asarray(counts, dtype=np.float64)
    keep = np.flatnonzero(c)
    if len(keep) == 0:
        return None
    r = np.sqrt(c[keep])
    block = sim[np.ix_(keep, keep)] * r[:, None] * r[None, :] / c.sum()
    return _entropy_exp(np.linalg.eigvalsh(block))


def _entropy_exp(eigenvalues: np.ndarray) -> float:
    lam = np.clip(eigenvalues, 0.0, None)
    lam = lam[lam > 1e-12]
    lam = lam / lam.sum()
    return float(math.exp(-float(np.sum(lam * np.log(lam)))))


def distinct_from_counts(
    gram_ids: np.ndarray, owner: np.ndarray, n_grams: int, counts: np.ndarray
) -> float | None:
    """distinct-n of the multiset holding item k `counts[k]` times; `gram_ids[j]` is the j-th n-gram (as an id in
    `range(n_grams)`) of item `owner[j]`. Unique grams are those of the items present; the total counts repeats."""
    c = np.asarray(counts)
    total = int(c[owner].sum()) if len(owner) else 0
    if total == 0:
        return None
    present = gram_ids[c[owner] > 0]
    return int(np.count_nonzero(np.bincount(present, minlength=n_grams))) / total


def gram_index(texts: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(gram ids, owning text index, number of distinct grams) of the n-grams of `texts`, for `distinct_from_counts`."""
    vocab: dict[tuple[str, ...], int] = {}
    ids: list[int] = []
    owner: list[int] = []
    for k, t in enumerate(texts):
        for g in ngrams(words(t), n):
            ids.append(vocab.setdefault(g, len(vocab)))
            owner.append(k)
    return np.asarray(ids, dtype=np.int64), np.asarray(owner, dtype=np.int64), len(vocab)


def em_dashes(text: str) -> int:
    return text.count(EM_DASH)


def em_dash_rate(texts: Sequence[str]) -> float | None:
    """Em dashes per 1,000 words over `texts` together; None when they hold no word."""
    n_words = sum(len(words(t)) for t in texts)
    return 1000.0 * sum(em_dashes(t) for t in texts) / n_words if n_words else None
