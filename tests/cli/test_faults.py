"""The second fault campaign's findings (issue 22), each as the case that exposed it: symlinks, divergence, huge
values, unrecorded run files, a user's model folder inside the workspace."""

from __future__ import annotations

import json
import shutil

import pytest
import rmkit
from hfkit import build_model, train_tokenizer
from modelkit import one_torch_thread  # noqa: F401  (autouse fixture: tiny models run on one thread)

from katcli.workspace import Manifest
from katcli.workspace import paths as P

FAST = ["--depth", "1", "--max-steps", "2", "--batch-size", "4", "--max-len", "64", "--val-ratio", "0.2",
        "--device", "cpu", "--threads", "1", "--eval-every", "0", "--save-every", "0"]


@pytest.fixture
def ws(ws_dir):
    rmkit.make_workspace(ws_dir, rmkit.planted_pairs(40), with_weights=False)
    return ws_dir


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_a_symlinked_run_folder_is_refused_before_any_work(kat, ws, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (ws / P.SFT_DIR).mkdir(exist_ok=True)
    (ws / P.SFT_DIR / "h").symlink_to(outside)
    result = kat("train", "sft", "--name", "h", *FAST)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: sft_checkpoints/h would be written outside the workspace: sft_checkpoints/h is a symlink to "
        f"{outside}",
        f"Hint: kat writes only inside the workspace: replace the link with a real directory or file "
        f"(`rm {ws / P.SFT_DIR / 'h'}`) and re-run",
    ]
    assert list(outside.iterdir()) == []
    assert "sft/h" not in Manifest.load(ws / P.MANIFEST).runs


def test_an_input_symlinked_outside_is_refused_and_the_manifest_link_kept(kat, ws, tmp_path):
    real = tmp_path / "pairs.jsonl"
    shutil.move(ws / P.PAIRS, real)
    (ws / P.PAIRS).symlink_to(real)
    result = kat("train", "sft", *FAST)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: {P.PAIRS} is read through a symlink that leaves the workspace: {P.PAIRS} → {real}")
    (ws / P.PAIRS).unlink()
    shutil.move(real, ws / P.PAIRS)

    kept = tmp_path / "manifest.json"
    shutil.move(ws / P.MANIFEST, kept)
    (ws / P.MANIFEST).symlink_to(kept)
    before = kept.read_bytes()
    result = kat("train", "sft", *FAST)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].startswith(f"Error: manifest.json is a symlink (to {kept}); ")
    assert result.stderr.splitlines()[1].startswith(f"Hint: replace the link with the file itself (`cp ")
    assert (ws / P.MANIFEST).is_symlink() and kept.read_bytes() == before


def test_a_diverged_run_stops_with_an_error_and_records_nothing(kat, ws):
    result = kat("train", "sft", "--name", "h", *FAST, "--max-steps", "1", "--lr", "1e308")
    assert result.exit_code == 1, result.stderr
    assert result.stderr.splitlines()[-2:] == [
        "Error: loss is not finite at step 1: the update made the weights non-finite",
        "Hint: lower --lr (this run used 1e+308), or check the data for empty or extreme items; nothing was recorded",
    ]
    assert "sft/h" not in Manifest.load(ws / P.MANIFEST).runs
    assert not (ws / P.SFT_DIR / "h").exists()  # nothing left behind either


def test_the_nll_table_shows_missing_numbers_as_a_dash():
    from katcli.cli.train_sft import _nll_cells

    assert _nll_cells({"n": 3, "tokens": 12, "nll": None, "perplexity": None}) == ("12", "–", "–")


def test_counts_beyond_int64_are_refused_when_parsed(kat, ws):
    result = kat("train", "sft", *FAST[:2], "--max-steps", "99999999999999999999")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: --max-steps 99999999999999999999 is beyond what kat can count (at most 2^63 − 1 = "
        "9223372036854775807)",
        "Hint: pass a smaller --max-steps",
    ]


def test_a_batch_too_big_for_memory_is_an_error_naming_the_flag_and_the_estimate(kat, ws):
    result = kat("train", "sft", "--name", "h", *FAST, "--batch-size", "1000000000")
    assert result.exit_code == 1
    err = result.stderr.splitlines()
    assert err[-2].startswith("Error: --batch-size 1000000000 needs about 953.7 GiB of memory for its sample "
                              "stream alone, more than the ")
    assert err[-1] == "Hint: lower --batch-size (use --micro-batch-size to split a batch into smaller forward passes)"
    assert not (ws / P.SFT_DIR / "h").exists()


