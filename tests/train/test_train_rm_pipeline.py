"""`run_train_rm` end to end on planted data: it learns the signal, holds prompts out, resumes bit for bit."""

from __future__ import annotations

import json

import pytest
import torch
from rmkit import make_tokenizer, make_workspace, planted_pairs

import katcli.train.objectives.encoded as trainer_mod
from katcli.errors import ConfigError, InterruptedRun, KatError, UpstreamError
from katcli.pipeline.train_rm import TrainRMConfig, run_train_rm, tiny_config
from katcli.train.split import split_pairs
from katcli.workspace import Manifest
from katcli.workspace import paths as P

SMALL = dict(max_len=64, lr=3e-3)


@pytest.mark.slow
def test_planted_signal_is_learned_and_random_labels_are_not(tmp_path):
    ws = make_workspace(tmp_path / "planted", planted_pairs(300), with_weights=False)
    res = run_train_rm(ws, tiny_config(max_steps=60, **SMALL))
    assert res.eval.overall.accuracy >= 0.95, res.eval.to_json()
    assert res.eval.overall.n >= 80

    noise = make_workspace(tmp_path / "noise", planted_pairs(300, random_labels=True), with_weights=False)
    res = run_train_rm(noise, tiny_config(max_steps=60, **SMALL))
    assert 0.35 <= res.eval.overall.accuracy <= 0.65, res.eval.to_json()


def test_uniform_and_density_share_the_heldout_set_and_never_train_on_it(tmp_path, monkeypatch):
    pairs = planted_pairs(120)
    ws = make_workspace(tmp_path / "ws", pairs)
    seen: list[int] = []
    real_collate = trainer_mod.collate

    def spy(enc, indices, **kw):
        seen.extend(int(i) for i in indices)
        return real_collate(enc, indices, **kw)

    monkeypatch.setattr(trainer_mod, "collate", spy)
    uni = run_train_rm(ws, tiny_config(max_steps=4, **SMALL))
    den = run_train_rm(ws, tiny_config(density_aware=True, max_steps=4, **SMALL))

    split = split_pairs([p["prefix_id"] for p in pairs], seed=0, val_ratio=0.2)
    heldout_prompts = {pairs[i]["prefix_id"] for i in split.heldout}
    assert len(seen) == 2 * 4 * 16
    assert not {pairs[i]["prefix_id"] for i in seen} & heldout_prompts
    assert uni.heldout_fingerprint == den.heldout_fingerprint == split.fingerprint([p["id"] for p in pairs])
    assert uni.heldout_pairs == den.heldout_pairs == len(split.heldout)
    assert (uni.name, den.name) == ("uniform", "density")
    assert uni.ess_fraction == pytest.approx(1.0) and den.ess_fraction < 0.9
    assert den.eval.by_quintile is not None and uni.eval.by_quintile is not None  # fresh weights → quintiles

    runs = Manifest.load(ws.manifest_path).runs
    assert P.DENSITY_WEIGHTS in [i.path for i in runs["rm/density"].inputs]
    assert P.DENSITY_WEIGHTS not in [i.path for i in runs["rm/uniform"].inputs]
    files = {o.path for o in runs["rm/uniform"].outputs}
    assert files == {f"rm_checkpoints/uniform/{f}" for f in
                     ("model_000004.pt", "meta_000004.json", "optim_000004.pt", "metrics.jsonl", "tokenizer.json")}
    meta = json.loads((ws.abs("rm_checkpoints/density/meta_000004.json")).read_text())
    assert meta["kind"] == "kat-reward-model" and meta["sampling"]["weighting"] == "per-prompt"
    assert meta["heldout"]["fingerprint"] == uni.heldout_fingerprint
    assert runs["rm/density"].stats["ess_fraction"] == pytest.approx(den.ess_fraction, abs=1e-6)


