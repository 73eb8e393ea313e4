"""Test kit for the data tests: tiny mirrors in the hub's layout, rows in each real schema, an
independent HH parse, and helpers to read kat's outputs.

Not a conftest.py (several conftest modules would collide under one name); tests import from here.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

from katcli.data.sources import sample_root

REPO = Path(__file__).resolve().parents[2]
HH_REAL = REPO.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test-first1000.jsonl.gz"
HH_DIR = Path("Anthropic/hh-rlhf")
UF_DIR = Path("HuggingFaceH4/ultrafeedback_binarized")
SE_DIR = Path("HuggingFaceH4/stack-exchange-preferences")


def write_jsonl_gz(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return path


def hh(turns: list[tuple[str, str]], chosen: str, rejected: str) -> dict[str, str]:
    """An HH-RLHF row: two whole transcripts that share `turns` and differ in the final Assistant turn."""
    head = "".join(f"\n\n{'Human' if r == 'user' else 'Assistant'}: {t}" for r, t in turns)
    return {"chosen": f"{head}\n\nAssistant: {chosen}", "rejected": f"{head}\n\nAssistant: {rejected}"}


def copy_sample(dest: Path, *parts: str) -> Path:
    """Copy (part of) the shipped sample mirror, e.g. copy_sample(tmp, "Anthropic") for HH only."""
    src = sample_root()
    for part in parts or ("Anthropic", "HuggingFaceH4"):
        shutil.copytree(src / part, dest / part, dirs_exist_ok=True)
    return dest


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# -- an independent HH parse (deliberately written differently from katcli.data.hh) ---------------------
def independent_hh(chosen: str, rejected: str) -> tuple[list[dict], str, str, str] | None:
    """(messages, chosen reply, rejected reply, prefix_id) or None when the row yields no pair.

    Character-by-character common prefix, cut at its last "\\n\\nAssistant:"; the prompt is tokenised by
    splitting on the Human marker and then on the Assistant marker; consecutive same-role turns merged.
    """
    n = 0
    limit = min(len(chosen), len(rejected))
    while n < limit and chosen[n] == rejected[n]:
        n += 1
    marker = "\n\nAssistant:"
    cut = chosen[:n].rfind(marker)
    if cut < 0:
        return None
    prompt = chosen[:cut]
    rc, rr = chosen[cut + len(marker):].strip(), rejected[cut + len(marker):].strip()
    if not rc or not rr or rc == rr:
        return None
    chunks = prompt.split("\n\nHuman:")
    if chunks[0].strip():
        return None  # text before the first Human turn
    turns: list[list[str]] = []
    for chunk in chunks[1:]:
        pieces = chunk.split("\n\nAssistant:")
        for j, piece in enumerate(pieces):
            role = "user" if j == 0 else "assistant"
            text = piece.strip()
            if not text:
                continue
            if turns and turns[-1][0] == role:
                turns[-1][1] = turns[-1][1] + "\n\n" + text
            else:
                turns.append([role, text])
    if not turns or turns[0][0] != "user" or turns[-1][0] != "user":
        return None
    messages = [{"role": r, "content": t} for r, t in turns]
    pid = hashlib.md5(" ".join(messages[0]["content"].split()).encode("utf-8")).hexdigest()[:16]
    return messages, rc, rr, pid
