"""The pairs and prefixes stages through StageRun: what the manifest records, and atomic failure."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from datakit import SE_DIR, copy_sample  # noqa: E402

from katcli.data.sources import sample_root  # noqa: E402
from katcli.errors import ConfigError, KatError  # noqa: E402
from katcli.pipeline.pairs import DownloadConfig, ImportConfig, run_download, run_import  # noqa: E402
from katcli.pipeline.prefixes import PrefixesConfig, run_prefixes  # noqa: E402
from katcli.pipeline.upstream import load_judge  # noqa: E402
from katcli.workspace import Manifest, Workspace  # noqa: E402
from katcli.workspace import paths as P  # noqa: E402


def test_download_records_params_external_input_and_stats(ws_dir):
    calls = []
    result = run_download(Workspace(ws_dir), DownloadConfig(from_dir="sample", budget="1.5k", mix="hh=2,uf=1,se=1"),
                          progress=lambda task, done, total=None: calls.append((task, done, total)))
    run = Manifest.load(ws_dir / P.MANIFEST).runs["pairs"]
    assert run.params == {
        "sources": ["hh-rlhf", "ultrafeedback-binarized", "stack-exchange-preferences"], "budget": 1500,
        "mix": {"hh": "2", "uf": "1", "se": "1"}, "from": "sample", "seed": 0, "keep_ties": False,
        "se_pairs_per_question": 1,
    }
    assert [(i.path, i.external) for i in run.inputs] == [(str(sample_root()), True)]
    assert run.stats == result.stats and result.pairs == run.stats["pairs_total"]
    assert {o.path for o in run.outputs} == {P.PAIRS, P.STATS}
    tasks = {t for t, _, _ in calls}
    assert tasks == {"read hh-rlhf", "read ultrafeedback-binarized", "stream stack-exchange-preferences",
                     "write hh-rlhf", "write ultrafeedback-binarized"}
    last = {t: (done, total) for t, done, total in calls}
    assert all(done == total for done, total in last.values())  # every bar ends full


def test_a_failure_midway_writes_nothing_and_keeps_the_manifest(ws_dir, tmp_path):
    ws = Workspace(ws_dir)
    run_download(ws, DownloadConfig(from_dir="sample", budget="50"))
    before = {p: (ws_dir / p).read_bytes() for p in (P.PAIRS, P.STATS, P.MANIFEST)}
    mirror = copy_sample(tmp_path / "mirror")
    bad = mirror / SE_DIR / "data" / "zzz.stackexchange.com" / "train-00000-of-00001.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"PAR1 truncated")  # read after HH and UF were already parsed
    with pytest.raises(KatError, match="cannot read stack-exchange-preferences file"):
        run_download(ws, DownloadConfig(from_dir=str(mirror), budget="100k"))
    assert {p: (ws_dir / p).read_bytes() for p in before} == before
    assert sorted(x.name for x in (ws_dir / "data").iterdir()) == ["pairs_all.jsonl", "stats.txt"]


def test_config_errors_name_the_flag():
    for cfg, msg in [
        (DownloadConfig(sources=("zz",)), "--source must be hh, uf or se, got 'zz'"),
        (DownloadConfig(mix="hh=0,uf=0,se=0"), "--mix gives every chosen source weight 0"),
        (DownloadConfig(seed=-1), "--seed must be at least 0"),
        (DownloadConfig(budget="0"), "--budget must be at least 1, got '0'"),
    ]:
        with pytest.raises(ConfigError) as err:
            cfg.options()
        assert err.value.message == msg


def test_import_then_prefixes_then_download_replaces_the_pairs_run(ws_dir, tmp_path):
    ws = Workspace(ws_dir)
    src = tmp_path / "mine.jsonl"
    src.write_text('{"prompt": "Hi", "chosen": "Hello!", "rejected": "No."}\n'
                   '{"prompt": "Hi", "chosen": "Hey there!", "rejected": "Go away."}\n', encoding="utf-8")
    result = run_import(ws, ImportConfig(files=(src,)))
    assert result.pairs == 2
    run = Manifest.load(ws_dir / P.MANIFEST).runs["pairs"]
    assert run.inputs[0].path == str(src.resolve()) and run.inputs[0].sha256 is not None
    pre = run_prefixes(ws, PrefixesConfig())
    assert pre.stats["unique_prefixes"] == 1 and pre.stats["pairs"] == 2
    stats_txt = (ws_dir / P.STATS).read_text(encoding="utf-8")
    assert stats_txt.startswith("[pairs]\norigin: import\n") and "[prefixes]" in stats_txt
    run_download(ws, DownloadConfig(from_dir="sample", budget="10", sources=("uf",), mix="uf=1"))
    manifest = Manifest.load(ws_dir / P.MANIFEST)
    assert manifest.runs["pairs"].stats["kind"] == "download"
    assert load_judge(ws).verdict(manifest.runs["prefixes"]).state == "stale"  # its input changed
    again = run_prefixes(ws, PrefixesConfig())
    assert again.stats["pairs_by_src"] == {"ultrafeedback-binarized": 10}
    assert (ws_dir / P.STATS).read_text(encoding="utf-8").startswith("[pairs]\nbudget: 10\n")
