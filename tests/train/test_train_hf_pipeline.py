"""Hugging Face backbones through the real training stages: train, resume, reload in plain `transformers`.

Tiny random models (hfkit: Llama-style and GPT-2-style causal LMs, a BERT-style encoder, a word-level tokenizer
trained here with a chat template) go through `kat train rm` and `kat train sft` for a few steps. Every output
directory must load with `AutoModelFor….from_pretrained(DIR)` and give the rewards / logits kat computes
(tolerance 1e-5 absolute on fp32 CPU: the same kernels, only batching and padding differ).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hfkit import build_model, plain_rewards, train_tokenizer
from rmkit import make_workspace, planted_pairs

from katcli.errors import KatError
from katcli.pipeline.train_rm import TrainRMConfig, run_train_rm
from katcli.pipeline.train_sft import TrainSFTConfig, run_train_sft
from katcli.workspace import Manifest

TOL = 1e-5
COMMON = dict(max_steps=3, batch_size=8, max_len=64, val_ratio=0.2, eval_every=0, save_every=0, device="cpu",
              threads=1, lr=1e-3)


@pytest.fixture(scope="session")
def hf_models(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("hf_models")
    pairs = planted_pairs(30)
    dec_tok = train_tokenizer(pairs, encoder=False)
    enc_tok = train_tokenizer(pairs, encoder=True)
    return {
        "pairs": pairs,
        "llama": build_model("llama", dec_tok, root / "llama"),
        "gpt2": build_model("gpt2", dec_tok, root / "gpt2"),
        "bert": build_model("bert", enc_tok, root / "bert"),
        "root": root,
    }


def _ws(tmp_path, hf_models):
    return make_workspace(tmp_path / "ws", hf_models["pairs"], with_weights=False)


def _heldout_texts(hf_models, n=6):
    from katcli.train.split import split_pairs

    pairs = hf_models["pairs"]
    split = split_pairs([p["prefix_id"] for p in pairs], seed=0, val_ratio=0.2)
    return [pairs[i] for i in split.heldout[:n]]


def _kat_rewards(run_dir: Path, rows):
    """kat's rewards of (messages, reply) rows: its tokenizer adapter, its batching and padding, its model."""
    from katcli.train.rm_scoring import RewardScorer
    from katcli.train.run_dir import load_run

    loaded = load_run(run_dir, role="reward")
    rm, tok, meta = loaded.model, loaded.tokenizer, loaded.meta
    return RewardScorer.from_meta(rm, tok, meta, batch_size=4)([m for m, _ in rows], [r for _, r in rows])


