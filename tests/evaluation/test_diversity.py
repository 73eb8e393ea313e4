"""Diversity and style metrics on tiny corpora whose values are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from katcli.evaluation import diversity as D

K = 4
COLLAPSED = ["the cat sat down"] * K
UNRELATED = ["alpha beta gamma delta", "one two three four", "red green blue black", "north south east west"]


def test_distinct_n_by_hand():
    # unigrams a b c a b d: 4 unique of 6; bigrams (a b) (b c) (a b) (b d): 3 unique of 4
    assert D.distinct_n(["a b c", "a b d"], 1) == pytest.approx(4 / 6)
    assert D.distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)
    assert D.distinct_n(["a", "b"], 2) is None  # no bigram at all: undefined, not 0


def test_collapsed_set_scores_as_collapsed():
    assert D.distinct_n(COLLAPSED, 1) == pytest.approx(1 / K)
    assert D.distinct_n(COLLAPSED, 2) == pytest.approx(1 / K)
    assert D.self_bleu(COLLAPSED) == pytest.approx(100.0)  # sacrebleu's 0–100 scale
    e = np.tile(np.array([[0.6, 0.8, 0.0]]), (K, 1))
    assert D.embedding_diversity(e) == pytest.approx(0.0, abs=1e-12)
    assert D.vendi_score(e) == pytest.approx(1.0)


def test_unrelated_replies_score_high():
    assert D.distinct_n(UNRELATED, 1) == 1.0 and D.distinct_n(UNRELATED, 2) == 1.0
    assert D.self_bleu(UNRELATED) == pytest.approx(0.0)
    e = np.eye(K)
    assert D.embedding_diversity(e) == pytest.approx(1.0)
    assert D.vendi_score(e) == pytest.approx(K)


def test_self_bleu_by_hand():
    # "a b c d" vs "a b c e": precisions 3/4, 2/3, 1/2 and 0/1 → exp smoothing 1/2; no brevity penalty
    expected = 100 * (0.75 * (2 / 3) * 0.5 * 0.5) ** 0.25
    assert D.self_bleu(["a b c d", "a b c e"]) == pytest.approx(expected)
    assert D.self_bleu(["only one"]) is None


def test_embedding_diversity_and_vendi_by_hand():
    e = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])  # rows are normalised first
    # cosines: (1,2) = 1, (1,3) = 0, (2,3) = 0 → mean 1/3
    assert D.embedding_diversity(e) == pytest.approx(2 / 3)
    # K/3 has eigenvalues 2/3, 1/3, 0
    assert D.vendi_score(e) == pytest.approx(math.exp(-(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))))
    assert D.embedding_diversity(e[:1]) is None
    # more items than dimensions takes the dual (D×D) path: same value as the n×n matrix
    many = np.random.default_rng(0).normal(size=(50, 3))
    u = many / np.linalg.norm(many, axis=1, keepdims=True)
    lam = np.clip(np.linalg.eigvalsh(u @ u.T / 50), 0, None)
    lam = lam[lam > 1e-12] / lam[lam > 1e-12].sum()
    assert D.vendi_score(many) == pytest.approx(math.exp(-np.sum(lam * np.log(lam))))


def test_em_dash_rate_per_thousand_words():
    assert D.em_dash_rate(["well—no", "yes it is"]) == pytest.approx(1000 * 1 / 4)
    assert D.em_dash_rate(["", ""]) is None


def test_multiset_forms_equal_the_measures_on_repeated_rows():
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(6, 5))
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    counts = np.array([2, 0, 1, 3, 0, 1])
    rows = np.repeat(np.arange(6), counts)
    sim = unit @ unit.T
    assert D.embedding_diversity_from_similarity(sim, counts) == pytest.approx(D.embedding_diversity(emb[rows]))
    assert D.vendi_from_similarity(sim, counts) == pytest.approx(D.vendi_score(emb[rows]))
    texts = ["a b c", "d e", "a b", "f g h i", "", "c d"]
    for n in (1, 2):
        ids, owner, size = D.gram_index(texts, n)
        assert D.distinct_from_counts(ids, owner, size, counts) == pytest.approx(D.distinct_n([texts[i] for i in rows], n))
    ids, owner, size = D.gram_index(texts, 2)
    assert D.distinct_from_counts(ids, owner, size, np.array([0, 0, 0, 0, 1, 0])) is None
