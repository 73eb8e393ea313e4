"""`kat train dpo` end to end on CPU: planted preferences are learned, random ones are not; cache, resume, refusals."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from modelkit import one_torch_thread  # noqa: F401  (autouse fixture: tiny models run on one thread)
from rmkit import make_tokenizer, make_workspace, planted_pairs, write_pairs

from katcli.errors import ConfigError, InterruptedRun, KatError
from katcli.pipeline.train_dpo import TrainDPOConfig, run_train_dpo, tiny_dpo_config
from katcli.pipeline.train_rm import run_train_rm, tiny_config
from katcli.pipeline.train_sft import run_train_sft, tiny_sft_config
from katcli.train.ref_cache import ARRAY_FILE, KEY_FILE
from katcli.workspace import Manifest
from katcli.workspace import paths as P

SMALL = dict(max_len=64)
SFT = dict(max_steps=30, lr=3e-3, **SMALL)
DPO = dict(max_steps=40, lr=2e-3, beta=0.5, **SMALL)


def _sft_workspace(root, pairs, **kw):
    ws = make_workspace(root, pairs, **kw)
    run_train_sft(ws, tiny_sft_config(**SFT))
    return ws


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A workspace with the SFT policy `uniform` and a DPO run `uniform` on planted preferences."""
    ws = _sft_workspace(tmp_path_factory.mktemp("dpo"), planted_pairs(160))
    result = run_train_dpo(ws, tiny_dpo_config(eval_every=10, **DPO))
    return ws, result


def _evals(ws, name="uniform"):
    lines = [json.loads(x) for x in ws.abs(f"{P.DPO_DIR}/{name}/metrics.jsonl").read_text().splitlines()]
    return [x for x in lines if x.get("type") == "eval"], [x for x in lines if "type" not in x]