def test_resume_after_an_interruption_gives_identical_weights(tmp_path):
    pairs = planted_pairs(80)
    tok = make_tokenizer(pairs)
    cfg = tiny_config(max_steps=8, save_every=3, eval_every=4, **SMALL)

    straight = make_workspace(tmp_path / "a", pairs, tokenizer=tok)
    run_train_rm(straight, cfg)

    broken = make_workspace(tmp_path / "b", pairs, tokenizer=tok)

    def interrupt(record):
        if record["step"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(InterruptedRun) as err:
        run_train_rm(broken, cfg, on_step=interrupt)
    from katcli.pipeline.registry import with_resume
    from katcli.pipeline.stage import current_command

    # One line: the step it stopped at, and the command (as typed, plus --resume) that continues exactly.
    assert err.value.message == f"Interrupted at step 5; `{with_resume(current_command())}` continues from step 3"
    assert err.value.exit_code == 130
    run_dir = broken.abs("rm_checkpoints/uniform")
    assert sorted(p.name for p in run_dir.iterdir() if p.suffix in (".pt", ".json") and p.name != "tokenizer.json") \
        == ["meta_000003.json", "model_000003.pt", "optim_000003.pt"]
    assert "rm/uniform" not in Manifest.load(broken.manifest_path).runs  # nothing recorded for a broken run

    resumed = run_train_rm(broken, TrainRMConfig(**{**cfg.__dict__, "resume": True}))
    assert resumed.resumed_from == 3 and resumed.step == 8

    a, b = straight.abs("rm_checkpoints/uniform"), broken.abs("rm_checkpoints/uniform")
    wa = torch.load(a / "model_000008.pt", weights_only=True)
    wb = torch.load(b / "model_000008.pt", weights_only=True)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    oa = torch.load(a / "optim_000008.pt", weights_only=True)["optimizer"]["state"]
    ob = torch.load(b / "optim_000008.pt", weights_only=True)["optimizer"]["state"]
    assert all(torch.equal(oa[i][k], ob[i][k]) for i in oa for k in oa[i])
    # Every file of the run, byte for byte (the optimizer file's pickle included).
    assert {p.name: p.read_bytes() for p in a.iterdir()} == {p.name: p.read_bytes() for p in b.iterdir()}
    assert (a / "metrics.jsonl").read_bytes() == (b / "metrics.jsonl").read_bytes()
    assert (a / "meta_000008.json").read_bytes() == (b / "meta_000008.json").read_bytes()
    assert Manifest.load(broken.manifest_path).runs["rm/uniform"].stats["resumed_from"] == 3

    # Resuming a finished run re-saves its last step: the same bytes again.
    before = {p.name: p.read_bytes() for p in a.iterdir()}
    run_train_rm(straight, TrainRMConfig(**{**cfg.__dict__, "resume": True}))
    assert {p.name: p.read_bytes() for p in a.iterdir()} == before


def test_resume_refuses_other_flags_and_missing_checkpoints(tmp_path):
    ws = make_workspace(tmp_path / "ws", planted_pairs(60), with_weights=False)
    with pytest.raises(KatError) as err:
        run_train_rm(ws, tiny_config(max_steps=2, resume=True, **SMALL))
    assert err.value.message == "nothing to resume: rm_checkpoints/uniform/ has no checkpoint"
    assert err.value.hint == "drop --resume to start a new run"
    run_train_rm(ws, tiny_config(max_steps=2, **SMALL))
    with pytest.raises(ConfigError) as err:
        run_train_rm(ws, tiny_config(max_steps=2, resume=True, max_len=64, lr=1e-3))
    assert err.value.message == "--lr is 0.001 but rm_checkpoints/uniform/ was trained with 0.003"
    assert err.value.hint == "resume with --lr 0.003, as it was trained (or drop --resume to start over)"


def test_density_aware_needs_the_density_weights(tmp_path):
    ws = make_workspace(tmp_path / "ws", planted_pairs(40), with_weights=False)
    with pytest.raises(UpstreamError) as err:
        run_train_rm(ws, tiny_config(density_aware=True, max_steps=1, **SMALL))
    assert err.value.message == "data/embeddings_offline/density_weights.npy is missing"
    assert err.value.hint == "run `kat embed` first"
    assert not ws.abs("rm_checkpoints/density").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pair_weighting": "per-pair"}, "--pair-weighting only applies with --density-aware"),
        ({"init": "x", "depth": 2}, "--init and --depth exclude each other: --init starts from a model, --depth from scratch"),
        ({"max_steps": 0}, "--max-steps must be at least 1"),
        ({"val_ratio": 0.0}, "--val-ratio must be between 0 and 1 (exclusive)"),
        ({"name": "a/b"}, "--name must be letters, digits, '.', '_' or '-' (no slashes), starting alphanumeric"),
        ({"max_len": 64, "max_response_len": 60}, "--max-response-len must be between 1 and --max-len − 8 (56)"),
        ({"device": "tpu"}, "--device must be one of auto, cpu, cuda (got 'tpu')"),
    ],
)
def test_config_errors_name_the_flag(kwargs, message):
    with pytest.raises(ConfigError) as err:
        TrainRMConfig(**kwargs)
    assert err.value.message == message


