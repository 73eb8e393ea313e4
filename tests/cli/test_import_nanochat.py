"""`kat import nanochat`: the unpickling notice, stored files, identical logits, refusals, --force."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from katcli.cli.app import KatGroup, root
from katcli.cli.commands import group
from katcli.workspace import Manifest
from katcli.workspace import paths as P
import modelkit
from modelkit import one_torch_thread  # noqa: F401  (autouse fixture: tiny models run on one thread)




@pytest.fixture(scope="module")
def source():
    kit = modelkit
    tok = kit.Tokenizer.train(kit.corpus(), 400)
    model = kit.randomize(kit.GPT(kit.tiny_config(tok.vocab_size)), seed=3).eval()
    return kit, tok, model


@pytest.fixture
def kat_import(ws_dir):
    app = typer.Typer(cls=KatGroup, pretty_exceptions_enable=False)
    app.callback()(root)
    app.add_typer(group("import"), name="import")
    runner = CliRunner()

    def run(*args: str, quiet: bool = False):
        argv = ["-w", str(ws_dir)] + (["-q"] if quiet else []) + ["import", *map(str, args)]
        return runner.invoke(app, argv, catch_exceptions=False)

    return run


def test_imports_model_and_tokenizer_with_identical_logits(kat_import, ws_dir, tmp_path, source) -> None:
    kit, tok, model = source
    base = kit.write_nanochat_dir(tmp_path / "nanochat", model, tok, compiled=True, tag="d2", step=700)
    result = kat_import("nanochat", base)
    assert result.exit_code == 0, result.stderr
    pkl = base.resolve() / "tokenizer" / "tokenizer.pkl"
    assert result.stderr.strip().splitlines()[-1] == (
        f"Note: unpickled {pkl} — the only file kat ever unpickles, and only in `kat import nanochat`; "
        "a restricted unpickler that accepts nothing but tiktoken's Encoding state"
    )
    d = ws_dir.resolve() / "models" / "nanochat-sft-d2"
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"Imported nanochat sft d2 step 700: {model.num_params():,} parameters "
        "(2 layers, width 64, 2 heads / 2 kv heads, vocab 400, context 64)"
    )
    assert lines[1].startswith(f"Wrote {d / 'model_000700.pt'} (")
    assert lines[2] == f"Wrote {d / 'meta_000700.json'}"
    assert lines[3] == f"Wrote {d / 'tokenizer' / 'tokenizer.json'} (sha256 {tok.sha256()[:16]}…)"

    from katcli.model import Tokenizer, load_model

    imported, ckpt = load_model(d)
    assert ckpt.step == 700
    assert ckpt.meta["tokenizer_sha256"] == tok.sha256()
    assert ckpt.meta["imported_from"]["tag"] == "d2" and ckpt.meta["nanochat_meta"]["val_bpb"] == 0.9
    assert set(ckpt.meta["inputs"]) == {"model", "meta", "tokenizer"}
    idx = torch.tensor([tok.render_for_completion([{"role": "user", "content": "Hello world!"}])])
    with torch.no_grad():
        assert torch.equal(imported(idx), model(idx))
    assert Tokenizer.load(d / "tokenizer").sha256() == tok.sha256()

    run = Manifest.load(ws_dir / P.MANIFEST).runs["model/nanochat-sft-d2"]
    assert sorted(o.path for o in run.outputs) == [
        "models/nanochat-sft-d2/meta_000700.json",
        "models/nanochat-sft-d2/model_000700.pt",
        "models/nanochat-sft-d2/tokenizer/tokenizer.json",
    ]
    assert all(i.external and i.sha256 for i in run.inputs) and len(run.inputs) == 3
    assert run.stats["unpickled"] == str(pkl)


def test_mismatched_checkpoint_is_refused_with_the_keys(kat_import, ws_dir, tmp_path, source) -> None:
    kit, tok, model = source

    def edit(state):
        del state["transformer.h.1.mlp.c_proj.weight"]
        state["transformer.h.0.attn.lambda"] = torch.zeros(1)

    base = kit.write_nanochat_dir(tmp_path / "nc", model, tok, source_dir="base_checkpoints", state_edit=edit)
    result = kat_import("nanochat", base, "--source", "base")
    assert result.exit_code == 1
    ckpt = base.resolve() / "base_checkpoints" / "d2" / "model_000700.pt"
    assert result.stderr.strip().splitlines()[0] == (
        "Error: checkpoint does not match kat's GPT architecture; unexpected keys: transformer.h.0.attn.lambda; "
        f"missing keys: transformer.h.1.mlp.c_proj.weight ({ckpt})"
    )
    assert not (ws_dir / "models").exists()
    assert not (ws_dir / P.MANIFEST).exists() or not Manifest.load(ws_dir / P.MANIFEST).runs


def test_existing_name_needs_force_and_force_replaces_cleanly(kat_import, ws_dir, tmp_path, source) -> None:
    kit, tok, model = source
    base = kit.write_nanochat_dir(tmp_path / "nc", model, tok, source_dir="mid_checkpoints", step=100)
    assert kat_import("nanochat", base, "--source", "mid", "--name", "mine").exit_code == 0
    kit.write_nanochat_dir(base, model, tok, source_dir="mid_checkpoints", step=50)
    again = kat_import("nanochat", base, "--source", "mid", "--name", "mine", "--step", 50)
    assert again.exit_code == 1
    assert again.stderr.strip().splitlines() == [
        "Error: models/mine/ already exists",
        "Hint: pass --force to replace it, or choose another --name",
    ]
    forced = kat_import("nanochat", base, "--source", "mid", "--name", "mine", "--step", 50, "--force", quiet=True)
    assert forced.exit_code == 0, forced.stderr
    assert forced.stdout == ""
    assert forced.stderr.startswith("Note: unpickled ")  # said even with --quiet
    files = sorted(p.relative_to(ws_dir / "models" / "mine").as_posix() for p in (ws_dir / "models" / "mine").rglob("*")
                   if p.is_file())
    assert files == ["meta_000050.json", "model_000050.pt", "tokenizer/tokenizer.json"]
    assert json.loads((ws_dir / "models/mine/meta_000050.json").read_text())["step"] == 50


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--source", "rl"), 2, "Invalid value for '--source'"),
        (("--name", "a/b"), 1, "Error: --name must be letters, digits, '.', '_' or '-' (no slashes), starting "
                               "alphanumeric"),
        (("--tag", "d9"), 1, "Error: model tag 'd9' not found"),
    ],
)
def test_bad_flags(kat_import, tmp_path, source, args, code, message) -> None:
    kit, tok, model = source
    base = kit.write_nanochat_dir(tmp_path / "nc", model, tok)
    result = kat_import("nanochat", base, *args)
    assert result.exit_code == code
    assert message in result.stderr


def test_missing_base_dir(kat_import, tmp_path) -> None:
    result = kat_import("nanochat", tmp_path / "nope")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: nanochat base directory not found ({(tmp_path / 'nope').resolve()})",
        "Hint: pass nanochat's base directory, the one holding tokenizer/ and base_checkpoints/ (or mid_, sft_)",
    ]
