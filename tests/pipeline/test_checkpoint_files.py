"""`Judge.checkpoint_files`: what a reader of a checkpoint checks beside the model — every recorded file of its
directory but the log and optimizer, and a reference cache only while it exists (deleted: recomputed; edited: caught)."""

from __future__ import annotations

from katfixtures import record_stage

from katcli.pipeline.upstream import load_judge
from katcli.workspace import Workspace

RUN = "dpo_checkpoints/u"


def _record(root):
    files = ("model_000002.pt", "meta_000002.json", "optim_000002.pt", "metrics.jsonl", "tokenizer.json",
             "ref_logps.npy", "ref_logps.json")
    record_stage(root, "dpo", {f"{RUN}/{f}": f for f in files}, name="u")


def test_the_log_and_optimizer_are_left_out_and_a_deleted_cache_too(tmp_path):
    _record(tmp_path)
    ws = Workspace(tmp_path)
    judge = load_judge(ws)
    model = f"{RUN}/model_000002.pt"
    assert sorted(judge.checkpoint_files(model)) == sorted(
        [model] + [f"{RUN}/{f}" for f in ("meta_000002.json", "tokenizer.json", "ref_logps.npy", "ref_logps.json")]
    )
    ws.abs(f"{RUN}/ref_logps.npy").unlink()
    ws.abs(f"{RUN}/ref_logps.json").write_text("edited", encoding="utf-8")
    files = load_judge(ws).checkpoint_files(model)
    assert f"{RUN}/ref_logps.npy" not in files  # a deleted cache is recomputed by whoever needs it
    assert f"{RUN}/ref_logps.json" in files  # an edited one is still checked …
    assert load_judge(ws).check_input(f"{RUN}/ref_logps.json") is not None  # … and refused as modified
