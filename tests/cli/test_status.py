"""`kat status`: exact states on empty, populated, modified, touched and stale workspaces; JSON schema."""

from __future__ import annotations

import json
import os

from katfixtures import record_stage

from katcli.workspace import paths as P

STAGE_KEYS = ["pairs", "prefixes", "embed", "tokenizer", "rm", "sft", "dpo", "grpo", "viz"]


def _states(kat, *extra):
    result = kat("status", "--json", *extra)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    return {row["key"]: row["state"] for row in data["stages"]}, data


def test_empty_workspace_lists_every_stage_missing(kat, ws_dir):
    result = kat("status")
    assert result.exit_code == 0
    titles = ("Preference pairs", "Unique prefixes", "Embeddings & density", "Tokenizer", "Reward model", "SFT policy",
              "DPO policy", "GRPO policy", "3D view")
    for title in titles:
        assert title in result.stdout
    table = [line for line in result.stdout.splitlines() if line.startswith("│ ")]
    assert sum(" missing " in line for line in table) == len(titles)
    assert result.stdout.rstrip().endswith("Next: kat pairs download")
    states, _ = _states(kat)
    assert states == {k: "missing" for k in STAGE_KEYS}
    rows = json.loads(kat("status", "--json").stdout)["stages"]
    # A command that runs as offered: GRPO refuses to start without a reward model.
    assert next(r for r in rows if r["key"] == "grpo")["command"] == "kat train grpo --rm uniform"
    assert not ws_dir.exists(), "status must not create the workspace"


def test_json_schema_is_stable(kat, populated):
    _, data = _states(kat)
    assert set(data) == {"schema", "workspace", "stages", "next_command", "leftovers", "unrecorded"}
    assert data["schema"] == "kat.status/1"
    assert data["next_command"] == "kat train tokenizer"
    row = data["stages"][0]
    assert set(row) == {"key", "stage", "title", "state", "command", "reasons", "artifacts", "last_run", "base_model"}
    assert set(row["artifacts"][0]) == {"path", "exists", "state", "size", "sha256", "rows", "shape"}
    assert set(row["last_run"]) == {"command", "started_at", "finished_at", "kat_version", "forced"}
    assert row["artifacts"][0] == {
        "path": "data/pairs_all.jsonl", "exists": True, "state": "ok", "size": 18,
        "sha256": row["artifacts"][0]["sha256"], "rows": 2, "shape": None,
    }


def test_populated_workspace_is_ok_up_to_embed(kat, populated):
    states, _ = _states(kat)
    assert states == {"pairs": "ok", "prefixes": "ok", "embed": "ok",
                      "tokenizer": "missing", "rm": "missing", "sft": "missing", "dpo": "missing", "grpo": "missing",
                      "viz": "missing"}
    result = kat("status")
    assert "Next: kat train tokenizer" in result.stdout


def test_content_change_is_modified_and_downstream_stale(kat, populated):
    (populated / P.PAIRS).write_text('{"a": 1}\n{"a": 5}\n', encoding="utf-8")  # same size, new content
    states, data = _states(kat)
    assert states["pairs"] == "modified"
    assert states["prefixes"] == "stale"
    assert states["embed"] == "stale"
    assert data["next_command"] == "kat pairs download"
    pairs_row = data["stages"][0]
    assert pairs_row["reasons"] == ["data/pairs_all.jsonl changed after `kat test-pairs` wrote it"]
    result = kat("status")
    assert "Preference pairs: data/pairs_all.jsonl changed after `kat test-pairs` wrote it" in result.stdout


def test_touch_without_change_stays_ok(kat, populated):
    _states(kat)  # warm the hash cache
    path = populated / P.PAIRS
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns + 10**9, st.st_mtime_ns + 10**9))
    states, _ = _states(kat)
    assert states["pairs"] == "ok" and states["prefixes"] == "ok"


def test_same_size_edit_with_mtime_restored_is_modified_and_its_undo_ok(kat, populated):
    _states(kat)
    path = populated / P.PAIRS
    original = path.read_bytes()
    st = path.stat()
    path.write_text('{"a": 1}\n{"a": 7}\n', encoding="utf-8")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # disguise the edit: size and mtime as before
    assert _states(kat)[0]["pairs"] == "modified"  # ctime gives it away, no --verify needed
    path.write_bytes(original)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _states(kat)[0]["pairs"] == "ok"


