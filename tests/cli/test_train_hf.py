"""`kat train … --init hf:DIR` on the command line: the summary, `kat status`'s base model, and exact errors."""

from __future__ import annotations

import json

import pytest
import rmkit
from hfkit import build_model, train_tokenizer
from modelkit import one_torch_thread  # noqa: F401  (autouse fixture: tiny models run on one thread)

FAST = ["--max-steps", "2", "--batch-size", "8", "--max-len", "64", "--val-ratio", "0.2", "--device", "cpu",
        "--threads", "1"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_cli")
    pairs = rmkit.planted_pairs(30)
    tok = train_tokenizer(pairs, encoder=False)
    bare = train_tokenizer(pairs, encoder=False, chat_template=False)
    return {"pairs": pairs, "llama": build_model("llama", tok, root / "llama"),
            "bare": build_model("llama", bare, root / "bare")}


def test_train_rm_from_an_hf_model_and_status_shows_the_base_model(kat, ws_dir, models):
    rmkit.make_workspace(ws_dir, models["pairs"], with_weights=False)
    result = kat("train", "rm", "--init", f"hf:{models['llama']}", *FAST)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "trained from scratch" not in result.stdout
    assert "Held-out accuracy" in result.stdout
    # transformers' load reports and progress bars stay quiet: stderr holds kat's own progress lines only
    assert "LOAD REPORT" not in result.stderr and "Loading weights" not in result.stderr
    assert "Writing model shards" not in result.stderr
    status = kat("status")
    assert f"Base model: Reward model (uniform): {models['llama']} (model.safetensors sha256 " in status.stdout
    row = next(r for r in json.loads(kat("status", "--json").stdout)["stages"] if r["key"] == "rm/uniform")
    assert row["base_model"].startswith(str(models["llama"]))


def test_hf_init_errors_are_one_error_and_a_hint(kat, ws_dir, models):
    rmkit.make_workspace(ws_dir, models["pairs"], with_weights=False)
    result = kat("train", "sft", "--init", f"hf:{models['bare']}", *FAST)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-2:] == [  # after the progress line of reading the pairs
        f"Error: the model's tokenizer has no chat template, so kat cannot render prompts for it ({models['bare']})",
        "Hint: pass --chat-template FILE (a Jinja template, e.g. the one of the model's instruct version)",
    ]
    result = kat("train", "sft", "--init", "hf:nobody/nothing", *FAST)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()[-2:]
    assert lines[0].startswith("Error: cannot find Hugging Face model 'nobody/nothing': not in the Hugging Face cache ")
    assert lines[0].endswith("; hub skipped (HF_HUB_OFFLINE is set)")
    assert lines[1] == ("Hint: fetch it once where the hub is reachable (`hf download nobody/nothing`, with the same "
                        "HF_HOME), or pass a local save_pretrained directory as hf:DIR")
    result = kat("train", "sft", "--init", "hf:./missing", *FAST)
    assert result.exit_code == 1
    assert "Error: --init directory not found (missing)" in result.stderr.splitlines()
