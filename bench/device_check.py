"""The checks `bench/device_check.sh` runs between its kat commands, one subcommand each, plus its JSON summary.

    python bench/device_check.py env
    python bench/device_check.py same-files RUN_DIR_A RUN_DIR_B      # weights, optimizer, metrics byte for byte
    python bench/device_check.py cache-state WS RUN EXPECTED         # a DPO run's ref_cache: computed|reused|cached
    python bench/device_check.py tiny-llama WS DIR                   # an hf: Llama (random, tiny) built offline
    python bench/device_check.py cpu-load RUN_DIR                    # its .pt files load with no GPU visible
    python bench/device_check.py same-eval-rm A.json B.json          # two `kat eval rm --json` outputs
    python bench/device_check.py replies GEN_A GEN_B                 # two generations.jsonl: equal replies?
    python bench/device_check.py summary WORK                        # WORK/device_check.json from the step logs

Each check prints one JSON object and exits 1 when what it checks does not hold (`replies` and `same-eval-rm`
report a fraction/difference and exit 0: across batch sizes bf16 replies may differ, which is what they measure).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path


def _print(obj: dict) -> None:
    print(json.dumps(obj, sort_keys=True))


def env() -> int:
    import torch

    out: dict = {"torch": torch.__version__, "cuda": torch.version.cuda, "gpus": []}
    for i in range(torch.cuda.device_count()):
        cap = torch.cuda.get_device_capability(i)
        out["gpus"].append({"name": torch.cuda.get_device_name(i), "capability": f"{cap[0]}.{cap[1]}",
                            "mib": torch.cuda.get_device_properties(i).total_memory // 2**20})
    _print(out)
    return 0 if out["gpus"] else 1


def same_files(a: str, b: str) -> int:
    da, db = Path(a), Path(b)
    names = sorted(p.name for p in da.iterdir() if p.suffix == ".pt" or p.name == "metrics.jsonl")
    differ = [n for n in names if not (db / n).is_file() or (da / n).read_bytes() != (db / n).read_bytes()]
    _print({"compared": names, "differ": differ})
    return 0 if names and not differ else 1


def cache_state(ws: str, run: str, expected: str) -> int:
    stats = json.loads((Path(ws) / "manifest.json").read_text())["runs"][run]["stats"]
    state = stats.get("ref_cache")
    _print({"run": run, "ref_cache": state, "expected": expected, "reused_from": stats.get("reused_from"),
            "recomputed_because": stats.get("recomputed_because")})
    return 0 if state == expected else 1


def tiny_llama(ws: str, directory: str) -> int:
    from hfkit import build_model, train_tokenizer  # tests/model: offline tokenizer + tiny random model

    with open(Path(ws) / "data" / "pairs_all.jsonl", encoding="utf-8") as fh:
        pairs = [json.loads(line) for line in fh]
    path = build_model("llama", train_tokenizer(pairs, encoder=False), Path(directory))
    _print({"hf_model": str(path)})
    return 0


def cpu_load(run_dir: str) -> int:
    files = sorted(str(p) for p in Path(run_dir).glob("*.pt"))
    code = (
        "import json, sys, torch\n"
        "assert not torch.cuda.is_available()\n"
        "seen = set()\n"
        "def where(storage, location):\n"
        "    seen.add(location)\n"
        "    return storage\n"
        "for f in sys.argv[1:]:\n"
        "    torch.load(f, map_location=where, weights_only=True)\n"
        "    torch.load(f, weights_only=True)\n"
        "print(json.dumps(sorted(seen)))\n"
    )
    env_vars = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", code, *files], capture_output=True, text=True, env=env_vars)
    locations = json.loads(proc.stdout) if proc.returncode == 0 else None
    _print({"files": len(files), "storage_locations": locations, "error": proc.stderr[-500:] or None})
    return 0 if files and locations == ["cpu"] else 1


def _untimed(obj):
    """A JSON value without wall-clock fields (they differ between any two runs)."""
    if isinstance(obj, dict):
        return {k: _untimed(v) for k, v in obj.items() if not re.search(r"(seconds|_s$|per_s|time)", k)}
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


def same_eval_rm(a: str, b: str) -> int:
    ra, rb = (_untimed(json.loads(Path(p).read_text())) for p in (a, b))
    _print({"equal": ra == rb})
    return 0


def replies(a: str, b: str) -> int:
    rows = [[json.loads(line) for line in Path(p).read_text(encoding="utf-8").splitlines()] for p in (a, b)]
    key = lambda r: (r["prompt_id"], r["sample"])  # noqa: E731
    texts = [{key(r): r["text"] for r in rs} for rs in rows]
    equal = sum(texts[0][k] == texts[1].get(k) for k in texts[0])
    _print({"replies": len(texts[0]), "equal": equal})
    return 0


_WARNING = re.compile(r"([\w.]+) does not have a deterministic implementation")


def summary(work: str) -> int:
    w = Path(work)
    steps = []
    for line in (w / "steps.tsv").read_text(encoding="utf-8").splitlines():
        name, rc, seconds, note = (line.split("\t") + [""] * 4)[:4]
        entry: dict = {"step": name, "rc": int(rc) if rc.lstrip("-").isdigit() else rc, "seconds": int(seconds)}
        if note:
            entry["note"] = note
        mem = w / "logs" / f"{name}.mem"
        values = [int(x) for x in mem.read_text().split()] if mem.is_file() else []
        entry["peak_gpu_mib"] = max(values) if values else None
        out = w / "logs" / f"{name}.out"
        if out.is_file():
            last = [x for x in out.read_text(encoding="utf-8", errors="replace").splitlines() if x.startswith("{")]
            if last and name.startswith(("check_", "env", "bench_")):
                try:
                    entry["result"] = json.loads(last[-1])
                except ValueError:
                    pass
        steps.append(entry)
    nondeterministic = set()
    for err in (w / "logs").glob("*.err"):
        nondeterministic.update(_WARNING.findall(err.read_text(encoding="utf-8", errors="replace")))
    failed = [s["step"] for s in steps if s["rc"] not in (0, "skipped")]
    result = {
        "schema": "kat.device_check/1",
        "ok": not failed,
        "failed": failed,
        "seconds": sum(s["seconds"] for s in steps),
        "ops_without_deterministic_cuda_kernel": sorted(nondeterministic),
        "steps": steps,
    }
    text = json.dumps(result, indent=2, sort_keys=True)
    (w / "device_check.json").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0 if not failed else 1


COMMANDS = {"env": env, "same-files": same_files, "cache-state": cache_state, "tiny-llama": tiny_llama,
            "cpu-load": cpu_load, "same-eval-rm": same_eval_rm, "replies": replies, "summary": summary}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]](*sys.argv[2:]))