@pytest.mark.slow
def test_planted_preference_is_learned_and_the_margin_grows(planted):
    ws, result = planted
    assert result.step == DPO["max_steps"]
    overall = result.eval.to_json()["overall"]
    assert overall["accuracy"] >= 0.9, overall
    evals, steps = _evals(ws)
    margins = [e["mean_margin"] for e in evals]
    assert [e["step"] for e in evals] == [10, 20, 30, 40]
    assert margins[-1] > margins[0] > 0 and margins[-1] == max(margins)
    for key in ("loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                "logps/chosen", "logps/rejected", "lr", "grad_norm", "tokens", "pad_fraction"):
        assert key in steps[0], key
    assert steps[0]["loss"] == pytest.approx(np.log(2), abs=0.05)  # the policy starts as its own reference
    assert steps[-1]["rewards/margins"] > steps[0]["rewards/margins"]


@pytest.mark.slow
def test_random_labels_stay_near_chance(tmp_path):
    ws = _sft_workspace(tmp_path, planted_pairs(160, random_labels=True))
    result = run_train_dpo(ws, tiny_dpo_config(**DPO))
    assert 0.3 <= result.eval.to_json()["overall"]["accuracy"] <= 0.7


@pytest.mark.slow
def test_the_run_is_a_policy_checkpoint_recorded_with_its_reference_and_cache(planted):
    from katcli.train.run_dir import load_run

    ws, _ = planted
    run_dir = ws.abs(f"{P.DPO_DIR}/uniform")
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == ["meta_000040.json", "metrics.jsonl", "model_000040.pt", "optim_000040.pt", KEY_FILE, ARRAY_FILE,
                     "tokenizer.json"]
    meta = json.loads((run_dir / "meta_000040.json").read_text())
    assert meta["kind"] == "kat-policy" and meta["objective"] == "dpo"
    assert meta["dpo"] == {"beta": 0.5, "loss": "sigmoid", "label_smoothing": 0.0, "sft_weight": 0.0}
    assert meta["reference"]["path"] == "sft_checkpoints/uniform" and meta["reference"]["is_init"]
    assert meta["config"]["init"] == "sft/uniform"
    gpt = load_run(run_dir).model  # a plain GPT: usable as --init anywhere
    assert gpt.config.vocab_size > 0
    run = Manifest.load(ws.manifest_path).runs["dpo/uniform"]
    inputs = {i.path for i in run.inputs}
    assert "sft_checkpoints/uniform/model_000030.pt" in inputs
    outputs = {o.path for o in run.outputs}
    assert f"dpo_checkpoints/uniform/{ARRAY_FILE}" in outputs and f"dpo_checkpoints/uniform/{KEY_FILE}" in outputs
    assert run.stats["ref_cache"] == "computed" and run.stats["ess_fraction"] == 1.0


@pytest.mark.slow
def test_cached_reference_equals_a_fresh_reference_forward_bit_for_bit(planted):
    from katcli.model.tokenizer import Tokenizer
    from katcli.train.inputs import read_pairs
    from katcli.train.ref_cache import load_ref_logps
    from katcli.train.run_dir import load_run
    from katcli.train.seq_scoring import summed_reply_logprobs
    from katcli.train.sequences import encode_pairs

    ws, _ = planted
    run_dir = ws.abs(f"{P.DPO_DIR}/uniform")
    key = json.loads((run_dir / KEY_FILE).read_text())["key"]
    from katcli.train.ref_cache import RefCacheKey

    cached = load_ref_logps(run_dir, RefCacheKey(**key)).logps
    tok = Tokenizer.load(run_dir / "tokenizer.json")
    pairs = read_pairs(ws.abs(P.PAIRS))
    enc = encode_pairs(tok, [(p.messages, p.chosen, p.rejected) for p in pairs], max_len=64, max_response_len=32)
    ref = load_run(ws.abs("sft_checkpoints/uniform")).model
    sums, counts = summed_reply_logprobs(ref, enc, np.arange(len(enc)), batch_size=16, pad_id=tok.bos_token_id,
                                  device=torch.device("cpu"))
    assert np.array_equal(cached.chosen, sums[:, 0]) and np.array_equal(cached.rejected, sums[:, 1])
    assert np.array_equal(cached.chosen_tokens, counts[:, 0])


@pytest.mark.slow
def test_a_second_run_reuses_the_cache_and_a_new_reference_recomputes_it(planted):
    ws, _ = planted
    run_train_dpo(ws, tiny_dpo_config(name="again", init="sft/uniform", **{**DPO, "max_steps": 2}))
    runs = Manifest.load(ws.manifest_path).runs
    assert runs["dpo/again"].stats["ref_cache"] == "reused"
    assert runs["dpo/again"].stats["reused_from"] == "dpo_checkpoints/uniform"
    assert f"dpo_checkpoints/uniform/{ARRAY_FILE}" in {i.path for i in runs["dpo/again"].inputs}
    assert ws.abs(f"{P.DPO_DIR}/again/{ARRAY_FILE}").read_bytes() == ws.abs(f"{P.DPO_DIR}/uniform/{ARRAY_FILE}").read_bytes()
    # Same name again: its own cache is hit.
    run_train_dpo(ws, tiny_dpo_config(name="again", init="sft/uniform", **{**DPO, "max_steps": 2}))
    assert Manifest.load(ws.manifest_path).runs["dpo/again"].stats["ref_cache"] == "cached"
    # Another reference: the key differs, so the numbers are recomputed (and the run says why).
    run_train_sft(ws, tiny_sft_config(name="other", **{**SFT, "max_steps": 5}))
    changed = run_train_dpo(ws, tiny_dpo_config(name="again", init="sft/uniform", ref="sft/other",
                                                **{**DPO, "max_steps": 2}))
    assert "recomputed the reference log-probs: the reference model's weights changed since they were computed" \
        in changed.notes
    assert Manifest.load(ws.manifest_path).runs["dpo/again"].stats["ref_cache"] == "computed"
    assert ws.abs(f"{P.DPO_DIR}/again/{ARRAY_FILE}").read_bytes() != ws.abs(f"{P.DPO_DIR}/uniform/{ARRAY_FILE}").read_bytes()


@pytest.mark.slow
def test_changed_pairs_recompute_the_cache(tmp_path):
    pairs = planted_pairs(60)
    ws = _sft_workspace(tmp_path, pairs)
    cfg = tiny_dpo_config(**{**DPO, "max_steps": 2})
    run_train_dpo(ws, cfg)
    more = pairs + planted_pairs(4, seed=9)
    for p in more[-8:]:
        p["id"] = "new-" + p["id"]
    write_pairs(ws, more)
    # Evaluating the old run on the new pairs (forced) recomputes its held-out reference log-probs, writing nothing.
    from katcli.pipeline.eval_rm import run_eval_rm

    before = ws.abs(f"{P.DPO_DIR}/uniform/{ARRAY_FILE}").read_bytes()
    ev = run_eval_rm(ws, ["dpo/uniform"], device="cpu", force=True)
    assert any(n.startswith("dpo/uniform: recomputed the held-out reference log-probs from sft_checkpoints/uniform "
                            "(the pairs file changed since the run)") for n in ev.notes)
    assert ev.models[0].report.overall.n == ev.heldout["pairs"]
    assert ws.abs(f"{P.DPO_DIR}/uniform/{ARRAY_FILE}").read_bytes() == before
    result = run_train_dpo(ws, replace(cfg, force=True))  # the SFT init is now stale: forced
    assert any(n.startswith("recomputed the reference log-probs: the pairs file changed") for n in result.notes)
    # Pairs changed again and the reference retrained since: it cannot stand in for the one the run used.
    write_pairs(ws, more[:-2])
    run_train_sft(ws, tiny_sft_config(force=True, **{**SFT, "max_steps": 3}))
    with pytest.raises(KatError) as err:
        run_eval_rm(ws, ["dpo/uniform"], device="cpu", force=True)
    assert err.value.message == (
        "dpo/uniform: its cached reference log-probs cannot be used (the pairs file changed since the run) and its "
        "reference is no longer the model it was trained against"
    )
    assert err.value.file == str(ws.abs("sft_checkpoints/uniform/model_000030.pt"))  # replaced by step 3


@pytest.mark.slow
def test_resume_after_an_interruption_gives_identical_files(tmp_path):
    pairs = planted_pairs(60)
    tok = make_tokenizer(pairs)
    cfg = tiny_dpo_config(max_steps=8, save_every=3, eval_every=4, **{k: v for k, v in DPO.items() if k != "max_steps"})
    straight = _sft_workspace(tmp_path / "a", pairs, tokenizer=tok)
    run_train_dpo(straight, cfg)
    broken = _sft_workspace(tmp_path / "b", pairs, tokenizer=tok)

    def interrupt(record):
        if record["step"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(InterruptedRun):
        run_train_dpo(broken, cfg, on_step=interrupt)
    resumed = run_train_dpo(broken, replace(cfg, resume=True))
    assert resumed.resumed_from == 3 and resumed.step == 8
    assert Manifest.load(broken.manifest_path).runs["dpo/uniform"].stats["ref_cache"] == "cached"
    a, b = straight.abs(f"{P.DPO_DIR}/uniform"), broken.abs(f"{P.DPO_DIR}/uniform")
    assert {p.name: p.read_bytes() for p in a.iterdir()} == {p.name: p.read_bytes() for p in b.iterdir()}


@pytest.mark.slow
def test_a_modified_cache_stops_the_run_naming_the_file(planted):
    ws, _ = planted
    src = ws.abs(f"{P.DPO_DIR}/uniform")
    dst = ws.abs(f"{P.DPO_DIR}/tampered")
    dst.mkdir()
    for name in (ARRAY_FILE, KEY_FILE):
        shutil.copy(src / name, dst / name)
    rec = np.load(dst / ARRAY_FILE, allow_pickle=False)
    rec["chosen_logp"][0] += 1
    np.save(dst / ARRAY_FILE, rec, allow_pickle=False)
    with pytest.raises(KatError) as err:
        run_train_dpo(ws, tiny_dpo_config(name="tampered", init="sft/uniform", **{**DPO, "max_steps": 1}))
    assert err.value.file == str(dst / ARRAY_FILE)
    assert "modified" in err.value.message and "re-run the same command" in err.value.hint


@pytest.mark.slow
def test_from_scratch_the_fresh_model_is_its_own_reference(tmp_path):
    ws = make_workspace(tmp_path, planted_pairs(40))
    result = run_train_dpo(ws, tiny_dpo_config(depth=1, **{**DPO, "max_steps": 3}))
    meta = json.loads(ws.abs(f"{P.DPO_DIR}/uniform/meta_000003.json").read_text())
    assert meta["reference"]["path"] is None and meta["reference"]["is_init"]
    assert meta["init"] == {"depth": 1, "seed": 0}
    assert any("trained from scratch (--depth 1)" in n for n in result.notes)


def test_init_must_be_named_unless_there_is_one_sft_run(tmp_path):
    ws = make_workspace(tmp_path, planted_pairs(20))
    with pytest.raises(ConfigError) as err:
        run_train_dpo(ws, tiny_dpo_config(**DPO))
    assert err.value.message == (
        "--init is needed: the workspace has no SFT run or imported model to start the policy from"
    )
    for name in ("a", "b"):
        ws.abs(f"{P.SFT_DIR}/{name}").mkdir(parents=True)
    with pytest.raises(ConfigError) as err:
        run_train_dpo(ws, tiny_dpo_config(**DPO))
    assert err.value.message == "--init is needed: the workspace has 2 policies to start from (sft/a, sft/b)"
    assert err.value.hint == "pick one, e.g. --init sft/a"


@pytest.mark.slow
def test_reward_models_and_non_checkpoints_are_refused(tmp_path):
    ws = _sft_workspace(tmp_path, planted_pairs(40))
    run_train_rm(ws, tiny_config(name="rm", max_steps=1, **SMALL))
    with pytest.raises(KatError) as err:
        run_train_dpo(ws, tiny_dpo_config(init="rm/rm", **DPO))
    assert err.value.message == "--init is a reward model, not a policy"
    assert err.value.file == str(ws.abs("rm_checkpoints/rm/meta_000001.json"))
    with pytest.raises(KatError) as err:
        run_train_dpo(ws, tiny_dpo_config(ref="rm/rm", **DPO))
    assert err.value.message == "--ref is a reward model, not a policy"
    (tmp_path / "empty").mkdir()
    with pytest.raises(KatError) as err:
        run_train_dpo(ws, tiny_dpo_config(ref=str(tmp_path / "empty"), **DPO))
    assert err.value.message.startswith("--ref: no model_<step>.pt checkpoint found")


@pytest.mark.slow
def test_a_reference_with_another_tokenizer_is_refused(tmp_path):
    pairs = planted_pairs(40)
    ws = _sft_workspace(tmp_path / "a", pairs)
    other = _sft_workspace(tmp_path / "b", pairs, vocab_size=290)
    with pytest.raises(KatError) as err:
        run_train_dpo(ws, tiny_dpo_config(ref=str(other.abs("sft_checkpoints/uniform")), **DPO))
    assert err.value.message.startswith("--ref was trained with another tokenizer")
    assert err.value.file == str(other.abs("sft_checkpoints/uniform/meta_000030.json"))


@pytest.mark.slow
def test_a_reference_with_another_vocabulary_is_refused(planted, tmp_path):
    ws, _ = planted
    other = tmp_path / "bigger"
    shutil.copytree(ws.abs("sft_checkpoints/uniform"), other)
    meta_path = other / "meta_000030.json"
    meta = json.loads(meta_path.read_text())
    vocab = meta["model_config"]["vocab_size"]
    meta["model_config"]["vocab_size"] = vocab + 8
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(KatError) as err:
        run_train_dpo(ws, tiny_dpo_config(name="bigger", init="sft/uniform", ref=str(other), **DPO))
    assert err.value.message == f"--ref has {vocab + 8} token ids but the policy has {vocab}"
    assert err.value.file == str(meta_path)
    assert err.value.hint == ("the reference's log-probs are compared token by token with the policy's: pass a --ref "
                              "with the policy's vocabulary (e.g. the --init model, the default)")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(beta=0.0), "--beta must be a positive number (got 0.0)"),
        (dict(loss="hinge", label_smoothing=0.1),
         "--label-smoothing only applies to --loss sigmoid or robust, not --loss hinge"),
        (dict(sft_weight=-1.0), "--sft-weight must be 0 (off) or more (got -1.0)"),
        (dict(max_steps=0), "--max-steps must be at least 1"),
    ],
)
def test_config_errors_name_the_flag(kwargs, message):
    with pytest.raises(ConfigError) as err:
        TrainDPOConfig(**kwargs)
    assert err.value.message == message


