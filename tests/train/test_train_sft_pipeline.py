"""`run_train_sft` end to end on planted data, and the SFT loss's mask.

Planted task: every chosen reply is one fixed template that the rejected replies lack. Training must lower the
held-out reply NLL far below the untrained model's, and the policy's greedy replies to held-out prompts must be the
template. The loss must come from reply tokens only: a planted gradient check fails if prompt tokens (or padding)
contribute, or if the mask is shifted by one.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from rmkit import TEMPLATE, make_tokenizer, make_workspace, templated_pairs

import katcli.train.objectives.sft as sft_mod
from katcli.errors import KatError
from katcli.model import Engine, load_model
from katcli.model.gpt import GPT, GPTConfig
from katcli.pipeline.train_rm import run_train_rm, tiny_config
from katcli.pipeline.train_sft import TrainSFTConfig, run_train_sft, tiny_sft_config
from katcli.train.sequences import encode_sequences
from katcli.train.split import split_pairs
from katcli.workspace import Manifest

SMALL = dict(max_len=64)


def test_the_loss_counts_reply_tokens_only(monkeypatch):
    pairs = templated_pairs(6)
    tok = make_tokenizer(pairs)
    enc = encode_sequences(tok, [(p["prefix"]["messages"], (p["chosen"],)) for p in pairs], max_len=64,
                           max_response_len=32)
    gpt = GPT(GPTConfig.from_depth(1, vocab_size=tok.vocab_size, sequence_len=64), seed=0)
    obj = sft_mod.SFTObjective(gpt, enc, pad_id=tok.bos_token_id)
    (mb,) = obj.prepare(0, np.arange(len(pairs)), micro_batch_size=len(pairs))
    captured = {}

    def leaf_logprobs(model, ids):
        captured["logp"] = torch.zeros(ids.shape, requires_grad=True)
        return captured["logp"]

    monkeypatch.setattr(sft_mod, "token_logprobs", leaf_logprobs)
    loss, stats = obj.loss(gpt, mb, pass_index=0)
    loss.backward()
    touched = captured["logp"].grad != 0
    # logp[:, t] is the log-prob of token t: exactly the reply tokens and the closing end token, nothing else.
    expected = np.zeros(mb.ids.shape, dtype=bool)
    end = tok.encode_special("<|assistant_end|>")
    for row in range(len(pairs)):
        start, stop = int(mb.prompt_lens[row]), int(mb.lengths[row])
        expected[row, start:stop] = True
        assert tok.decode(mb.ids[row, start : stop - 1].tolist()) == TEMPLATE
        assert mb.ids[row, stop - 1] == end
    assert np.array_equal(touched.numpy(), expected)
    assert stats["reply_tokens"] == int(expected.sum()) == obj.loss_denominator([mb])


@pytest.mark.slow
def test_planted_template_is_learned_and_greedy_replies_follow_it(tmp_path):
    pairs = templated_pairs(200)
    ws = make_workspace(tmp_path / "ws", pairs, with_weights=False)
    untrained = run_train_sft(ws, tiny_sft_config(name="untrained", max_steps=1, lr=1e-9, **SMALL))
    res = run_train_sft(ws, tiny_sft_config(max_steps=60, **SMALL))
    before, after = untrained.eval.overall.mean, res.eval.overall.mean
    assert after < 0.1 * before and after < 0.3, (before, after)

    model, ckpt = load_model(res.directory)  # a plain GPT checkpoint, as `kat import nanochat` writes
    assert ckpt.meta["kind"] == "kat-policy" and ckpt.meta["objective"] == "sft"
    from katcli.model.tokenizer import Tokenizer

    tok = Tokenizer.load(res.directory / "tokenizer.json")
    split = split_pairs([p["prefix_id"] for p in pairs], seed=0, val_ratio=0.2)
    held = [pairs[i] for i in split.heldout[:8]]
    prompts = [tok.render_for_completion(p["prefix"]["messages"]) for p in held]
    gen = Engine(model, tok).generate(prompts, max_new_tokens=12, temperature=0.0, seed=0)
    replies = [tok.decode(gen.completion(i)) for i in range(len(held))]
    assert replies == [TEMPLATE] * len(held), replies


def test_uniform_and_density_sft_share_the_heldout_prompts_with_the_reward_model(tmp_path):
    pairs = templated_pairs(80, per_prompt=2)
    ws = make_workspace(tmp_path / "ws", pairs)
    uni = run_train_sft(ws, tiny_sft_config(max_steps=2, **SMALL))
    den = run_train_sft(ws, tiny_sft_config(density_aware=True, max_steps=2, **SMALL))
    rm = run_train_rm(ws, tiny_config(max_steps=1, **SMALL))
    assert uni.heldout_fingerprint == den.heldout_fingerprint == rm.heldout_fingerprint
    assert (uni.name, den.name) == ("uniform", "density")
    assert uni.ess_fraction == pytest.approx(1.0) and den.ess_fraction < 0.95
    assert den.eval.by_quintile is not None and len(den.eval.by_quintile) == 5
    runs = Manifest.load(ws.manifest_path).runs
    assert {"sft/uniform", "sft/density", "rm/uniform"} <= set(runs)
    assert runs["sft/density"].stats["heldout_nll"]["n"] == den.heldout_pairs
    lines = [json.loads(x) for x in (den.directory / "metrics.jsonl").read_text().splitlines()]
    assert set(lines[0]) >= {"step", "loss", "perplexity", "reply_tokens", "lr", "grad_norm", "pad_fraction"}


def test_an_sft_run_is_an_init_for_reward_models_and_for_sft(tmp_path):
    pairs = templated_pairs(40)
    ws = make_workspace(tmp_path / "ws", pairs, with_weights=False)
    run_train_sft(ws, tiny_sft_config(max_steps=2, **SMALL))
    rm = run_train_rm(ws, tiny_config(name="from-sft", init="uniform", depth=None, max_steps=1, lr=1e-4, **SMALL))
    assert not any(n.startswith("trained from scratch") for n in rm.notes)
    again = run_train_sft(ws, TrainSFTConfig(name="again", init="sft/uniform", max_steps=1, batch_size=8,
                                             val_ratio=0.2, device="cpu", threads=1, **SMALL))
    assert again.step == 1
    with pytest.raises(KatError) as err:
        run_train_sft(ws, TrainSFTConfig(name="x", init="nope", max_steps=1, **SMALL))
    assert err.value.message == "--init nope: no such run or checkpoint directory"


def test_density_aware_sft_draws_each_prompt_by_its_weight(tmp_path, monkeypatch):
    """The SFT stage hands the one sampler the per-prompt density probabilities; the sampler's statistical test
    (test_sampler.py) shows that it then draws with exactly those frequencies."""
    import katcli.train.sampler as sampler_mod
    from rmkit import density_weights, prefixes_of

    pairs = templated_pairs(60, per_prompt=3)
    ws = make_workspace(tmp_path / "ws", pairs)
    built = []
    real = sampler_mod.WeightedSampler

    def spy(probs, lengths, **kw):
        built.append(np.asarray(probs))
        return real(probs, lengths, **kw)

    monkeypatch.setattr(sampler_mod, "WeightedSampler", spy)
    run_train_sft(ws, tiny_sft_config(density_aware=True, max_steps=1, **SMALL))
    ids = [r["id"] for r in prefixes_of(pairs)]
    weight = dict(zip(ids, density_weights(ids).astype(np.float64)))
    split = split_pairs([p["prefix_id"] for p in pairs], seed=0, val_ratio=0.2)
    train_pids = [pairs[i]["prefix_id"] for i in split.train]
    per_prompt = {pid: weight[pid] for pid in set(train_pids)}
    total = sum(per_prompt.values())
    (probs,) = built
    got: dict[str, float] = {}
    for pid, p in zip(train_pids, probs):
        got[pid] = got.get(pid, 0.0) + float(p)
    assert got == pytest.approx({pid: w / total for pid, w in per_prompt.items()}, rel=1e-5)
