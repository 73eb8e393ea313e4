"""`kat train kto` end to end on CPU: planted preferences are learned, random ones are not; its mismatched KL
examples, its reuse of DPO's reference cache, `kat eval rm` on it, resume."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from modelkit import one_torch_thread  # noqa: F401  (autouse fixture: tiny models run on one thread)
from rmkit import make_tokenizer, make_workspace, planted_pairs

from katcli.errors import ConfigError, InterruptedRun
from katcli.pipeline.train_kto import TrainKTOConfig, run_train_kto, tiny_kto_config
from katcli.pipeline.train_sft import run_train_sft, tiny_sft_config
from katcli.train.objectives.kto import kl_partners
from katcli.train.ref_cache import ARRAY_FILE, KEY_FILE
from katcli.workspace import Manifest
from katcli.workspace import paths as P

SMALL = dict(max_len=64)
SFT = dict(max_steps=30, lr=3e-3, **SMALL)
KTO = dict(max_steps=40, lr=2e-3, beta=0.5, **SMALL)


def _sft_workspace(root, pairs, **kw):
    ws = make_workspace(root, pairs, **kw)
    run_train_sft(ws, tiny_sft_config(**SFT))
    return ws


@pytest.mark.slow
def test_planted_preferences_are_learned_and_random_labels_stay_near_chance(tmp_path):
    ws = _sft_workspace(tmp_path / "planted", planted_pairs(160))
    result = run_train_kto(ws, tiny_kto_config(eval_every=20, **KTO))
    overall = result.eval.to_json()["overall"]
    assert overall["accuracy"] >= 0.9, overall
    lines = [json.loads(x) for x in ws.abs(f"{P.KTO_DIR}/uniform/metrics.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "type" not in x]
    for key in ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "kl",
                "logps/chosen", "logps/rejected", "lr", "grad_norm", "tokens"):
        assert key in steps[0], key
    assert steps[0]["loss"] == pytest.approx(0.5, abs=0.02)  # policy = reference: 1 − σ(0) per example
    assert steps[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # float32 batch-shape noise only
    assert steps[-1]["rewards/margins"] > steps[0]["rewards/margins"]
    meta = json.loads(ws.abs(f"{P.KTO_DIR}/uniform/meta_000040.json").read_text())
    assert meta["objective"] == "kto" and meta["kto"] == {"beta": 0.5, "desirable_weight": 1.0,
                                                         "undesirable_weight": 1.0}
    assert meta["reference"]["is_init"] and meta["ref_cache"]["files"][0].startswith(f"{P.KTO_DIR}/uniform/")
    # `kat eval rm` reads it as DPO's implicit reward model, with the same held-out accuracy.
    from katcli.pipeline.eval_rm import run_eval_rm

    ev = run_eval_rm(ws, ["kto/uniform"], device="cpu")
    assert ev.models[0].report.overall.accuracy == pytest.approx(overall["accuracy"])
    control = run_train_kto(_sft_workspace(tmp_path / "random", planted_pairs(160, random_labels=True)),
                            tiny_kto_config(**KTO))
    assert 0.3 <= control.eval.to_json()["overall"]["accuracy"] <= 0.7


@pytest.mark.slow
def test_a_dpo_runs_reference_cache_is_reused_and_resume_gives_identical_files(tmp_path):
    from katcli.pipeline.train_dpo import run_train_dpo, tiny_dpo_config

    pairs = planted_pairs(60)
    tok = make_tokenizer(pairs)
    cfg = tiny_kto_config(max_steps=6, save_every=3, eval_every=3, **{k: v for k, v in KTO.items() if k != "max_steps"})
    straight = _sft_workspace(tmp_path / "a", pairs, tokenizer=tok)
    run_train_dpo(straight, tiny_dpo_config(max_steps=1, **SMALL))
    run_train_kto(straight, cfg)
    assert Manifest.load(straight.manifest_path).runs["kto/uniform"].stats["ref_cache"] == "reused"
    broken = _sft_workspace(tmp_path / "b", pairs, tokenizer=tok)

    def interrupt(record):
        if record["step"] == 4:
            raise KeyboardInterrupt

    with pytest.raises(InterruptedRun):
        run_train_kto(broken, cfg, on_step=interrupt)
    resumed = run_train_kto(broken, replace(cfg, resume=True))
    assert resumed.resumed_from == 3 and resumed.step == 6
    a, b = straight.abs(f"{P.KTO_DIR}/uniform"), broken.abs(f"{P.KTO_DIR}/uniform")
    assert {p.name: p.read_bytes() for p in a.iterdir()} == {p.name: p.read_bytes() for p in b.iterdir()}
    assert {ARRAY_FILE, KEY_FILE} <= {p.name for p in a.iterdir()}


def test_kl_partners_answer_another_prompt_deterministically():
    prompts = ["a", "a", "b", "c", "c"]
    partners = kl_partners([0, 1, 2, 3, 4], prompts)
    assert partners.tolist() == [2, 2, 3, 0, 0]
    assert all(prompts[p] != prompts[r] for r, p in zip(range(5), partners))
    assert kl_partners([4, 2], prompts).tolist() == [2, 4]
    with pytest.raises(ValueError, match="two different prompts"):
        kl_partners([0, 1], prompts)


def test_flags_are_checked_naming_them():
    with pytest.raises(ConfigError) as err:
        TrainKTOConfig(beta=-1.0)
    assert err.value.message == "--beta must be a positive number (got -1.0)"
    with pytest.raises(ConfigError) as err:
        TrainKTOConfig(desirable_weight=0.0)
    assert err.value.message == "--desirable-weight must be a positive number (got 0.0)"
    assert np.isclose(TrainKTOConfig().loss_config().beta, 0.1)
