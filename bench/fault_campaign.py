"""Fault campaign on copies of a quickstart workspace: kill -9, Ctrl-C, symlinks, divergence, huge values.

    python bench/fault_campaign.py [--base WS] [--kills 6] [--sigints 7] [--seed 0] [--work DIR]

For each stage (`train sft|dpo|grpo`, `eval policy`, `report`, `quickstart`), tiny sizes:
- an uninterrupted run on a fresh copy is the reference (every file's sha256, manifest and `.kat/` aside);
- `--kills` times: kill -9 the process group at a random moment of the run, then re-run the same command, and
  count corrupt outputs (`kat status --verify` not ok where the uninterrupted run is ok, or exit ≠ 0), unrecorded files left (temp files and files
  of training run folders no run records) and whether every file is byte-identical to the reference;
- `--sigints` times: SIGINT to the process group (half 0.5–3 s in, half anywhere in the run) and count exit 130
  with exactly one line on stderr (`kat -q`: no progress bars), and nothing recorded unless the run had finished;
then the symlink, divergence and huge-value cases: each must be `Error:` + `Hint:`, exit 1, nothing written outside
the workspace, nothing recorded. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KAT = str(Path(sys.executable).with_name("kat"))
TINY = ["--device", "cpu", "--threads", "1", "--seed", "0"]
TRAIN = ["--max-len", "128", "--val-ratio", "0.2", "--eval-every", "0", *TINY]
STAGES = {
    "train sft": ["train", "sft", "--name", "camp", "--max-steps", "6", "--depth", "1", "--batch-size", "8",
                  "--lr", "2e-3", "--save-every", "2", *TRAIN],
    "train dpo": ["train", "dpo", "--name", "camp", "--init", "sft/uniform", "--max-steps", "4", "--batch-size", "8",
                  "--lr", "1e-3", "--beta", "0.1", "--save-every", "2", *TRAIN],
    "train grpo": ["train", "grpo", "--name", "camp", "--rm", "uniform", "--init", "sft/uniform", "--max-steps", "3",
                   "--prompts-per-step", "4", "--group-size", "2", "--max-new-tokens", "8", "--lr", "1e-3",
                   "--beta", "0.04", "--save-every", "1", "--eval-prompts", "4", *TRAIN],
    "eval policy": ["eval", "policy", "sft/uniform", "dpo/uniform", "--rm", "density", "--prompts", "6",
                    "--samples", "2", "--max-new-tokens", "8", "--seed", "0", "--device", "cpu", "--threads", "1"],
    "report": ["report", "--device", "cpu", "--threads", "1"],
    "quickstart": ["quickstart", "--rm-steps", "4", "--policy-steps", "4"],
}


def snapshot(ws: Path) -> dict[str, str]:
    out = {}
    for p in sorted(ws.rglob("*")):
        rel = p.relative_to(ws).as_posix()
        if p.is_file() and not rel.startswith(".kat/") and rel != "manifest.json":
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def fresh(base: Path | None, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    if base is None:
        dest.parent.mkdir(parents=True, exist_ok=True)
    else:
        shutil.copytree(base, dest, symlinks=True)
    return dest


def start(ws: Path, argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([KAT, "-q", "-w", str(ws), *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def run(ws: Path, argv: list[str]) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    proc = start(ws, argv)
    _, err = proc.communicate()
    return proc.returncode, err, time.perf_counter() - t0


def unrecorded(ws: Path) -> list[str]:
    from katcli.pipeline.unrecorded import find_unrecorded
    from katcli.workspace import Workspace
    from katcli.workspace.leftovers import find_leftovers

    w = Workspace(ws)
    return [str(f.path) for f in find_leftovers(ws)] + [f for u in find_unrecorded(w) for f in u.files]


def not_ok(ws: Path) -> list[str]:
    proc = subprocess.run([KAT, "-w", str(ws), "status", "--verify", "--json"], capture_output=True, text=True)
    return [f"{s['key']}: {s['state']}" for s in json.loads(proc.stdout)["stages"]
            if s.get("last_run") is not None and s["state"] != "ok"]


def manifest_runs(ws: Path) -> dict:
    path = ws / "manifest.json"
    return json.loads(path.read_text())["runs"] if path.exists() else {}


def kill_campaign(name: str, base: Path | None, work: Path, kills: int, rng: random.Random) -> dict:
    argv = STAGES[name]
    ref_ws = fresh(base, work / "ref")
    rc, err, seconds = run(ref_ws, argv)
    assert rc == 0, f"{name} reference failed: {err[-2000:]}"
    reference = snapshot(ref_ws)
    # What `status --verify` says after the uninterrupted run is by design (re-running eval policy makes the
    # report that read it stale): only a state the reference does not show counts as corrupt.
    expected = set(not_ok(ref_ws))
    out = {"reference_s": round(seconds, 1), "kills": 0, "corrupt": 0, "unrecorded_left": 0, "identical": 0,
           "expected_not_ok": sorted(expected), "details": []}
    for k in range(kills):
        ws = fresh(base, work / f"kill{k}")
        at = rng.uniform(0.3, seconds)
        proc = start(ws, argv)
        time.sleep(at)
        alive = proc.poll() is None
        if alive:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        rc, err, _ = run(ws, argv)
        bad, left, same = [b for b in not_ok(ws) if b not in expected], unrecorded(ws), snapshot(ws) == reference
        out["kills"] += 1
        out["corrupt"] += int(rc != 0 or bool(bad))
        out["unrecorded_left"] += len(left)
        out["identical"] += int(same and rc == 0)
        out["details"].append({"at_s": round(at, 2), "killed_alive": alive, "rerun_rc": rc, "not_ok": bad,
                               "left": left[:3], "identical": same})
        shutil.rmtree(ws, ignore_errors=True)
    out["_seconds"] = seconds
    return out


def sigint_campaign(name: str, base: Path | None, work: Path, n: int, seconds: float, rng: random.Random) -> dict:
    argv = STAGES[name]
    out = {"sigints": 0, "exit130_one_line": 0, "finished_first": 0, "recorded_after_interrupt": 0, "bad": []}
    for k in range(n):
        ws = fresh(base, work / f"int{k}")
        before = manifest_runs(ws)
        at = rng.uniform(0.5, 3.0) if k % 2 == 0 else rng.uniform(0.5, max(0.6, seconds))
        proc = start(ws, argv)
        time.sleep(at)
        if proc.poll() is not None:
            out["finished_first"] += 1
            proc.communicate()
            continue
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate()
        lines = err.splitlines()
        out["sigints"] += 1
        ok = proc.returncode == 130 and len(lines) == 1 and lines[0].startswith("Interrupted")
        out["exit130_one_line"] += int(ok)
        after = manifest_runs(ws)
        changed = sorted(k2 for k2 in after if after[k2] != before.get(k2))
        finished = lines == ["Interrupted while exiting: the command had already finished and recorded its outputs."]
        if changed and not finished:
            out["recorded_after_interrupt"] += 1
        if not ok or (changed and not finished):
            out["bad"].append({"at_s": round(at, 2), "rc": proc.returncode, "stderr": lines[-3:], "recorded": changed})
        shutil.rmtree(ws, ignore_errors=True)
    return out


def error_case(ws: Path, argv: list[str], outside: Path | None, key: str | None) -> dict:
    before = manifest_runs(ws)
    rc, err, _ = run(ws, argv)
    lines = err.splitlines()
    return {
        "rc": rc,
        "error_and_hint": len(lines) >= 2 and lines[-2].startswith("Error: ") and lines[-1].startswith("Hint: "),
        "error": lines[-2] if len(lines) >= 2 else err[-300:],
        "written_outside": sorted(p.name for p in outside.rglob("*")) if outside is not None else [],
        "recorded": key is not None and key in manifest_runs(ws) and key not in before,
        "left_in_workspace": unrecorded(ws),
    }


def special_cases(base: Path, work: Path) -> dict:
    sft = ["train", "sft", "--name", "h", "--max-steps", "1", "--depth", "1", "--batch-size", "4", "--max-len", "64",
           "--eval-every", "0", "--save-every", "0", "--device", "cpu", "--threads", "1"]
    cases = {}
    outside = work / "outside"
    ws = fresh(base, work / "special")
    shutil.rmtree(outside, ignore_errors=True)
    outside.mkdir(parents=True)
    (ws / "sft_checkpoints" / "h").symlink_to(outside)
    cases["symlinked_run_folder"] = error_case(ws, sft, outside, "sft/h")
    (ws / "sft_checkpoints" / "h").unlink()
    real = outside / "pairs_all.jsonl"
    shutil.move(ws / "data/pairs_all.jsonl", real)
    (ws / "data/pairs_all.jsonl").symlink_to(real)
    cases["symlinked_input"] = error_case(ws, sft, None, "sft/h")
    (ws / "data/pairs_all.jsonl").unlink()
    shutil.move(real, ws / "data/pairs_all.jsonl")
    kept = outside / "manifest.json"
    shutil.move(ws / "manifest.json", kept)
    (ws / "manifest.json").symlink_to(kept)
    manifest_before = kept.read_bytes()
    case = error_case(ws, sft, None, None)
    case["manifest_still_a_link"] = (ws / "manifest.json").is_symlink() and kept.read_bytes() == manifest_before
    cases["symlinked_manifest"] = case
    (ws / "manifest.json").unlink()
    shutil.move(kept, ws / "manifest.json")
    cases["diverged_lr_1e308"] = error_case(ws, [*sft, "--lr", "1e308"], None, "sft/h")
    cases["batch_size_1e9"] = error_case(ws, [*sft, "--batch-size", "1000000000"], None, "sft/h")
    cases["max_steps_1e20"] = error_case(ws, [*sft, "--max-steps", "99999999999999999999"], None, "sft/h")
    for c in cases.values():
        c["pass"] = (c["rc"] == 1 and c["error_and_hint"] and not c["written_outside"] and not c["recorded"]
                     and not c["left_in_workspace"] and c.get("manifest_still_a_link", True))
    return cases


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=Path, help="a finished quickstart workspace (default: build one)")
    ap.add_argument("--kills", type=int, default=6)
    ap.add_argument("--sigints", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--sigint-only", default="", help="stages whose kill -9 part is skipped (run elsewhere)")
    ap.add_argument("--no-special", action="store_true", help="skip the symlink, divergence and huge-value cases")
    ap.add_argument("--partial", type=Path, help="rewrite this file with the results so far after each stage")
    args = ap.parse_args()
    # A campaign started in the background (`cmd &` in a script, nohup) inherits SIGINT ignored, and so would every
    # kat it starts (kat keeps an inherited SIG_IGN, as Unix programs do): give the children the default action.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="kat-faults-"))
    base = args.base
    if base is None:
        base = work / "base"
        rc, err, _ = run(fresh(None, base), STAGES["quickstart"])
        assert rc == 0, err[-2000:]
    t0 = time.perf_counter()
    result: dict = {"base": str(base), "stages": {}}
    for name in args.stages.split(","):
        stage_base = None if name == "quickstart" else base
        skip = name in args.sigint_only.split(",")
        kills = kill_campaign(name, stage_base, work / name.replace(" ", "_"), 0 if skip else args.kills, rng)
        seconds = kills.pop("_seconds")
        ints = sigint_campaign(name, stage_base, work / name.replace(" ", "_"), args.sigints, seconds, rng)
        result["stages"][name] = {**kills, **ints}
        if args.partial is not None:
            args.partial.write_text(json.dumps(result, indent=1))
    result["special"] = {} if args.no_special else special_cases(base, work)
    stages = result["stages"].values()
    result["totals"] = {
        "kills": sum(s["kills"] for s in stages), "corrupt": sum(s["corrupt"] for s in stages),
        "unrecorded_left": sum(s["unrecorded_left"] for s in stages),
        "identical": sum(s["identical"] for s in stages),
        "sigints": sum(s["sigints"] for s in stages), "exit130_one_line": sum(s["exit130_one_line"] for s in stages),
        "recorded_after_interrupt": sum(s["recorded_after_interrupt"] for s in stages),
        "special_pass": sum(c["pass"] for c in result["special"].values()), "special_cases": len(result["special"]),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
