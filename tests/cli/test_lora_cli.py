"""`kat train … --lora-r` and `kat export --merge` on the command line: the summary, `kat status`, exact errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import rmkit
from hfkit import build_model, train_tokenizer
from modelkit import one_torch_thread  # noqa: F401  (autouse fixture: tiny models run on one thread)

FAST = ["--max-steps", "2", "--batch-size", "8", "--max-len", "64", "--val-ratio", "0.2", "--device", "cpu",
        "--threads", "1", "--lr", "1e-2"]


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora_cli")
    pairs = rmkit.planted_pairs(30)
    return {"pairs": pairs, "dir": build_model("llama", train_tokenizer(pairs, encoder=False), root / "llama")}


def test_status_shows_the_base_model_and_lora_rank_and_export_merges(kat, ws_dir, llama, tmp_path):
    rmkit.make_workspace(ws_dir, llama["pairs"], with_weights=False)
    result = kat("train", "sft", "--init", f"hf:{llama['dir']}", "--lora-r", "4", *FAST)
    assert result.exit_code == 0, result.stdout + result.stderr
    status = kat("status")
    assert "Base model: SFT policy (uniform): " in status.stdout and "· lora r=4" in status.stdout
    assert "Note: LoRA r=4 (alpha 8.0) on down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj: " in \
        " ".join(result.stdout.split())
    row = next(r for r in json.loads(kat("status", "--json").stdout)["stages"] if r["key"] == "sft/uniform")
    assert row["base_model"].startswith(str(llama["dir"])) and row["base_model"].endswith(" · lora r=4")
    out = tmp_path / "merged"
    result = kat("export", "sft/uniform", "--merge", str(out))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"wrote {out} (" in result.stdout and "lora r=4, 1 adapter)" in result.stdout
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    again = kat("export", "sft/uniform", "--merge", str(out))
    assert again.exit_code == 1
    assert again.stderr.splitlines()[-2:] == [f"Error: the export directory exists and is not empty ({out})",
                                              "Hint: pass a new directory, or --force to replace it"]


def test_lora_flag_errors_are_one_error_and_a_hint(kat, ws_dir, llama):
    rmkit.make_workspace(ws_dir, llama["pairs"], with_weights=False)
    result = kat("train", "dpo", "--depth", "1", "--lora-r", "8", *FAST)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-2:] == [
        "Error: --lora-r: LoRA adapters are for Hugging Face backbones (--init hf:NAME|DIR, or a run trained from "
        "one); kat's own GPT trains every weight",
        "Hint: drop --lora-r for kat's GPT, or start from a Hugging Face model (e.g. --init "
        "hf:Qwen/Qwen2.5-0.5B-Instruct --lora-r 16)",
    ]
    result = kat("train", "sft", "--init", f"hf:{llama['dir']}", "--lora-r", "-1", *FAST)
    assert result.exit_code == 1
    assert "Error: --lora-r must be 0 (off) or more" in result.stderr.splitlines()
    result = kat("train", "rm", "--init", f"hf:{llama['dir']}", "--lora-r", "4", "--lora-targets", "nope", *FAST)
    assert result.exit_code == 1
    err = [x for x in result.stderr.splitlines() if x.startswith(("Error:", "Hint:"))]
    assert err[0].startswith("Error: --lora-targets: no module of this llama model matches nope")
    assert err[1].startswith("Hint: name some of its linear layers (") and err[1].endswith("or pass --lora-targets "
                                                                                         "all-linear")
    result = kat("export", "sft/none", "--merge", "x")
    assert result.exit_code == 1 and result.stderr.startswith("Error: ")


def test_help_and_status_never_import_peft():
    code = ("import sys; from katcli.cli.app import main; sys.argv=['kat','{}']\n"
            "try: main()\nexcept SystemExit: pass\nprint('peft' in sys.modules)")
    for argv in ("--help", "status"):
        out = subprocess.run([sys.executable, "-c", code.format(argv)], capture_output=True, text=True, check=True)
        assert out.stdout.strip().splitlines()[-1] == "False", argv
