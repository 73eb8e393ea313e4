"""LoRA adapters (`--lora-r`) on a tiny Llama built from a config: planted directions, reloads, chains, export.

The planted tests mirror the full fine-tune ones (rmkit's "please"/"maybe" pairs and SFT template): each objective
learns its planted direction with adapters only, and does not when the sign is flipped. The reload tests hold kat
to plain `peft` + `transformers`: `PeftModel.from_pretrained(base, run_dir)` gives kat's log-probs / rewards to
1e-5, and `kat export --merge` gives the adapter model's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hfkit import build_model, train_tokenizer
from rmkit import TEMPLATE, make_workspace, planted_pairs, templated_pairs

from katcli.errors import ConfigError, KatError
from katcli.pipeline.train_dpo import run_train_dpo, tiny_dpo_config
from katcli.pipeline.train_rm import TrainRMConfig, run_train_rm
from katcli.pipeline.train_sft import TrainSFTConfig, run_train_sft

TOL = 1e-5
FAST = dict(max_steps=3, batch_size=8, max_len=64, val_ratio=0.2, eval_every=0, save_every=0, device="cpu",
            threads=1, lr=1e-2, lora_r=4)
PLANTED = dict(max_steps=30, batch_size=16, max_len=64, val_ratio=0.2, eval_every=0, save_every=0, device="cpu",
               threads=1, lr=1e-2, lora_r=8)


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("lora")
    pairs = planted_pairs(160)
    tok = train_tokenizer(pairs + templated_pairs(20), encoder=False)
    enc_tok = train_tokenizer(pairs, encoder=True)
    return {"root": root, "pairs": pairs, "llama": build_model("llama", tok, root / "llama"),
            "bert": build_model("bert", enc_tok, root / "bert")}


def _ws(tmp_path, pairs):
    return make_workspace(tmp_path / "ws", pairs, with_weights=False)


def _ids(tok, pair):
    return torch.tensor([tok.render_for_completion(pair["prefix"]["messages"]) + tok.encode_batch([pair["chosen"]])[0]
                         + [tok.end_id]])


def _plain_logprobs(model, ids):
    lp = torch.log_softmax(model(input_ids=ids).logits.float()[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return torch.cat([torch.zeros(ids.shape[0], 1), lp], 1)


# ---------------------------------------------------------------------------------------------------- planted


def _flipped(pairs):
    return [{**p, "chosen": p["rejected"], "rejected": p["chosen"]} for p in pairs]


@pytest.mark.slow
def test_lora_reward_model_learns_the_planted_signal_and_not_its_flip(tmp_path, llama):
    up = run_train_rm(_ws(tmp_path / "up", llama["pairs"]), TrainRMConfig(init=f"hf:{llama['llama']}", **PLANTED))
    assert up.eval.to_json()["overall"]["accuracy"] >= 0.9
    down = run_train_rm(_ws(tmp_path / "down", _flipped(llama["pairs"])),
                        TrainRMConfig(init=f"hf:{llama['llama']}", **PLANTED))
    assert down.eval.to_json()["overall"]["accuracy"] >= 0.9  # it learned its labels: "maybe" over "please"
    from katcli.train.rm_scoring import RewardScorer
    from katcli.train.run_dir import load_run

    rows = [p for p in llama["pairs"][:40]]
    for res, sign in ((up, 1), (down, -1)):
        loaded = load_run(res.directory, role="reward")
        score = RewardScorer.from_meta(loaded.model, loaded.tokenizer, loaded.meta, batch_size=8)
        msgs = [p["prefix"]["messages"] for p in rows]
        margin = score(msgs, [p["chosen"] for p in rows]) - score(msgs, [p["rejected"] for p in rows])
        assert sign * float(np.mean(margin > 0)) >= (0.9 if sign == 1 else 0.0) and \
            (float(np.mean(margin > 0)) <= 0.1 if sign == -1 else True)


@pytest.mark.slow
def test_lora_dpo_learns_the_planted_preference_random_labels_do_not_and_flipped_go_the_other_way(tmp_path, llama):
    cfg = dict(PLANTED, beta=0.5)
    up = run_train_dpo(_ws(tmp_path / "up", llama["pairs"]), tiny_dpo_config(init=f"hf:{llama['llama']}", **cfg))
    assert up.eval.to_json()["overall"]["accuracy"] >= 0.9
    lines = [json.loads(x) for x in (up.directory / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["loss"] == pytest.approx(np.log(2), abs=1e-6)  # adapters start at zero: policy = reference
    noise = run_train_dpo(_ws(tmp_path / "noise", planted_pairs(160, random_labels=True)),
                          tiny_dpo_config(init=f"hf:{llama['llama']}", **cfg))
    assert 0.3 <= noise.eval.to_json()["overall"]["accuracy"] <= 0.7
    # Flipped labels: the implicit reward now prefers "maybe", so on the true labels it is wrong.
    down = run_train_dpo(_ws(tmp_path / "down", _flipped(llama["pairs"])),
                         tiny_dpo_config(init=f"hf:{llama['llama']}", **cfg))
    assert 1.0 - down.eval.to_json()["overall"]["accuracy"] <= 0.1


def _greedy_replies(run_dir, pairs, n=6):
    from katcli.model.engine import Engine
    from katcli.train.run_dir import load_run
    from katcli.train.split import split_pairs

    loaded = load_run(run_dir)
    split = split_pairs([p["prefix_id"] for p in pairs], seed=0, val_ratio=0.2)
    held = [pairs[i] for i in split.heldout[:n]]
    prompts = [loaded.tokenizer.render_for_completion(p["prefix"]["messages"]) for p in held]
    gen = Engine(loaded.model, loaded.tokenizer).generate(prompts, max_new_tokens=8, temperature=0.0, seed=0)
    return [loaded.tokenizer.decode(gen.completion(i)) for i in range(len(held))]


@pytest.mark.slow
def test_lora_sft_follows_the_planted_template_and_not_with_the_sign_flipped(tmp_path, llama, monkeypatch):
    import katcli.train.objectives.sft as S

    pairs = templated_pairs(160)
    ws = _ws(tmp_path, pairs)
    up = run_train_sft(ws, TrainSFTConfig(name="up", init=f"hf:{llama['llama']}", **PLANTED))
    assert _greedy_replies(up.directory, pairs) == [TEMPLATE] * 6
    real = S.SFTObjective.loss
    monkeypatch.setattr(S.SFTObjective, "loss", lambda self, model, mb, pass_index: (
        lambda out: (-out[0], out[1]))(real(self, model, mb, pass_index=pass_index)))
    down = run_train_sft(ws, TrainSFTConfig(name="down", init=f"hf:{llama['llama']}", **PLANTED))
    assert TEMPLATE not in _greedy_replies(down.directory, pairs)
    assert down.eval.overall.mean > up.eval.overall.mean + 1.0


@pytest.mark.slow
def test_lora_grpo_raises_the_planted_reward_and_its_negation_lowers_it(tmp_path, llama, monkeypatch):
    import katcli.train.objectives.grpo as G
    from katcli.pipeline.train_grpo import run_train_grpo, tiny_grpo_config

    ws = _ws(tmp_path, llama["pairs"])
    run_train_rm(ws, TrainRMConfig(name="judge", init=f"hf:{llama['llama']}", **PLANTED))
    grpo = dict(init=f"hf:{llama['llama']}", rm="judge", lora_r=8, max_steps=20, lr=1e-2, beta=0.04)
    up = run_train_grpo(ws, tiny_grpo_config(name="up", **grpo))
    real = G.rollout_rewards
    monkeypatch.setattr(G, "rollout_rewards", lambda scorer, p, r: -real(scorer, p, r))
    down = run_train_grpo(ws, tiny_grpo_config(name="down", **grpo))

    def train_rewards(res, sign):
        rows = [json.loads(x) for x in (res.directory / "metrics.jsonl").read_text().splitlines()]
        return [sign * x["reward"] for x in rows if "type" not in x]

    up_r, down_r = train_rewards(up, 1), train_rewards(down, -1)  # the judge's own rewards, not the negated ones
    assert np.mean(up_r[-5:]) > np.mean(up_r[:5]) and np.mean(down_r[-5:]) < np.mean(down_r[:5])
    # The held-out evaluation scores with the real judge in both runs.
    assert up.eval.overall.sampled_sum / up.eval.overall.samples > \
        down.eval.overall.sampled_sum / down.eval.overall.samples + 0.2
    meta = json.loads(next(up.directory.glob("meta_*.json")).read_text())
    assert meta["reference"]["adapters_disabled"] is True


# ---------------------------------------------------------------------------------------------------- reloads


def test_a_lora_sft_run_reloads_in_plain_peft_and_its_merged_export_matches(tmp_path, llama):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from katcli.model.logprobs import token_logprobs
    from katcli.pipeline.export import run_export_merged
    from katcli.train.run_dir import load_run

    ws = _ws(tmp_path, llama["pairs"][:40])
    res = run_train_sft(ws, TrainSFTConfig(init=f"hf:{llama['llama']}", **FAST))
    names = {p.name for p in res.directory.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "model_000003.pt"} <= names
    assert "model.safetensors" not in names and "config.json" not in names  # the base is never rewritten
    adapter_cfg = json.loads((res.directory / "adapter_config.json").read_text())
    assert adapter_cfg["r"] == 4 and adapter_cfg["base_model_name_or_path"] == str(Path(llama["llama"]).resolve())
    meta = json.loads(next(res.directory.glob("meta_*.json")).read_text())
    assert meta["lora"]["targets"] == sorted(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                              "down_proj"])  # all-linear: attention and MLP, not the head
    assert meta["config"]["lora_r"] == 4 and meta["config"]["lora_alpha"] == 8.0

    loaded = load_run(res.directory)
    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(llama["llama"])),
                                      str(res.directory)).eval()
    out = tmp_path / "merged"
    run_export_merged(ws, "sft/uniform", out)
    merged = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    assert AutoTokenizer.from_pretrained(str(out)).chat_template  # the chat template travels
    moved = 0.0
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(str(llama["llama"])).eval()
        for p in llama["pairs"][:3]:
            ids = _ids(loaded.tokenizer, p)
            kat = token_logprobs(loaded.model, ids)
            assert torch.allclose(kat, _plain_logprobs(plain, ids), atol=TOL)
            assert torch.allclose(kat, _plain_logprobs(merged, ids), atol=TOL)
            moved = max(moved, float((kat - _plain_logprobs(base, ids)).abs().max()))
    assert moved > 1e-3  # the adapters changed something
    with pytest.raises(KatError) as err:
        run_export_merged(ws, "sft/uniform", out)
    assert err.value.message == "the export directory exists and is not empty"


def test_a_lora_reward_model_trains_its_head_in_full_and_reloads_in_plain_peft(tmp_path, llama):
    from hfkit import plain_rewards
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from katcli.pipeline.export import run_export_merged
    from katcli.train.rm_scoring import RewardScorer
    from katcli.train.run_dir import load_run

    ws = _ws(tmp_path, llama["pairs"][:40])
    res = run_train_rm(ws, TrainRMConfig(init=f"hf:{llama['llama']}", **FAST))
    state = torch.load(next(res.directory.glob("model_*.pt")), weights_only=True)
    assert any("score.modules_to_save" in k for k in state)  # the value head, trained in full
    assert all("lora_" in k or "modules_to_save" in k for k in state)
    loaded = load_run(res.directory, role="reward")
    rows = [(p["prefix"]["messages"], p["chosen"]) for p in llama["pairs"][:6] if len(p["prefix"]["messages"]) == 1]
    kat = RewardScorer.from_meta(loaded.model, loaded.tokenizer, loaded.meta, batch_size=4)(
        [m for m, _ in rows], [r for _, r in rows])
    base = AutoModelForSequenceClassification.from_pretrained(str(llama["llama"]), num_labels=1,
                                                              pad_token_id=loaded.tokenizer.pad_token_id)
    plain = PeftModel.from_pretrained(base, str(res.directory)).eval()
    tok = loaded.tokenizer.tok
    with torch.no_grad():
        for (messages, reply), r in zip(rows, kat):
            prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            enc = tok(prompt + reply + "<|im_end|>", add_special_tokens=False, return_tensors="pt")
            assert plain(**enc).logits[0, 0].item() == pytest.approx(float(r), abs=TOL)
    out = tmp_path / "merged-rm"
    run_export_merged(ws, "rm/uniform", out)
    assert np.allclose(plain_rewards(out, rows, encoder=False), kat, atol=TOL)


def test_an_sft_lora_run_as_dpo_init_is_merged_and_is_the_reference(tmp_path, llama):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from katcli.model.logprobs import token_logprobs
    from katcli.pipeline.export import run_export_merged
    from katcli.train.run_dir import load_run

    ws = _ws(tmp_path, llama["pairs"][:40])
    sft = run_train_sft(ws, TrainSFTConfig(init=f"hf:{llama['llama']}", **FAST))
    dpo = run_train_dpo(ws, tiny_dpo_config(init="sft/uniform", **FAST))
    lines = [json.loads(x) for x in (dpo.directory / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["loss"] == pytest.approx(np.log(2), abs=1e-6)  # the reference is the SFT policy
    meta = json.loads(next(dpo.directory.glob("meta_*.json")).read_text())
    assert meta["lora"]["base"]["dir"] == str(Path(llama["llama"]).resolve()) and meta["lora"]["base_adapters"] == 1
    assert meta["init"]["hf"]["location"] == str(Path(llama["llama"]).resolve())  # status shows the real base
    # The cached reference log-probs are the SFT policy's (base + SFT adapters), computed apart from kat's DPO.
    from katcli.train.ref_cache import RefCacheKey, load_ref_logps

    cached = load_ref_logps(dpo.directory, RefCacheKey(**meta["ref_cache"]["key"])).logps
    sft_policy = load_run(sft.directory)
    assert cached is not None
    # Plain peft: base + the SFT adapter merged, then the DPO adapter on top.
    base = AutoModelForCausalLM.from_pretrained(str(llama["llama"]))
    merged = PeftModel.from_pretrained(base, str(dpo.directory / "base_adapters" / "00")).merge_and_unload()
    plain = PeftModel.from_pretrained(merged, str(dpo.directory)).eval()
    policy = load_run(dpo.directory)
    out = tmp_path / "merged-dpo"
    run_export_merged(ws, "dpo/uniform", out)
    exported = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    with torch.no_grad():
        for p in llama["pairs"][:3]:
            ids = _ids(policy.tokenizer, p)
            kat = token_logprobs(policy.model, ids)
            assert torch.allclose(kat, _plain_logprobs(plain, ids), atol=TOL)
            assert torch.allclose(kat, _plain_logprobs(exported, ids), atol=TOL)
            assert not torch.allclose(kat, token_logprobs(sft_policy.model, ids), atol=1e-4)  # DPO moved it


def test_an_adapter_run_whose_base_changed_is_refused(tmp_path, llama):
    base = tmp_path / "base"
    shutil.copytree(llama["llama"], base)
    ws = _ws(tmp_path, llama["pairs"][:40])
    run_train_sft(ws, TrainSFTConfig(init=f"hf:{base}", **FAST))
    from safetensors.torch import load_file, save_file

    weights = load_file(str(base / "model.safetensors"))
    first = sorted(weights)[0]
    weights[first] = weights[first] + 1.0
    save_file(weights, str(base / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(KatError) as err:
        run_train_dpo(ws, tiny_dpo_config(init="sft/uniform", **FAST))
    assert err.value.message.startswith("--init: the LoRA run's base model changed since it was trained")
    assert "restore that base model or retrain" in err.value.hint


def test_lora_resume_gives_identical_files(tmp_path, llama):
    import katcli.train.loop as loop_mod

    ws = _ws(tmp_path, llama["pairs"][:40])
    init = f"hf:{llama['llama']}"
    cfg = dict(FAST, max_steps=4)
    full = run_train_dpo(ws, tiny_dpo_config(name="full", init=init, **cfg))
    real_save = loop_mod.TrainingLoop._save

    def save_then_stop(self, step, report):
        files = real_save(self, step, report)
        if step == 2:
            raise KeyboardInterrupt
        return files

    loop_mod.TrainingLoop._save = save_then_stop
    try:
        with pytest.raises(KatError):
            run_train_dpo(ws, tiny_dpo_config(name="part", init=init, **dict(cfg, save_every=2)))
    finally:
        loop_mod.TrainingLoop._save = real_save
    resumed = run_train_dpo(ws, tiny_dpo_config(name="part", init=init, resume=True, **dict(cfg, save_every=2)))
    assert resumed.resumed_from == 2
    for name in ("model_000004.pt", "optim_000004.pt", "adapter_model.safetensors", "metrics.jsonl"):
        assert (full.directory / name).read_bytes() == (resumed.directory / name).read_bytes(), name


def test_density_aware_and_gradient_checkpointing_work_with_lora(tmp_path, llama):
    ws = make_workspace(tmp_path / "ws", llama["pairs"][:40])  # with density weights
    a = run_train_sft(ws, TrainSFTConfig(name="a", init=f"hf:{llama['llama']}", density_aware=True, **FAST))
    b = run_train_sft(ws, TrainSFTConfig(name="b", init=f"hf:{llama['llama']}", density_aware=True,
                                         gradient_checkpointing=True, **FAST))
    la = [json.loads(x) for x in (a.directory / "metrics.jsonl").read_text().splitlines() if '"type"' not in x]
    lb = [json.loads(x) for x in (b.directory / "metrics.jsonl").read_text().splitlines() if '"type"' not in x]
    for x, y in zip(la, lb, strict=True):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-5)
        assert x["grad_norm"] == pytest.approx(y["grad_norm"], rel=1e-4)
    assert a.weighting == "per-prompt"


# ---------------------------------------------------------------------------------------------------- refusals


def test_bad_lora_input_is_an_error_naming_the_flag(tmp_path, llama):
    ws = _ws(tmp_path, llama["pairs"][:40])
    with pytest.raises(ConfigError) as err:
        TrainSFTConfig(init=f"hf:{llama['llama']}", **{**FAST, "lora_r": -1})
    assert err.value.message == "--lora-r must be 0 (off) or more"
    with pytest.raises(ConfigError) as err:
        TrainSFTConfig(lora_alpha=16)
    assert err.value.message == "--lora-alpha only apply with --lora-r"
    with pytest.raises(ConfigError) as err:
        TrainSFTConfig(lora_r=8, fsdp=True)
    assert err.value.message.startswith("--fsdp with --lora-r is not supported")
    with pytest.raises(ConfigError) as err:  # kat's own GPT
        run_train_sft(ws, TrainSFTConfig(depth=1, **FAST))
    assert err.value.message.startswith("--lora-r: LoRA adapters are for Hugging Face backbones")
    with pytest.raises(ConfigError) as err:
        run_train_sft(ws, TrainSFTConfig(init=f"hf:{llama['llama']}", lora_targets="attn_q,attn_v", **FAST))
    assert err.value.message.startswith("--lora-targets: no module of this llama model matches attn_q, attn_v")
    assert "q_proj" in err.value.hint and "all-linear" in err.value.hint
    with pytest.raises(ConfigError) as err:
        run_train_sft(ws, TrainSFTConfig(init=f"hf:{llama['bert']}", **FAST))
    assert err.value.message == "--lora-r: adapters on an encoder policy: a bert encoder cannot be a policy"
    ok = run_train_rm(ws, TrainRMConfig(init=f"hf:{llama['bert']}", **FAST))  # an encoder reward model is fine
    assert ok.step == 3


def test_default_flags_record_no_lora_keys():
    params = TrainSFTConfig().params()
    assert not any(k.startswith("lora") for k in params)


def test_eval_rm_and_eval_policy_take_lora_runs_as_they_are(tmp_path, llama):
    import evalkit

    from katcli.pipeline.eval_policy import EvalPolicyConfig, run_eval_policy
    from katcli.pipeline.eval_rm import run_eval_rm

    ws = _ws(tmp_path, llama["pairs"][:40])
    rm = run_train_rm(ws, TrainRMConfig(name="judge", init=f"hf:{llama['llama']}", **FAST))
    run_train_sft(ws, TrainSFTConfig(init=f"hf:{llama['llama']}", **FAST))
    run_train_dpo(ws, tiny_dpo_config(init="sft/uniform", **FAST))
    ev = run_eval_rm(ws, ["rm/judge", "dpo/uniform"], device="cpu", threads=1)
    by = {m.name: m.report for m in ev.models}
    assert by["rm/judge"].to_json()["overall"] == rm.eval.to_json()["overall"]  # the same numbers as training's
    assert by["dpo/uniform"].overall.n == rm.eval.overall.n
    cfg = EvalPolicyConfig(policies=("sft/uniform", "dpo/uniform"), rms=("judge",), prompts=3, samples=2,
                           max_new_tokens=4, device="cpu", threads=1)
    data = run_eval_policy(ws, cfg, embedder=evalkit.bag_of_words_embedder()).data
    assert set(data["results"]) == {"sft/uniform", "dpo/uniform"}


@pytest.mark.slow
def test_torchrun_two_processes_train_lora_adapters_like_one(tmp_path, llama):
    """DDP with a frozen base: only the adapters (and the reward head) carry gradients to all-reduce; the step is
    one process's."""
    from torchrunkit import torchrun

    ws = _ws(tmp_path, llama["pairs"][:40])
    torchrun(ws, "train", "rm", "--name", "ddp", "--init", f"hf:{llama['llama']}", "--lora-r", "4", "--max-steps",
             "2", "--batch-size", "8", "--max-len", "64", "--val-ratio", "0.2", "--eval-every", "0", "--save-every",
             "0", "--lr", "1e-2", "--device", "cpu")
    single = run_train_rm(ws, TrainRMConfig(name="single", init=f"hf:{llama['llama']}", **{**FAST, "max_steps": 2}))
    two = [json.loads(x) for x in ws.abs("rm_checkpoints/ddp/metrics.jsonl").read_text().splitlines() if '"type"' not in x]
    one = [json.loads(x) for x in (single.directory / "metrics.jsonl").read_text().splitlines() if '"type"' not in x]
    for a, b in zip(one, two, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-6)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    sa = torch.load(next(single.directory.glob("model_*.pt")), weights_only=True)
    sb = torch.load(next(ws.abs("rm_checkpoints/ddp").glob("model_*.pt")), weights_only=True)
    assert set(sa) == set(sb)  # adapters and head only, on both
    # lora_A's first gradient is exactly zero (lora_B starts at zero), so Adam turns all-reduce rounding there into
    # lr-sized steps: compare the models by what they compute, not weight by weight.
    from katcli.train.rm_scoring import RewardScorer
    from katcli.train.run_dir import load_run

    rows = llama["pairs"][:8]
    scores = []
    for d in (single.directory, ws.abs("rm_checkpoints/ddp")):
        loaded = load_run(d, role="reward")
        scores.append(RewardScorer.from_meta(loaded.model, loaded.tokenizer, loaded.meta, batch_size=4)(
            [p["prefix"]["messages"] for p in rows], [p["chosen"] for p in rows]))
    assert np.allclose(scores[0], scores[1], atol=1e-3)