def test_defaults_and_recorded_params():
    cfg = TrainRMConfig()
    assert cfg.run_name == "uniform" and cfg.weighting == "uniform" and cfg.resolved_lr == 1e-3
    dens = TrainRMConfig(density_aware=True, init="some/dir")
    assert dens.run_name == "density" and dens.weighting == "per-prompt" and dens.resolved_lr == 2e-5
    params = cfg.params()
    assert params["depth"] == 4 and "force" not in params and "resume" not in params


def test_init_from_a_gpt_checkpoint_and_from_a_reward_model(tmp_path):
    from katcli.model.checkpoint import save_checkpoint
    from katcli.model.gpt import GPT, GPTConfig

    pairs = planted_pairs(60)
    tok = make_tokenizer(pairs)
    ws = make_workspace(tmp_path / "ws", pairs, tokenizer=tok, with_weights=False)
    config = GPTConfig(sequence_len=64, vocab_size=tok.vocab_size, n_layer=1, n_head=1, n_kv_head=1, n_embd=32)
    gpt = GPT(config, seed=5)
    base = tmp_path / "base"
    save_checkpoint(base, 7, gpt, {"model_config": config.to_dict(), "tokenizer_sha256": tok.sha256()})

    res = run_train_rm(ws, TrainRMConfig(name="from-base", init=str(base), max_steps=2, batch_size=8, max_len=64,
                                         val_ratio=0.2, eval_every=0, save_every=0, device="cpu", threads=1))
    assert res.model_config == config.to_dict()
    assert not any(n.startswith("trained from scratch") for n in res.notes)
    meta = json.loads(ws.abs("rm_checkpoints/from-base/meta_000002.json").read_text())
    assert meta["init"] == {"path": str(base.resolve()), "step": 7}
    assert meta["config"]["lr"] == 2e-5
    run = Manifest.load(ws.manifest_path).runs["rm/from-base"]
    assert {i.path for i in run.inputs if i.external} == {str(base / "model_000007.pt"), str(base / "meta_000007.json")}

    # A reward model inside the workspace is a recorded artifact: usable as --init (its head is dropped).
    again = run_train_rm(ws, TrainRMConfig(name="from-rm", init=str(ws.abs("rm_checkpoints/from-base")), max_steps=1,
                                           batch_size=8, max_len=64, val_ratio=0.2, eval_every=0, save_every=0,
                                           device="cpu", threads=1))
    assert again.step == 1
    inputs = [i.path for i in Manifest.load(ws.manifest_path).runs["rm/from-rm"].inputs]
    assert "rm_checkpoints/from-base/model_000002.pt" in inputs and "rm_checkpoints/from-base/tokenizer.json" in inputs

    save_checkpoint(base, 8, gpt, {"model_config": config.to_dict(), "tokenizer_sha256": "0" * 64})
    with pytest.raises(KatError) as err:
        run_train_rm(ws, TrainRMConfig(init=str(base), max_steps=1, max_len=64, val_ratio=0.2, device="cpu"))
    assert err.value.message.startswith("--init model was trained with another tokenizer (sha256 000000000000…")