def test_verify_sees_past_a_cache_that_lies(kat, populated):
    from katcli.workspace.hashing import HashCache

    _states(kat)
    path = (populated / P.PAIRS).resolve()
    recorded = HashCache(populated / ".kat" / "hash_cache.json").sha256(path)
    path.write_text('{"a": 1}\n{"a": 7}\n', encoding="utf-8")
    lying = HashCache(populated / ".kat" / "hash_cache.json")
    lying.remember(path, recorded)  # as on a filesystem whose timestamps are too coarse to see the edit
    lying.save()
    assert _states(kat)[0]["pairs"] == "ok"  # status trusts the cache
    assert _states(kat, "--verify")[0]["pairs"] == "modified"


def test_stale_propagates_two_stages_down(kat, populated):
    record_stage(populated, "pairs", {P.PAIRS: '{"a": 1}\n{"a": 2}\n{"a": 3}\n'})  # a re-download
    states, data = _states(kat)
    assert states["pairs"] == "ok"
    assert states["prefixes"] == "stale"
    assert states["embed"] == "stale"
    by_key = {r["key"]: r for r in data["stages"]}
    assert by_key["prefixes"]["reasons"] == ["its input data/pairs_all.jsonl changed after this run"]
    assert by_key["embed"]["reasons"] == ["its input data/prefixes_all.jsonl is stale"]
    assert data["next_command"] == "kat prefixes"


def test_deleted_output_is_missing(kat, populated):
    (populated / P.PREFIX_ID_MAP).unlink()
    states, data = _states(kat)
    assert states["prefixes"] == "missing"
    assert states["embed"] == "ok"  # its own input (prefixes_all.jsonl) is intact
    assert data["next_command"] == "kat prefixes"


def test_named_runs_get_a_row_each(kat, populated):
    record_stage(populated, "rm", {"rm_checkpoints/uniform/model_000001.pt": "w"}, name="uniform", inputs=(P.PAIRS,))
    record_stage(populated, "rm", {"rm_checkpoints/density/model_000001.pt": "w"}, name="density", inputs=(P.PAIRS,))
    states, _ = _states(kat)
    assert states["rm/density"] == "ok" and states["rm/uniform"] == "ok"
    assert "rm" not in states


def test_forced_run_is_shown(kat, populated):
    (populated / P.PAIRS).write_text("changed\n", encoding="utf-8")
    record_stage(populated, "prefixes", {P.PREFIXES: "q\n", P.PREFIX_ID_MAP: "m\n"}, inputs=(P.PAIRS,), force=True)
    _, data = _states(kat)
    prefixes = next(r for r in data["stages"] if r["key"] == "prefixes")
    assert prefixes["last_run"]["forced"] is True
    assert "Forced: Unique prefixes ran with --force over modified or stale inputs" in kat("status").stdout.splitlines()


def test_unrecorded_files_are_modified(kat, ws_dir):
    (ws_dir / "data").mkdir(parents=True)
    (ws_dir / P.PAIRS).write_text("{}\n", encoding="utf-8")
    states, data = _states(kat)
    assert states["pairs"] == "modified"
    assert data["stages"][0]["reasons"] == ["data/pairs_all.jsonl is not recorded in the manifest"]


def test_corrupt_manifest_is_a_clear_error(kat, ws_dir):
    ws_dir.mkdir()
    (ws_dir / P.MANIFEST).write_text("{not json", encoding="utf-8")
    result = kat("status")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the manifest is unreadable: ")
    assert f"({ws_dir.resolve() / P.MANIFEST})" in result.stderr
    assert "Hint: restore it from a backup" in result.stderr
    assert "Traceback" not in result.output