REF_FREE = {"simpo": dict(beta=2.0), "orpo": dict(beta=0.5)}


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["simpo", "orpo"])
def test_reference_free_losses_learn_planted_preferences_and_not_random_ones(tmp_path, loss):
    cfg = dict(DPO, loss=loss, **REF_FREE[loss])
    planted_ws = _sft_workspace(tmp_path / "planted", planted_pairs(160))
    result = run_train_dpo(planted_ws, tiny_dpo_config(**cfg))
    assert result.eval.to_json()["overall"]["accuracy"] >= 0.9, result.eval.to_json()["overall"]
    run_dir = planted_ws.abs(f"{P.DPO_DIR}/uniform")
    # Reference-free: no cache files, no reference recorded, nothing of one read.
    assert sorted(p.name for p in run_dir.iterdir()) == ["meta_000040.json", "metrics.jsonl", "model_000040.pt",
                                                         "optim_000040.pt", "tokenizer.json"]
    meta = json.loads((run_dir / "meta_000040.json").read_text())
    assert meta["reference"] is None and "ref_cache" not in meta and meta["dpo"]["loss"] == loss
    # `kat eval rm` reads it as the implicit reward model its method defines, with the same held-out accuracy.
    from katcli.pipeline.eval_rm import run_eval_rm

    ev = run_eval_rm(planted_ws, ["dpo/uniform"], device="cpu")
    assert ev.models[0].report.overall.accuracy >= 0.9
    random_ws = _sft_workspace(tmp_path / "random", planted_pairs(160, random_labels=True))
    control = run_train_dpo(random_ws, tiny_dpo_config(**cfg))
    assert 0.3 <= control.eval.to_json()["overall"]["accuracy"] <= 0.7


def test_reference_free_losses_refuse_a_reference_and_record_gamma_only_for_simpo():
    with pytest.raises(ConfigError) as err:
        TrainDPOConfig(loss="simpo", ref="sft/uniform")
    assert err.value.message == ("--ref is not used by --loss simpo: it is reference-free (no reference model, no "
                                 "cached reference log-probs)")
    assert "simpo_gamma" not in TrainDPOConfig().params()
    assert TrainDPOConfig(loss="simpo", simpo_gamma=1.0).params()["simpo_gamma"] == 1.0
    assert TrainDPOConfig(loss="simpo").loss_config().to_dict()["simpo_gamma"] == 0.5