def test_status_lists_unrecorded_run_files_and_the_next_writing_run_removes_them(kat, ws):
    from katcli.pipeline.unrecorded import mark
    from katcli.workspace import Workspace

    killed = ws / P.SFT_DIR / "killed"  # what a kill -9 before the first checkpoint leaves: files and the mark
    killed.mkdir(parents=True)
    mark(Workspace(ws), f"{P.SFT_DIR}/killed", "kat train sft --name killed")
    mark(Workspace(ws), f"{P.RM_DIR}/paused", "kat train rm --name paused")
    mine = ws / P.SFT_DIR / "mine"  # a checkpoint copied in by hand: no run marked it, never touched
    mine.mkdir()
    (mine / "model_000001.pt").write_bytes(b"m")
    (killed / "metrics.jsonl").write_text('{"step":1}\n')
    (killed / "tokenizer.json").write_text("{}")
    resumable = ws / P.RM_DIR / "paused"  # a complete checkpoint: --resume continues from it
    resumable.mkdir(parents=True)
    for name in ("model_000002.pt", "meta_000002.json", "optim_000002.pt", "metrics.jsonl"):
        (resumable / name).write_bytes(b"x")
    out = kat("status").stdout
    assert ("Unrecorded: 2 file(s) in sft_checkpoints/killed/ (13 B) from a run that did not finish, e.g. "
            "sft_checkpoints/killed/metrics.jsonl: the next writing command removes them.") in out
    assert ("Unrecorded: 4 file(s) in rm_checkpoints/paused/ (4 B) from a run that did not finish, e.g. "
            "rm_checkpoints/paused/meta_000002.json: a resumable checkpoint of step 2 (kept until that run is "
            "resumed with --resume or re-run).") in out
    data = json.loads(kat("status", "--json").stdout)
    assert [(u["folder"], u["resumable_step"]) for u in data["unrecorded"]] == [
        ("rm_checkpoints/paused", 2), ("sft_checkpoints/killed", None)]
    assert kat("-q", "train", "sft", "--name", "other", *FAST).exit_code == 0
    assert not killed.exists()
    assert (mine / "model_000001.pt").read_bytes() == b"m"
    assert sorted(p.name for p in resumable.iterdir()) == [
        "meta_000002.json", "metrics.jsonl", "model_000002.pt", "optim_000002.pt"]
    assert [u["folder"] for u in json.loads(kat("status", "--json").stdout)["unrecorded"]] == ["rm_checkpoints/paused"]


def test_an_interrupted_run_without_a_checkpoint_leaves_nothing(ws):
    from katcli.errors import InterruptedRun
    from katcli.pipeline.train_sft import TrainSFTConfig, run_train_sft
    from katcli.workspace import Workspace

    def interrupt(record):
        raise KeyboardInterrupt

    cfg = TrainSFTConfig(name="h", depth=1, max_steps=3, batch_size=4, max_len=64, val_ratio=0.2, device="cpu",
                         eval_every=0, save_every=0)
    with pytest.raises(InterruptedRun) as err:
        run_train_sft(Workspace(ws), cfg, on_step=interrupt)
    assert err.value.message == "Interrupted at step 1; nothing was written (no checkpoint yet)"
    assert not (ws / P.SFT_DIR / "h").exists()


def test_a_model_folder_the_user_names_inside_the_workspace_is_their_input(kat, ws):
    pairs = rmkit.planted_pairs(40)
    tok = train_tokenizer(pairs, encoder=False)
    build_model("llama", tok, ws / "tiny_llama")
    result = kat("train", "rm", "--init", f"hf:{ws / 'tiny_llama'}", *FAST[2:])
    assert result.exit_code == 0, result.stderr
    run = Manifest.load(ws / P.MANIFEST).runs["rm/uniform"]
    config = next(i for i in run.inputs if i.path == "tiny_llama/config.json")
    assert config.external and config.sha256 == __import__("hashlib").sha256(
        (ws / "tiny_llama/config.json").read_bytes()).hexdigest()


def test_an_unrecorded_kat_output_is_refused_with_the_real_command(kat, ws):
    (ws / P.SFT_DIR / "ghost").mkdir(parents=True)
    from katcli.pipeline.upstream import load_judge
    from katcli.workspace import Workspace

    judge = load_judge(Workspace(ws))
    problem = judge.check_input("sft_checkpoints/ghost/model_000001.pt")
    assert problem.hint == "run `kat train sft --name ghost` first"
    stray = judge.check_input("tiny_llama/config.json")
    assert stray.message == "tiny_llama/config.json is not a file kat writes, and it is missing"
    assert "the stage that writes it" not in stray.hint


def test_a_full_disk_names_the_file_being_written_and_the_free_space(kat, ws_dir, monkeypatch):
    import contextlib
    import shutil as sh

    assert kat("pairs", "download", "--from", "sample", "--source", "hh").exit_code == 0

    def disk_full(task, done, total=None):
        if task == "write prefixes":  # a failed write() names no file: kat names the output it was writing
            raise OSError(28, "No space left on device")

    @contextlib.contextmanager
    def fake_progress(state):
        yield disk_full

    monkeypatch.setattr("katcli.cli.prefixes.progress", fake_progress)
    monkeypatch.setattr("shutil.disk_usage", lambda path: sh._ntuple_diskusage(2**30, 2**30, 5 * 2**20))
    result = kat("prefixes")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: No space left on device while writing {ws_dir.resolve() / P.PREFIXES} (5.0 MB free there)")
    assert not (ws_dir / P.PREFIXES).exists()
