"""Acceptance on a real quickstart workspace: the report's tables hold the numbers of `kat eval policy --json` and
`kat eval rm --json`, its page shows every figure offline, and the same workspace gives the same report bytes.

The workspace is built once for this module by `kat quickstart --rm-steps 10 --policy-steps 10` (about half a
minute on two cores); each test writes its report into a directory of its own.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest
from reportkit import CONSOLE_PROBLEMS, html_tables, inspect_page, markdown_tables, report_files
from typer.testing import CliRunner
from vizkit import chromium, page_requests  # noqa: F401  (chromium is a fixture)

from katcli.workspace import Manifest

pytestmark = pytest.mark.slow

FIGURES = [  # in page order
    "density-weights", "rm-training", "rm-quintiles", "rm-sources", "sft-training", "dpo-training", "grpo-training",
    "ppo-training", "policy-reward", "policy-diversity",
]
GROUPS = {"all prompts": "overall", "Q1 commonest": "Q1", "Q2": "Q2", "Q3": "Q3", "Q4": "Q4", "Q5 rarest": "Q5"}
FAMILIES = {"within": "within prompt", "across": "across prompts", "style": "style"}


@pytest.fixture(scope="module")
def quickstart_ws(tmp_path_factory):
    from katcli.cli.app import app

    root = tmp_path_factory.mktemp("report-quickstart") / "ws"
    with pytest.MonkeyPatch.context() as mp:  # what tests/conftest.py's autouse fixture does per test
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setenv("HF_HOME", str(root.parent / "hf_home"))
        mp.delenv("KAT_WORKSPACE", raising=False)
        result = CliRunner().invoke(
            app, ["quickstart", "--workspace", str(root), "--rm-steps", "10", "--policy-steps", "10"],
            catch_exceptions=False,
        )
    assert result.exit_code == 0, result.output
    return root


def _report(kat, ws, out: str):
    result = kat("report", "--out", out, "--threads", "1", "--device", "cpu", workspace=ws)
    assert result.exit_code == 0, result.output
    return ws / out


def _num(x, signed=False):
    return "–" if x is None else f"{x:+.4g}" if signed else f"{x:.4g}"


def _cell(est, signed=False):
    if not est or est["value"] is None:
        return "–"
    lo, hi = est["ci95"]
    return _num(est["value"], signed) if lo is None else (
        f"{_num(est['value'], signed)} [{_num(lo, signed)}, {_num(hi, signed)}]")


def _delta(est):
    """A paired Δ as the report shows it: the interval, then p (Holm-adjusted in a quintile) and the 80% MDD."""
    text = _cell(est, signed=True)
    if not est or est.get("p") is None:
        return text
    p = est.get("p_holm", est["p"])
    return (text + f" p = {p:.2g}" + (" Holm" if "p_holm" in est else "")
            + (f", MDD {_num(est['mdd80'], False)}" if est.get("mdd80") else ""))


def _eval_policy_args(ws) -> list[str]:
    """The quickstart's `kat eval policy` arguments, from the command its manifest recorded."""
    commands = {r.command for r in Manifest.load(ws / "manifest.json").runs.values() if r.stage == "eval-policy"}
    assert len(commands) == 1, commands  # one evaluation wrote every policy's directory
    argv = shlex.split(commands.pop())
    return argv[argv.index("policy") + 1:]


