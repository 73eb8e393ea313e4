"""StageRun: atomic outputs, manifest written last, upstream checks, --force recorded."""

from __future__ import annotations

import json

import pytest
from katfixtures import record_stage

from katcli.errors import UpstreamError
from katcli.pipeline.stage import StageRun
from katcli.workspace import Manifest, Workspace
from katcli.workspace import paths as P


def _manifest_bytes(root):
    return (root / P.MANIFEST).read_bytes()


def test_run_records_outputs_inputs_and_params(populated):
    m = Manifest.load(populated / P.MANIFEST)
    pre = m.runs["prefixes"]
    assert pre.command == "kat test-prefixes"
    assert pre.params == {"fake": True}
    assert [i.path for i in pre.inputs] == [P.PAIRS]
    assert pre.inputs[0].sha256 == m.runs["pairs"].outputs[0].sha256
    assert {o.path for o in pre.outputs} == {P.PREFIXES, P.PREFIX_ID_MAP}
    assert pre.output(P.PREFIXES).rows == 1
    assert pre.output(P.PREFIXES).size == 3
    assert pre.forced is False


def test_exception_mid_write_leaves_no_output_and_unchanged_manifest(populated):
    before = _manifest_bytes(populated)
    old_prefixes = (populated / P.PREFIXES).read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with StageRun(Workspace(populated), "prefixes", command="kat prefixes") as run:
            run.input(P.PAIRS)
            tmp = run.output(P.PREFIXES)
            tmp.write_text("half a fi", encoding="utf-8")
            raise RuntimeError("boom")
    assert _manifest_bytes(populated) == before
    assert (populated / P.PREFIXES).read_bytes() == old_prefixes
    leftovers = [p.name for p in (populated / "data").iterdir() if ".tmp-" in p.name]
    assert leftovers == []


def test_exception_on_fresh_workspace_writes_nothing(ws_dir):
    with pytest.raises(KeyboardInterrupt):
        with StageRun(Workspace(ws_dir), "pairs", command="kat pairs download") as run:
            run.output(P.PAIRS).write_text("{}\n", encoding="utf-8")
            raise KeyboardInterrupt
    assert not (ws_dir / P.PAIRS).exists()
    assert not (ws_dir / P.MANIFEST).exists()


def test_missing_input_names_the_fixing_command(ws_dir):
    with pytest.raises(UpstreamError) as err:
        record_stage(ws_dir, "prefixes", {P.PREFIXES: "x\n"}, inputs=(P.PAIRS,))
    assert err.value.message == "data/pairs_all.jsonl is missing"
    assert err.value.hint == "run `kat pairs download` first"


def test_modified_input_is_refused_then_forced_and_recorded(populated):
    (populated / P.PAIRS).write_text('{"a": 3}\n', encoding="utf-8")
    with pytest.raises(UpstreamError) as err:
        record_stage(populated, "prefixes", {P.PREFIXES: "y\n"}, inputs=(P.PAIRS,))
    assert err.value.message == "data/pairs_all.jsonl was modified after `kat test-pairs` wrote it"
    assert err.value.hint == "re-run `kat pairs download`, or pass --force to use it as it is"
    record_stage(populated, "prefixes", {P.PREFIXES: "y\n", P.PREFIX_ID_MAP: "m\n"}, inputs=(P.PAIRS,), force=True)
    run = Manifest.load(populated / P.MANIFEST).runs["prefixes"]
    assert run.forced is True
    assert run.forced_over == ["data/pairs_all.jsonl was modified after `kat test-pairs` wrote it"]


def test_stale_input_two_stages_down(populated):
    record_stage(populated, "pairs", {P.PAIRS: '{"a": 9}\n'})  # a new download
    with pytest.raises(UpstreamError) as err:
        record_stage(populated, "viz", {"viz/embeddings_3d.json": "{}"}, inputs=(P.EMBEDDINGS,))
    assert err.value.message == (
        "data/embeddings_offline/embeddings.npy is stale: its input data/prefixes_all.jsonl is stale"
    )
    assert err.value.hint == "run `kat embed` first"


def test_newer_run_takes_ownership_of_a_shared_output(populated):
    record_stage(populated, "pairs", {P.PAIRS: '{"a": 1}\n{"a": 2}\n', P.STATS: "pairs stats\n"})
    record_stage(populated, "prefixes", {P.PREFIXES: "p1\n", P.PREFIX_ID_MAP: "a\tp1\n", P.STATS: "both\n"},
                 inputs=(P.PAIRS,))
    m = Manifest.load(populated / P.MANIFEST)
    assert m.owner_of(P.STATS).key == "prefixes"
    assert m.runs["pairs"].output(P.STATS) is None


def test_manifest_is_valid_json_with_schema_version(populated):
    data = json.loads((populated / P.MANIFEST).read_text())
    assert data["schema_version"] == 1
    assert sorted(data["runs"]) == ["embed", "pairs", "prefixes"]
    out = data["runs"]["pairs"]["outputs"][0]
    assert set(out) == {"path", "sha256", "size", "rows"}


def test_read_records_a_stale_input_as_it_is_without_refusing_it(populated):
    from katcli.workspace.hashing import sha256_file

    (populated / P.PAIRS).write_text('{"a": 3}\n', encoding="utf-8")  # prefixes and embed are now stale
    with StageRun(Workspace(populated), "report", command="kat report") as run:
        with pytest.raises(UpstreamError):
            run.input(P.PREFIXES)
        run.read(P.PREFIXES)
        run.output("reports/report.md").write_text("# r\n", encoding="utf-8")
    rec = Manifest.load(populated / P.MANIFEST).runs["report"]
    assert [(i.path, i.sha256) for i in rec.inputs] == [(P.PREFIXES, sha256_file(populated / P.PREFIXES))]
    assert rec.forced is False
