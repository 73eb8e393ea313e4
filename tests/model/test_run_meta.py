"""RunMeta: a kat.run/1 meta (today's files) reads as the typed record; /2 round-trips; other versions are refused."""

from __future__ import annotations

import json

import pytest

from katcli.errors import KatError
from katcli.model.run_meta import POLICY_KIND, RM_KIND, SCHEMA, RunMeta, Split

V1_GRPO = {
    "format": 1, "kind": "kat-policy", "objective": "grpo", "step": 20,
    "model_config": {"n_layer": 1, "vocab_size": 300}, "tokenizer_sha256": "ab" * 32,
    "config": {"max_len": 256, "max_response_len": None, "density_aware": True, "pair_weighting": "per-prompt"},
    "training": {"micro_batch_size": 8, "warmup_steps": 1, "world_size": 1},
    "init": {"path": "sft_checkpoints/uniform", "step": 60},
    "inputs": {"data/pairs_all.jsonl": "11" * 32, "data/embeddings_offline/density_weights.npy": "22" * 32},
    "heldout": {"seed": 3, "val_ratio": 0.2, "pairs": 88, "prompts": 79, "fingerprint": "f" * 64},
    "sampling": {"weighting": "per-prompt", "train_pairs": 287, "train_prompts": 287, "ess": 250.5,
                 "ess_fraction": 0.87, "items": "prompts", "train_items": 287},
    "eval_weights": "sampling", "eval": {"overall": {"reward": 0.1}},
    "reward_model": {"name": "uniform", "path": "rm_checkpoints/uniform", "step": 60},
    "reference": None, "rollout": {"train_prompts": 287},
}


def test_a_v1_meta_reads_as_the_typed_record():
    m = RunMeta.from_json(V1_GRPO)
    assert (m.kind, m.objective, m.step) == (POLICY_KIND, "grpo", 20)
    assert m.split == Split(3, 0.2, 88, 79, "f" * 64) and m.split.spec == (3, 0.2)
    assert m.sampling.density_aware and m.sampling.weights_sha256 == "22" * 32  # from the v1 inputs
    assert m.trained_on("data/pairs_all.jsonl") == "11" * 32 and m.trained_on("other") is None
    assert m.lengths() == (256, 128)  # max_response_len unset: half of max_len
    assert m.init_path == "sft_checkpoints/uniform" and m.trained_rm["name"] == "uniform"
    assert m.extra == {"rollout": {"train_prompts": 287}}  # the objective's own records, kept as they are


def test_v2_writes_the_same_keys_and_round_trips():
    m = RunMeta.from_json(V1_GRPO)
    out = m.to_json()
    assert out["schema"] == SCHEMA and "format" not in out
    assert set(V1_GRPO) - {"format"} <= set(out)  # every v1 key is still there (readers of v1 files read v2)
    assert out["reference"] is None  # a GRPO run with --beta 0 says so
    again = RunMeta.from_json(json.loads(json.dumps(out)))
    assert again == m


def test_at_step_records_the_step_and_its_report():
    class Report:
        def to_json(self):
            return {"overall": {"accuracy": 0.5}}

    m = RunMeta(kind=RM_KIND, objective="rm").at_step(7, Report())
    assert (m.step, m.eval) == (7, {"overall": {"accuracy": 0.5}})
    assert RunMeta(kind=RM_KIND).at_step(3, None).eval is None


@pytest.mark.parametrize("bad", [{"schema": "kat.run/9"}, {"format": 2}])
def test_unknown_versions_are_refused(bad):
    with pytest.raises(KatError, match="unknown schema"):
        RunMeta.from_json({"kind": RM_KIND, **bad}, file="meta_000001.json")


def test_a_meta_without_a_split_has_none():
    m = RunMeta.from_json({"model_config": {"n_layer": 1}, "heldout": {"seed": 0}})  # no val_ratio: no split
    assert m.split is None and m.sampling is None and m.kind is None