def test_at_80_columns_something_stale_still_shows_every_command_whole(kat, populated, monkeypatch):
    record_stage(populated, "pairs", {P.PAIRS: '{"a": 1}\n{"a": 2}\n{"a": 3}\n'})  # prefixes, embed now stale
    record_stage(populated, "rm", {"rm_checkpoints/density/model_000001.pt": "w"}, name="density",
                 inputs=(P.PREFIXES,), force=True)  # over a stale input: a forced run
    monkeypatch.setenv("COLUMNS", "80")
    result = kat("status")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    _, data = _states(kat)
    todo = [row for row in data["stages"] if row["state"] != "ok"]
    assert {row["state"] for row in todo} >= {"stale", "missing"}
    assert "Forced: Reward model (density) ran with --force over modified or stale inputs" in lines
    start = lines.index("Run next:")
    listed = lines[start + 1 : start + 1 + len(todo)]
    for row, line in zip(todo, listed):
        assert line.split("  (")[0].strip() == row["command"], line  # the whole command, on one line
        assert line.endswith(f"({row['title']}: {row['state']})")
    table = [line for line in lines if line.startswith("│ ")]
    assert all(len(line) <= 80 for line in table) and "…" not in "".join(table)  # nothing cut short
    for row in data["stages"]:  # each title and state whole within its row
        assert any(line.startswith(f"│ {row['title']} ") and f" {row['state']} " in line for line in table), row


def _record_every_stage(ws, named):
    """tokenizer, a `uniform` run of each of `named` and the 3D view, on top of `populated`."""
    record_stage(ws, "tokenizer", {"tokenizer/tokenizer.json": "t"}, inputs=(P.PAIRS,))
    for stage in named:
        record_stage(ws, stage, {f"{stage}_checkpoints/uniform/model_000001.pt": "w"}, name="uniform",
                     inputs=(P.PAIRS,))
    record_stage(ws, "viz", {"viz/embeddings_3d.json": "{}", "viz/embeddings_3d.html": "<p>"},
                 inputs=(P.EMBEDDINGS,))


def test_a_stale_report_is_next_once_every_required_stage_is_ok(kat, populated):
    # Every stage ok but the report (its input changed): status listed `kat report` under "Run next:" and then
    # ended "Everything is up to date.".
    _record_every_stage(populated, ("rm", "sft", "dpo", "grpo"))
    record_stage(populated, "eval-policy", {"eval/policy/sft-uniform/evaluation.json": "{}"}, name="sft-uniform",
                 inputs=("sft_checkpoints/uniform/model_000001.pt",))
    record_stage(populated, "report", {"reports/report.md": "# r"}, inputs=("eval/policy/sft-uniform/evaluation.json",),
                 command="kat report --threads 1")
    states, data = _states(kat)
    assert set(states.values()) == {"ok"} and data["next_command"] is None
    assert kat("status").stdout.rstrip().endswith("Everything is up to date.")

    record_stage(populated, "eval-policy", {"eval/policy/sft-uniform/evaluation.json": '{"again": 1}'},
                 name="sft-uniform", inputs=("sft_checkpoints/uniform/model_000001.pt",))
    states, data = _states(kat)
    assert [k for k, s in states.items() if s != "ok"] == ["report"]
    assert data["next_command"] == "kat report --threads 1"
    lines = kat("status").stdout.rstrip().splitlines()
    assert lines[-3:] == ["Run next:", "  kat report --threads 1  (Report: stale)", "Next: kat report --threads 1"]


def test_at_80_columns_one_long_command_does_not_push_the_short_ones_past_the_edge(kat, populated, monkeypatch):
    # Commands were padded to the longest: one 150-character `kat train rm …` made every "Run next:" line 160
    # characters wide, so an 80-column terminal wrapped each short command's reason onto a line of its own.
    long = "kat train rm --name density --density-aware " + " ".join(f"--flag-{i} {i}" for i in range(10))
    record_stage(populated, "rm", {"rm_checkpoints/density/model_000001.pt": "w"}, name="density",
                 inputs=(P.PREFIXES,), command=long)
    record_stage(populated, "pairs", {P.PAIRS: '{"a": 1}\n{"a": 2}\n{"a": 3}\n'})  # prefixes, embed, rm stale
    monkeypatch.setenv("COLUMNS", "80")
    lines = kat("status").stdout.splitlines()
    listed = lines[lines.index("Run next:") + 1:]
    listed = listed[: next(i for i, x in enumerate(listed) if not x.startswith("  "))]
    assert f"  {long}  (Reward model (density): stale)" in listed  # too long to fit: whole, unpadded
    short = [x for x in listed if long not in x]
    assert short and all(len(x) <= 80 for x in short), short
    assert len({x.index("  (") for x in short}) == 1  # still aligned with each other