def test_policy_and_reward_model_tables_hold_the_numbers_of_the_json_outputs(kat, quickstart_ws):
    out = _report(kat, quickstart_ws, "r-numbers")
    kept = (quickstart_ws / "eval" / "policy" / "sft-uniform" / "evaluation.json").read_bytes()
    result = kat("eval", "policy", *_eval_policy_args(quickstart_ws), "--json", workspace=quickstart_ws)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (quickstart_ws / "eval" / "policy" / "sft-uniform" / "evaluation.json").read_bytes() == kept
    rm = doc["reward_models"][0]["name"]
    names = [p["name"] for p in doc["policies"]]
    assert names == ["sft/uniform", "dpo/uniform", "dpo/density", "grpo/uniform", "grpo/density", "ppo/uniform",
                     "ppo/density"]
    measures = [m for f in FAMILIES for m in doc["measures"] if m["family"] == f]
    assert {m["family"] for m in measures} == set(FAMILIES) and len(measures) == 11

    for tables in (markdown_tables((out / "report.md").read_text(encoding="utf-8")),
                   html_tables((out / "report.html").read_text(encoding="utf-8"))):
        reward = next(t for t in tables if t[0][:3] == ["Policy", "Group", "Prompts"])
        assert reward[0] == ["Policy", "Group", "Prompts", f"Reward ({rm})", f"Δ vs {doc['baseline']}"]
        expected = []
        for name in names:
            for label, group in GROUPS.items():
                est = doc["results"][name][f"reward/{rm}"][group]
                delta = "baseline" if name == doc["baseline"] else _delta(est["delta"])
                expected.append([name, label, str(doc["groups"][group]), _cell(est), delta])
        assert reward[1:] == expected

        diversity = next(t for t in tables if t[0][:3] == ["Measure", "Group", "Prompts"])
        assert diversity[0] == ["Measure", "Group", "Prompts", *names]
        expected = [[f"{m['label']} ({FAMILIES[m['family']]})", label, str(doc["groups"][group]),
                     *(_cell(doc["results"][n][m["key"]][group]) for n in names)]
                    for m in measures for label, group in GROUPS.items()]
        assert diversity[1:] == expected
        assert sum(c != "–" for row in diversity[1:] for c in row[3:]) > 0.9 * len(names) * len(expected)

    # The reward-model tables: the numbers of the quickstart's `kat eval rm` (both RMs and both DPO policies).
    evaluation = json.loads(kat("eval", "rm", "uniform", "density", "dpo/uniform", "dpo/density", "--json",
                                "--threads", "1", "--device", "cpu", workspace=quickstart_ws).stdout)
    models = {m["name"]: m for m in evaluation["models"]}

    def acc(a):
        return f"{a['accuracy']:.3f} ({a['ci95'][0]:.3f}–{a['ci95'][1]:.3f})"

    for tables in (markdown_tables((out / "report.md").read_text(encoding="utf-8")),
                   html_tables((out / "report.html").read_text(encoding="utf-8"))):
        quint = next(t for t in tables if t[0][:3] == ["Quintile", "Weight range", "Pairs"])
        shown = [c for c in quint[0][3:] if c != "Δ"]
        assert shown == ["uniform", "density", "dpo/uniform", "dpo/density"]  # every RM and DPO run
        for q, row in enumerate(quint[1:]):
            assert row[2:2 + 1 + len(shown)] == [str(models["uniform"]["by_quintile"][q]["n"]),
                                                 *(acc(models[m]["by_quintile"][q]) for m in shown)]
        by_source = next(t for t in tables if t[0][:2] == ["Group", "Pairs"])
        assert by_source[1][:2 + len(shown)] == ["overall", str(evaluation["heldout"]["pairs"]),
                                                  *(acc(models[m]["overall"]) for m in shown)]
        for row in by_source[2:]:
            assert row[2:2 + len(shown)] == [acc(models[m]["by_source"][row[0]]) for m in shown]


def test_report_page_shows_every_figure_offline_and_again_byte_for_byte(kat, quickstart_ws, tmp_path,
                                                                        chromium):  # noqa: F811
    out = _report(kat, quickstart_ws, "r-browser")
    html = (out / "report.html").read_text(encoding="utf-8")
    run = chromium.dump_dom(out / "report.html")
    assert page_requests(run.netlog) == []
    assert [ln for ln in run.console_lines() if CONSOLE_PROBLEMS.search(ln)] == []
    assert re.findall(r'<figure id="fig-([^"]+)"', run.stdout) == FIGURES
    seen = inspect_page(chromium, html, tmp_path / "inspect.html")
    n = str(len(FIGURES))
    assert seen == {"images": n, "decoded": n, "nonblank": n, "figures": ",".join(f"fig-{f}" for f in FIGURES)}

    before = report_files(out)
    _report(kat, quickstart_ws, "r-browser")
    assert report_files(out) == before