@pytest.mark.parametrize("kind", ["llama", "bert"])
def test_hf_reward_model_trains_and_reloads_in_plain_transformers(tmp_path, hf_models, kind):
    ws = _ws(tmp_path, hf_models)
    res = run_train_rm(ws, TrainRMConfig(init=f"hf:{hf_models[kind]}", **COMMON))
    assert res.step == 3
    assert not any(n.startswith("trained from scratch") for n in res.notes)
    lines = [json.loads(x) for x in (res.directory / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["loss"] == pytest.approx(np.log(2), abs=0.05)  # a small seeded head: rewards start near 0
    assert (res.directory / "model.safetensors").is_file() and (res.directory / "config.json").is_file()
    rec = Manifest.load(ws.manifest_path).runs["rm/uniform"]
    weights = str(Path(hf_models[kind]) / "model.safetensors")
    assert any(r.path == weights and r.external and r.sha256 for r in rec.inputs)
    assert rec.stats["base_model"].startswith(str(hf_models[kind]))

    # Single-turn prompts: short enough that kat's --max-len 64 trims nothing, so plain transformers sees the same
    # tokens from the raw texts.
    held = [p for p in _heldout_texts(hf_models, 12) if len(p["prefix"]["messages"]) == 1][:6]
    rows = [(p["prefix"]["messages"], p["chosen"]) for p in held] + [(p["prefix"]["messages"], p["rejected"]) for p in held]
    kat = _kat_rewards(res.directory, rows)

    # Encoders: the conversation as role: content lines, the reply as the second segment; decoders: the chat
    # template for the prompt, the reply, then the end-of-turn token (hfkit.plain_rewards).
    plain = plain_rewards(res.directory, rows, encoder=kind == "bert")
    np.testing.assert_allclose(kat, plain, atol=TOL, rtol=0)


def _plain_logprobs(model, ids):
    logits = model(input_ids=ids).logits.float()
    lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return torch.cat([torch.zeros(ids.shape[0], 1), lp], 1)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_hf_sft_policy_trains_and_reloads_in_plain_transformers(tmp_path, hf_models, kind):
    from transformers import AutoModelForCausalLM

    from katcli.model.logprobs import token_logprobs
    from katcli.train.run_dir import load_run

    ws = _ws(tmp_path, hf_models)
    res = run_train_sft(ws, TrainSFTConfig(init=f"hf:{hf_models[kind]}", **COMMON))
    assert res.eval is not None and np.isfinite(res.eval.overall.mean)
    loaded = load_run(res.directory)
    policy, tok = loaded.model, loaded.tokenizer
    plain = AutoModelForCausalLM.from_pretrained(str(res.directory)).eval()
    held = _heldout_texts(hf_models, 3)
    with torch.no_grad():
        for p in held:
            ids = torch.tensor([tok.render_for_completion(p["prefix"]["messages"]) + tok.encode_batch([p["chosen"]])[0]
                                + [tok.end_id]])
            kat = token_logprobs(policy, ids)
            assert torch.allclose(kat, _plain_logprobs(plain, ids), atol=TOL)


def test_hf_sft_resume_continues_exactly(tmp_path, hf_models):
    ws = _ws(tmp_path, hf_models)
    init = f"hf:{hf_models['llama']}"
    full = run_train_sft(ws, TrainSFTConfig(name="full", init=init, **{**COMMON, "max_steps": 4}))
    part = dict(COMMON, max_steps=4, save_every=2)
    import katcli.train.loop as loop_mod

    class Stop(Exception):
        pass

    real_save = loop_mod.TrainingLoop._save

    def save_then_stop(self, step, report):
        files = real_save(self, step, report)
        if step == 2:
            raise KeyboardInterrupt
        return files

    loop_mod.TrainingLoop._save = save_then_stop
    try:
        with pytest.raises(KatError):
            run_train_sft(ws, TrainSFTConfig(name="part", init=init, **part))
    finally:
        loop_mod.TrainingLoop._save = real_save
    resumed = run_train_sft(ws, TrainSFTConfig(name="part", init=init, resume=True, **part))
    assert resumed.resumed_from == 2 and resumed.step == 4
    a = (full.directory / "model.safetensors").read_bytes()
    b = (resumed.directory / "model.safetensors").read_bytes()
    assert a == b


def test_bad_hf_inits_are_clear_errors(tmp_path, hf_models):
    import shutil

    ws = _ws(tmp_path, hf_models)
    root = hf_models["root"]
    with pytest.raises(KatError) as err:  # an encoder is no causal LM
        run_train_sft(ws, TrainSFTConfig(init=f"hf:{hf_models['bert']}", **COMMON))
    assert "bert encoder cannot be a policy" in err.value.message

    no_tpl = tmp_path / "no_template"
    shutil.copytree(hf_models["llama"], no_tpl)
    cfg = json.loads((no_tpl / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (no_tpl / "tokenizer_config.json").write_text(json.dumps(cfg))
    (no_tpl / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(KatError) as err:
        run_train_sft(ws, TrainSFTConfig(init=f"hf:{no_tpl}", **COMMON))
    assert "no chat template" in err.value.message and "--chat-template FILE" in err.value.hint
    tpl = tmp_path / "chat.jinja"
    tpl.write_text((root / "llama" / "chat_template.jinja").read_text() if (root / "llama" / "chat_template.jinja").is_file()
                   else json.loads((root / "llama" / "tokenizer_config.json").read_text())["chat_template"])
    ok = run_train_sft(ws, TrainSFTConfig(name="tpl", init=f"hf:{no_tpl}", chat_template=str(tpl), **COMMON))
    assert ok.step == 3

    remote = tmp_path / "remote"
    shutil.copytree(hf_models["llama"], remote)
    cfg = json.loads((remote / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}
    (remote / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(KatError) as err:
        run_train_sft(ws, TrainSFTConfig(init=f"hf:{remote}", **COMMON))
    assert "needs its own Python code" in err.value.message and "--trust-remote-code" in err.value.hint

    pickled = tmp_path / "pickled"
    shutil.copytree(hf_models["llama"], pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    with pytest.raises(KatError) as err:
        run_train_sft(ws, TrainSFTConfig(init=f"hf:{pickled}", **COMMON))
    assert "safetensors only" in err.value.message

    run_train_rm(ws, TrainRMConfig(name="rm-llama", init=f"hf:{hf_models['llama']}", **COMMON))
    with pytest.raises(KatError) as err:  # a reward model's head is no language-model head
        run_train_sft(ws, TrainSFTConfig(init="rm/rm-llama", **COMMON))
    assert err.value.message.startswith("an HF reward model cannot be a policy's starting model")

    with pytest.raises(KatError) as err:  # offline, not cached: say where we looked and how to fetch
        run_train_sft(ws, TrainSFTConfig(init="hf:nobody/no-such-model", **COMMON))
    assert "not in the Hugging Face cache" in err.value.message and "HF_HUB_OFFLINE" in err.value.message
    assert "hf download nobody/no-such-model" in err.value.hint


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_hf_sampling_with_transformers_cache_matches_recomputation_and_teacher_forcing(hf_models, kind):
    """Left-padded prompts of different lengths: the cached decode, the full recompute and the training forward
    give the same tokens and log-probs (positions and masks agree)."""
    from katcli.model.engine import Engine, SamplingConfig
    from katcli.model.hf import HFSource, load_tokenizer
    from katcli.model.hf_models import load_policy
    from katcli.train.rollout import Rollout, rollout_logprobs

    d = Path(hf_models[kind])
    tok = load_tokenizer(d, encoder=False, chat_template=None, trust_remote_code=False)
    policy = load_policy(d, HFSource("t", "local", str(d)), seed=0).eval()
    prompts = [tok.render_for_completion(p["prefix"]["messages"]) for p in hf_models["pairs"][:5]]
    assert len({len(p) for p in prompts}) > 1
    cfg = SamplingConfig(max_new_tokens=6, temperature=1.0, num_samples=2)
    engine = Engine(policy, tok)
    cached = engine.generate(prompts, cfg, row_seeds=list(range(10)))
    plain = engine.generate(prompts, cfg, row_seeds=list(range(10)), use_kv_cache=False)
    assert torch.equal(cached.tokens, plain.tokens)
    assert torch.allclose(cached.logprobs, plain.logprobs, atol=TOL)
    roll = Rollout.from_generation(prompts, cached)
    with torch.no_grad():
        forced = rollout_logprobs(policy, roll)
    assert torch.allclose(forced, roll.old_logp * roll.mask, atol=TOL)


def test_hf_grpo_trains_with_an_hf_reward_model_and_reloads(tmp_path, hf_models):
    from transformers import AutoModelForCausalLM

    from katcli.model.logprobs import token_logprobs
    from katcli.pipeline.train_grpo import run_train_grpo, tiny_grpo_config
    from katcli.train.run_dir import load_run

    ws = _ws(tmp_path, hf_models)
    run_train_rm(ws, TrainRMConfig(init=f"hf:{hf_models['bert']}", **COMMON))
    res = run_train_grpo(ws, tiny_grpo_config(
        init=f"hf:{hf_models['llama']}", rm="uniform", max_steps=2, batch_size=2, group_size=4, max_new_tokens=5,
        beta=0.1, eval_prompts=4, lr=1e-3,
    ))
    assert res.step == 2
    lines = [json.loads(x) for x in (res.directory / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # the reference is the starting model
    loaded = load_run(res.directory)
    policy, tok = loaded.model, loaded.tokenizer
    plain = AutoModelForCausalLM.from_pretrained(str(res.directory)).eval()
    ids = torch.tensor([tok.render_for_completion(hf_models["pairs"][0]["prefix"]["messages"])])
    with torch.no_grad():
        assert torch.allclose(token_logprobs(policy, ids), _plain_logprobs(plain, ids), atol=TOL)


@pytest.mark.slow
def test_fsdp_grpo_on_an_hf_policy_samples_and_steps_like_one_process(tmp_path, hf_models):
    """Rollouts through transformers' cache on the gathered Llama, the sharded update, `save_pretrained` of the
    gathered weights: step for step what one process computes."""
    from torchrunkit import torchrun
    from transformers import AutoModelForCausalLM

    from katcli.pipeline.train_grpo import run_train_grpo, tiny_grpo_config

    ws = _ws(tmp_path, hf_models)
    run_train_rm(ws, TrainRMConfig(init=f"hf:{hf_models['bert']}", **COMMON))
    torchrun(ws, "train", "grpo", "--name", "fsdp", "--rm", "uniform", "--init", f"hf:{hf_models['llama']}",
             "--max-steps", "2", "--prompts-per-step", "4", "--group-size", "4", "--max-new-tokens", "5",
             "--max-len", "64", "--val-ratio", "0.2", "--scale-rewards", "batch", "--beta", "0.1", "--lr", "1e-3",
             "--eval-prompts", "4", "--device", "cpu", "--eval-every", "0", "--save-every", "0", "--fsdp")
    single = run_train_grpo(ws, tiny_grpo_config(
        name="single", init=f"hf:{hf_models['llama']}", rm="uniform", max_steps=2, batch_size=4, group_size=4,
        max_new_tokens=5, scale_rewards="batch", beta=0.1, eval_prompts=4, lr=1e-3, warmup_steps=None, threads=None,
    ))
    two = [json.loads(x) for x in ws.abs("grpo_checkpoints/fsdp/metrics.jsonl").read_text().splitlines()]
    one = [json.loads(x) for x in (single.directory / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(one, two, strict=True):
        for key in ("reward", "loss", "grad_norm", "kl", "completions/mean_length"):
            if key in a:
                assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    plain = AutoModelForCausalLM.from_pretrained(str(ws.abs("grpo_checkpoints/fsdp"))).state_dict()
    for name, p in AutoModelForCausalLM.from_pretrained(str(single.directory)).state_dict().items():
        assert torch.allclose(plain[name], p, atol=1e-5), name


def test_hf_dpo_trains_reloads_and_evaluates_beside_an_hf_reward_model(tmp_path, hf_models):
    from transformers import AutoModelForCausalLM

    from katcli.model.logprobs import token_logprobs
    from katcli.pipeline.eval_rm import run_eval_rm
    from katcli.pipeline.train_dpo import run_train_dpo, tiny_dpo_config
    from katcli.train.run_dir import load_run

    ws = _ws(tmp_path, hf_models)
    rm = run_train_rm(ws, TrainRMConfig(init=f"hf:{hf_models['llama']}", **COMMON))
    dpo = run_train_dpo(ws, tiny_dpo_config(init=f"hf:{hf_models['gpt2']}", **COMMON))
    assert dpo.step == 3
    lines = [json.loads(x) for x in (dpo.directory / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["loss"] == pytest.approx(np.log(2), abs=1e-5)  # policy = reference at the first step
    loaded = load_run(dpo.directory)
    policy, tok = loaded.model, loaded.tokenizer
    plain = AutoModelForCausalLM.from_pretrained(str(dpo.directory)).eval()
    ids = torch.tensor([tok.render_for_completion(hf_models["pairs"][1]["prefix"]["messages"])])
    with torch.no_grad():
        assert torch.allclose(token_logprobs(policy, ids), _plain_logprobs(plain, ids), atol=TOL)
    # Both kinds of HF run evaluate on the same held-out pairs; the RM's accuracy is the one training reported.
    ev = run_eval_rm(ws, ["rm/uniform", "dpo/uniform"], device="cpu", threads=1)
    by = {m.name: m.report for m in ev.models}
    assert by["rm/uniform"].overall.n == rm.eval.overall.n
    assert by["rm/uniform"].to_json()["overall"] == rm.eval.to_json()["overall"]
    assert by["dpo/uniform"].overall.n == rm.eval.overall.n


def test_an_hf_sft_run_is_a_dpo_reference_and_a_policy_for_eval_policy(tmp_path, hf_models):
    import evalkit

    from katcli.pipeline.eval_policy import EvalPolicyConfig, run_eval_policy
    from katcli.pipeline.train_dpo import run_train_dpo, tiny_dpo_config

    ws = _ws(tmp_path, hf_models)
    run_train_rm(ws, TrainRMConfig(name="judge", init=f"hf:{hf_models['bert']}", **COMMON))
    run_train_sft(ws, TrainSFTConfig(init=f"hf:{hf_models['llama']}", **COMMON))
    dpo = run_train_dpo(ws, tiny_dpo_config(init="sft/uniform", ref="sft/uniform", **COMMON))
    meta = json.loads(next(dpo.directory.glob("meta_*.json")).read_text())
    assert meta["reference"]["is_init"] is True
    import shutil

    other = tmp_path / "other_template"  # the GPT-2 model with another chat template: another tokenizer
    shutil.copytree(hf_models["gpt2"], other)
    (other / "chat_template.jinja").write_text("{% for m in messages %}{{ m['content'] }}<|im_end|>{% endfor %}")
    run_train_sft(ws, TrainSFTConfig(name="gpt2", init=f"hf:{other}", **COMMON))
    with pytest.raises(KatError) as err:
        run_train_dpo(ws, tiny_dpo_config(name="x", init="sft/uniform", ref="sft/gpt2", **COMMON))
    assert "tokenizer" in err.value.message and err.value.hint
    base = f"hf:{hf_models['llama']}"  # the base model as it is, before any kat run
    cfg = EvalPolicyConfig(policies=(base, "sft/uniform", "dpo/uniform"), rms=("judge",), prompts=4, samples=2,
                           max_new_tokens=6, device="cpu", threads=1)
    data = run_eval_policy(ws, cfg, embedder=evalkit.bag_of_words_embedder()).data
    assert set(data["results"]) == {base, "sft/uniform", "dpo/uniform"}
    assert data["policies"][0]["kind"] == "hf" and data["policies"][0]["meta_kind"] == "hf-model"


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["ddp", "fsdp"])
def test_torchrun_two_processes_train_an_hf_reward_model_like_one(tmp_path, hf_models, layout):
    """DDP, and FSDP sharding the decoder layers: one process's step; the saved model is an ordinary one."""
    from torchrunkit import torchrun
    from transformers import AutoModelForSequenceClassification

    ws = _ws(tmp_path, hf_models)
    flags = ["--max-steps", "2", "--batch-size", "8", "--max-len", "64", "--val-ratio", "0.2", "--eval-every", "0",
             "--save-every", "0", "--lr", "1e-3", "--device", "cpu"]
    proc = torchrun(ws, "train", "rm", "--name", layout, "--init", f"hf:{hf_models['llama']}", *flags,
                    *(["--fsdp"] if layout == "fsdp" else []))
    assert proc.stdout.count("Trained 2 steps on cpu × 2" + (" (FSDP)" if layout == "fsdp" else "") + ":") == 1
    assert "returned a view tensor" not in proc.stderr  # FSDP's warning about views is kat's to silence
    run_dir = ws.abs(f"rm_checkpoints/{layout}")
    assert {"model.safetensors", "config.json", "tokenizer.json", "model_000002.pt"} <= {p.name for p in run_dir.iterdir()}
    single = run_train_rm(ws, TrainRMConfig(name="single", init=f"hf:{hf_models['llama']}", **{**COMMON, "max_steps": 2}))
    two = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"type"' not in x]
    one = [json.loads(x) for x in (single.directory / "metrics.jsonl").read_text().splitlines() if '"type"' not in x]
    for a, b in zip(one, two, strict=True):  # the same global batch: the same loss and gradient norm
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-6)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    # The exported model is whole (not one rank's shard) and scores as kat scores it, in plain transformers.
    plain = AutoModelForSequenceClassification.from_pretrained(str(run_dir)).eval()
    reference = AutoModelForSequenceClassification.from_pretrained(str(single.directory)).eval()
    for name, p in reference.state_dict().items():
        assert torch.allclose(plain.state_dict()[name], p, atol=1e-5), name
    rows = [(p["prefix"]["messages"], p["chosen"]) for p in _heldout_texts(hf_models, 4)]
    assert np.allclose(_kat_rewards(run_dir, rows), _kat_rewards(single.directory, rows), atol=1e-5)


def test_gradient_checkpointing_changes_memory_not_the_step(tmp_path, hf_models):
    ws = _ws(tmp_path, hf_models)
    init = f"hf:{hf_models['llama']}"
    plain = run_train_sft(ws, TrainSFTConfig(name="plain", init=init, **{**COMMON, "max_steps": 2}))
    ckpt = run_train_sft(ws, TrainSFTConfig(name="ckpt", init=init, gradient_checkpointing=True,
                                            **{**COMMON, "max_steps": 2}))
    a = [json.loads(x) for x in (plain.directory / "metrics.jsonl").read_text().splitlines() if '"type"' not in x]
    b = [json.loads(x) for x in (ckpt.directory / "metrics.jsonl").read_text().splitlines() if '"type"' not in x]
    for x, y in zip(a, b):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-5) and x["grad_norm"] == pytest.approx(y["grad_norm"], rel=1e-4)
    gpt = run_train_sft(ws, TrainSFTConfig(name="gpt", depth=1, gradient_checkpointing=True, **{**COMMON, "max_steps": 1}))
    assert "--gradient-checkpointing only apply to Hugging Face backbones (--init hf:…): ignored for kat's GPT" in gpt.notes


def test_a_model_class_that_is_neither_a_causal_lm_nor_a_classifier_is_refused(tmp_path, hf_models):
    import shutil

    from transformers import ViTConfig, ViTModel

    vit = tmp_path / "vit"
    ViTModel(ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                       image_size=8, patch_size=4)).save_pretrained(str(vit))
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (Path(hf_models["llama"]) / name).is_file():
            shutil.copy(Path(hf_models["llama"]) / name, vit / name)
    ws = _ws(tmp_path, hf_models)
    with pytest.raises(KatError) as err:
        run_train_sft(ws, TrainSFTConfig(init=f"hf:{vit}", **COMMON))
    assert err.value.message.startswith("this model cannot be a policy (causal LM): Unrecognized configuration class")
    with pytest.raises(KatError) as err:
        run_train_rm(ws, TrainRMConfig(init=f"hf:{vit}", **COMMON))
    assert err.value.message.startswith("this model cannot be a reward model (sequence classifier)")