def test_next_is_a_stale_run_whose_inputs_are_all_fresh_not_one_that_reads_another_stale_run(kat, populated):
    # dpo/density reads dpo/uniform's reference log-probs; both went stale when the SFT policy was retrained, and
    # "Next:" offered dpo/density (sorted first), whose re-run dpo/uniform's re-run then made stale again.
    _record_every_stage(populated, ("rm", "grpo"))
    sft = "sft_checkpoints/uniform/model_000001.pt"
    cache = "dpo_checkpoints/uniform/ref_logps.npy"
    record_stage(populated, "sft", {sft: "w1"}, name="uniform", command="kat train sft --name uniform")
    record_stage(populated, "dpo", {"dpo_checkpoints/uniform/model_000001.pt": "p", cache: "c"}, name="uniform",
                 inputs=(sft,), command="kat train dpo --name uniform --init sft/uniform")
    record_stage(populated, "dpo", {"dpo_checkpoints/density/model_000001.pt": "p"}, name="density",
                 inputs=(sft, cache), command="kat train dpo --name density --density-aware --init sft/uniform")
    record_stage(populated, "sft", {sft: "w2"}, name="uniform", command="kat train sft --name uniform")
    states, data = _states(kat)
    assert (states["dpo/density"], states["dpo/uniform"]) == ("stale", "stale")
    assert data["next_command"] == "kat train dpo --name uniform --init sft/uniform"


def test_one_evaluation_that_went_stale_is_one_run_next_line(kat, populated):
    # `kat eval policy a b` records a row per policy; each was listed with the same command, once per policy.
    evaluate = "kat eval policy sft/uniform dpo/uniform --rm uniform"
    for name in ("sft-uniform", "dpo-uniform"):
        record_stage(populated, "eval-policy", {f"eval/policy/{name}/evaluation.json": "{}"}, name=name,
                     inputs=(P.PREFIXES,), command=evaluate)
    record_stage(populated, "pairs", {P.PAIRS: '{"a": 1}\n{"a": 2}\n{"a": 3}\n'})  # prefixes, evals now stale
    lines = kat("status").stdout.splitlines()
    listed = [x for x in lines if x.startswith(f"  {evaluate}")]
    assert listed == [f"  {evaluate}  (Policy eval (dpo-uniform): stale; Policy eval (sft-uniform): stale)"]


def test_at_80_columns_a_long_run_title_wraps_instead_of_cutting_the_state_and_time(kat, populated, monkeypatch):
    # With `Policy eval (grpo-density)` rows the table was 84 columns wide: states came out as `missi…`, shapes as
    # `967×3…` and times as `12-01 16:…`.
    import re

    record_stage(populated, "eval-policy", {"eval/policy/grpo-density-aware-v2/evaluation.json": "{}"},
                 name="grpo-density-aware-v2",
                 inputs=(P.PREFIXES,))
    (populated / P.PREFIXES).write_text("edited\n", encoding="utf-8")  # "modified", the widest state
    monkeypatch.setenv("COLUMNS", "80")
    lines = kat("status").stdout.splitlines()
    table = [x for x in lines if x.startswith("│ ")]
    assert all(len(x) <= 80 for x in table) and "…" not in "".join(table)
    _, data = _states(kat)
    for row in data["stages"]:
        assert any(f"│ {row['state']} " in x for x in table), row["state"]
    times = [x.split("│")[6].strip() for x in table if x.split("│")[6].strip()]
    assert times and all(re.fullmatch(r"\d\d-\d\d \d\d:\d\d|never", t) for t in times), times
    assert any(x.startswith("│ Policy eval ") for x in table) and any("(grpo-density-aware-v2)" in x for x in table)
