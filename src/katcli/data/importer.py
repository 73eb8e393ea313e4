"""`kat pairs import`: validate a user's JSONL, line by line, into kat's pair schema.

Accepted per line (one JSON object):
- kat's schema: `{"id"?, "prefix": {"messages": [...]}, "chosen", "rejected", "src", "split"?,
  "prefix_id"?, "meta"?}` — a missing `id`, `split` or `prefix_id` is derived;
- the legacy form `{"prompt": str, "chosen": str, "rejected": str}`; a prompt with HH-style markers
  (`"\\n\\nHuman: …\\n\\nAssistant: …"`, or opening with `Assistant:`) becomes its turns by the HH parser's rules
  (empty turns dropped, same-role turns merged) and must start and end with a Human turn; anything else is one
  user message;
- Anthropic/hh-rlhf's own rows `{"chosen": transcript, "rejected": transcript}`, split at their common prefix
  exactly as `kat pairs download` splits them (`katcli.data.hh.parse_row`).

A gzip, bzip2 or xz file (known by its first bytes) is read through the standard library (HH-RLHF ships as
`.jsonl.gz`); a truncated or corrupt stream is an error at the line it broke in, never skipped. zstd and zip files
are refused by name.

Every problem is a `LineError(reason)` that the caller locates as `<file>:<line>`: bytes that are not
UTF-8, a line over `MAX_LINE_BYTES` (read in bounded chunks, never whole), broken JSON, wrong types,
unknown keys, an empty or wrongly ordered prefix, empty or identical replies, a `prefix_id` that does not
match, a duplicate `id`. Without `skip_invalid` the first bad line stops the import; with it, bad lines
are counted and the first few kept for the report. Writes to a caller-owned binary handle (the pipeline
makes the output atomic, so a failed import leaves nothing behind). No workspace or CLI knowledge.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import zlib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from katcli.data import hh, schema
from katcli.data.keys import derived_split, is_prefix_id, prefix_id
from katcli.errors import KatError
from katcli.progress import ProgressFn, no_progress
from katcli.workspace.jsonl import where_in_line

MAX_LINE_BYTES = 16 * 1024 * 1024
REPORT_FIRST = 5
IMPORT_SRC = "import"
_FULL_KEYS = {"id", "prefix", "chosen", "rejected", "src", "split", "prefix_id", "meta"}
_LEGACY_KEYS = {"prompt", "chosen", "rejected"}
_HH_KEYS = {"chosen", "rejected"}
# Compressed files, by their first bytes: the standard library reads these three...
_COMPRESSED = {b"\x1f\x8b": ("gzip", lambda fh: gzip.GzipFile(fileobj=fh, mode="rb")),
               b"BZh": ("bzip2", bz2.BZ2File), b"\xfd7zXZ\x00": ("xz", lzma.LZMAFile)}
# ...and not these, which would otherwise read as "not valid UTF-8 (byte 1 of the line)".
_UNREADABLE = {b"\x28\xb5\x2f\xfd": ("zstd", "zstd -d"), b"PK\x03\x04": ("zip", "unzip")}
_SRC = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ID_BAD = re.compile(r"[\t\r\n]")
_CHUNK = 1 << 20


class LineError(Exception):
    """A bad line; `reason` is shown as `Error: <reason> (<file>:<line>)`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class ImportReport:
    files: list[str]
    lines_read: int = 0
    pairs_written: int = 0
    invalid: int = 0
    first_invalid: list[tuple[str, int, str]] = field(default_factory=list)  # (file, line, reason)
    by_src: Counter = field(default_factory=Counter)
    by_split: Counter = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "files": list(self.files),
            "lines_read": self.lines_read,
            "pairs_written": self.pairs_written,
            "invalid": self.invalid,
            "first_invalid": [{"file": f, "line": n, "reason": r} for f, n, r in self.first_invalid],
            "by_src": {k: self.by_src[k] for k in sorted(self.by_src)},
            "by_split": {k: self.by_split[k] for k in sorted(self.by_split)},
        }


# -- reading lines -------------------------------------------------------------------------------------
def iter_lines(fh: BinaryIO) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, bytes or None when too long, bytes consumed), reading at most MAX_LINE_BYTES + 1 at once."""
    lineno = 0
    while True:
        line = fh.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        lineno += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            consumed = len(line)
            while True:  # skip the rest of the over-long line in bounded chunks
                rest = fh.readline(_CHUNK)
                consumed += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield lineno, None, consumed
            continue
        yield lineno, line, len(line)


# -- validating one record -----------------------------------------------------------------------------
def _text(obj: dict, key: str, where: str | None = None) -> str:
    name = where or key
    if key not in obj:
        raise LineError(f"missing {name!r}")
    value = obj[key]
    if not isinstance(value, str):
        raise LineError(f"{name!r} must be a string, got {schema.json_type(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise LineError(f"{name!r} holds an unpaired surrogate escape (\\ud800-\\udfff)") from None
    if not value.strip():
        raise LineError(f"{name!r} is empty")
    return value.strip()


def validate_messages(messages: object) -> list[dict[str, str]]:
    if not isinstance(messages, list):
        raise LineError(f"'prefix.messages' must be an array, got {schema.json_type(messages)}")
    if not messages:
        raise LineError("'prefix.messages' is empty")
    out = []
    for i, msg in enumerate(messages):
        where = f"prefix.messages[{i}]"
        if not isinstance(msg, dict):
            raise LineError(f"{where!r} must be an object, got {schema.json_type(msg)}")
        extra = set(msg) - {"role", "content"}
        if extra:
            raise LineError(f"{where!r} has unexpected key {sorted(extra)[0]!r} (allowed: role, content)")
        role = msg.get("role")
        if role not in schema.ROLES:
            raise LineError(f"'{where}.role' must be 'user' or 'assistant', got {json.dumps(role)}")
        want = "user" if i % 2 == 0 else "assistant"
        if role != want:
            raise LineError(
                f"'{where}.role' is {role!r} but {want!r} was expected: a prefix alternates user/assistant "
                "starting with user"
            )
        out.append({"role": role, "content": _text(msg, "content", f"{where}.content")})
    if out[-1]["role"] != "user":
        raise LineError("the prefix must end with a user message (the replies answer it)")
    return out


#: Why a legacy prompt transcript yields no prefix, by the HH parser's drop reason.
_TRANSCRIPT_REASONS = {
    schema.PROMPT_NOT_STARTING_WITH_USER: "'prompt' transcript must start with a Human turn",
    schema.PROMPT_NOT_ENDING_WITH_USER: "'prompt' transcript must end with a Human turn (the replies answer it)",
    schema.EMPTY_PROMPT: "'prompt' transcript has no non-empty turn",
}


def _legacy_messages(prompt: str) -> list[dict[str, str]]:
    """A legacy prompt: one user message, or, when it carries Human:/Assistant: markers, its turns by the HH rules."""
    try:
        return hh.text_prompt_messages(prompt)
    except schema.Drop as drop:
        raise LineError(_TRANSCRIPT_REASONS[drop.reason]) from None


#: Why an HH-RLHF row yields no pair, by the HH parser's drop reason.
_HH_REASONS = {
    hh.NO_SHARED_PROMPT: "'chosen' and 'rejected' transcripts share no '\\n\\nAssistant:' turn to reply to",
    schema.PROMPT_NOT_STARTING_WITH_USER: "the shared transcript must start with a Human turn",
    schema.PROMPT_NOT_ENDING_WITH_USER: "the shared transcript must end with a Human turn (the replies answer it)",
    schema.EMPTY_PROMPT: "the shared transcript has no non-empty turn",
    schema.EMPTY_REPLY: "a reply after the shared transcript is empty",
    schema.IDENTICAL_REPLIES: "'chosen' and 'rejected' are identical: no preference to learn",
}


def _hh_record(obj: dict) -> dict[str, Any]:
    """An Anthropic/hh-rlhf row (two whole transcripts) → a pair, by the download's common-prefix rule."""
    _text(obj, "chosen"), _text(obj, "rejected")  # types, surrogates and emptiness, located by key
    try:
        parsed = hh.parse_row(obj["chosen"], obj["rejected"])
    except schema.Drop as drop:
        raise LineError(_HH_REASONS.get(drop.reason, drop.reason)) from None
    pid = prefix_id(parsed.messages)
    return schema.make_pair(
        pair_id=None, messages=parsed.messages, chosen=parsed.chosen, rejected=parsed.rejected, src=IMPORT_SRC,
        split=derived_split(pid), meta={}, pid=pid,
    )


def validate_record(obj: object) -> dict[str, Any]:
    """One parsed JSON value → a pair dict (id may be None: the caller derives it); LineError if invalid."""
    if not isinstance(obj, dict):
        raise LineError(f"a line must be a JSON object, got {schema.json_type(obj)}")
    if set(obj) == _HH_KEYS:
        return _hh_record(obj)
    legacy = "prompt" in obj and "prefix" not in obj
    allowed = _LEGACY_KEYS if legacy else _FULL_KEYS
    extra = sorted(set(obj) - allowed)
    if extra:
        raise LineError(f"unexpected key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")
    if legacy:
        messages = _legacy_messages(_text(obj, "prompt"))
        src, split, pid, meta, pair_id = IMPORT_SRC, None, None, {}, None
    else:
        if "prefix" not in obj:
            raise LineError("missing 'prefix' (or the legacy 'prompt', or HH-RLHF's 'chosen'/'rejected' alone)")
        prefix = obj["prefix"]
        if not isinstance(prefix, dict):
            raise LineError(f"'prefix' must be an object, got {schema.json_type(prefix)}")
        if set(prefix) != {"messages"}:
            extra = sorted(set(prefix) - {"messages"})
            raise LineError(f"'prefix' has unexpected key {extra[0]!r}" if extra else "missing 'prefix.messages'")
        messages = validate_messages(prefix["messages"])
        src = _text(obj, "src")
        if not _SRC.match(src):
            raise LineError(f"'src' must be a short name of letters, digits, '.', '_' or '-', got {src!r}")
        split = obj.get("split")
        if split is not None and split not in schema.SPLITS:
            raise LineError(f"'split' must be 'train' or 'test', got {json.dumps(split)}")
        pid = obj.get("prefix_id")
        if pid is not None and not is_prefix_id(pid):
            raise LineError(f"'prefix_id' must be 16 lowercase hex characters, got {json.dumps(pid)}")
        meta = obj.get("meta", {})
        if not isinstance(meta, dict):
            raise LineError(f"'meta' must be an object, got {schema.json_type(meta)}")
        pair_id = obj.get("id")
        if pair_id is not None:
            if not isinstance(pair_id, str) or not pair_id.strip():
                raise LineError(f"'id' must be a non-empty string, got {json.dumps(pair_id)}")
            if _ID_BAD.search(pair_id):
                raise LineError("'id' must not contain tabs or line breaks")
    chosen, rejected = _text(obj, "chosen"), _text(obj, "rejected")
    if chosen == rejected:
        raise LineError("'chosen' and 'rejected' are identical: no preference to learn")
    computed = prefix_id(messages)
    if pid is not None and pid != computed:
        raise LineError(
            f"'prefix_id' {pid!r} does not match the first user message (expected {computed!r}; "
            "drop the field to have it derived)"
        )
    return schema.make_pair(
        pair_id=pair_id, messages=messages, chosen=chosen, rejected=rejected, src=src,
        split=split or derived_split(computed), meta=meta, pid=computed,
    )


def _derived_id(pair: dict[str, Any]) -> str:
    basis = json.dumps([pair["prefix"]["messages"], pair["chosen"], pair["rejected"]], ensure_ascii=False)
    return "import/" + hashlib.md5(basis.encode("utf-8")).hexdigest()[:16]


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """A line's bytes → pair dict, None for a blank line; LineError when invalid."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineError(f"not valid UTF-8 (byte {exc.start + 1} of the line)") from None
    if not text.strip():
        return None
    try:
        obj = json.loads(text.rstrip("\r\n"))  # so a truncated line's error points into the line
    except json.JSONDecodeError as exc:
        raise LineError(f"broken JSON: {where_in_line(exc)}") from None
    except RecursionError:
        raise LineError("broken JSON: nested too deeply") from None
    return validate_record(obj)


def _file_lines(path: Path, shown: str) -> Iterator[tuple[int, bytes | None, int]]:
    """`iter_lines` of a plain, gzip, bzip2 or xz file; `consumed` counts the file's own (compressed) bytes."""
    with open(path, "rb") as raw_fh:
        head = raw_fh.read(6)
        raw_fh.seek(0)
        for magic, (kind, tool) in _UNREADABLE.items():
            if head.startswith(magic):
                raise KatError(f"the file is {kind}-compressed, which kat does not read", file=shown,
                               hint=f"decompress it first (`{tool} {shown}`), or compress it with gzip")
        kind, opener = next((c for m, c in _COMPRESSED.items() if head.startswith(m)), (None, None))
        fh: BinaryIO = opener(raw_fh) if opener is not None else raw_fh  # type: ignore[operator]
        lineno, pos = 0, 0
        try:
            for lineno, raw, _ in iter_lines(fh):
                now = raw_fh.tell()
                yield lineno, raw, now - pos
                pos = now
        except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
            if kind is None:
                raise
            raise KatError(
                f"the {kind} stream is truncated or corrupt ({exc})", file=shown, line=lineno + 1,
                hint=f"`{kind} -t {shown}` checks the file; re-download or re-compress it",
            ) from None


# -- the import -----------------------------------------------------------------------------------------
def import_pairs(
    paths: list[Path], out: BinaryIO, *, skip_invalid: bool = False, progress: ProgressFn = no_progress
) -> ImportReport:
    """Validate every line of `paths` (in order) and write the pairs to `out`."""
    report = ImportReport(files=[str(p) for p in paths])
    seen: dict[str, tuple[str, int]] = {}
    total = 0
    for p in paths:
        if not p.is_file():
            raise KatError(f"{p} is not a file", hint="pass JSONL files to import")
        total += p.stat().st_size
    done = 0
    for path in paths:
        shown = str(path)
        for lineno, raw, consumed in _file_lines(path, shown):
            report.lines_read += 1
            done += consumed
            try:
                if raw is None:
                    raise LineError(f"line is longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB")
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]  # a UTF-8 byte-order mark, as some editors write
                pair = parse_line(raw)
                if pair is None:
                    continue
                if pair["id"] is None:
                    base = _derived_id(pair)
                    pair["id"], k = base, 1
                    while pair["id"] in seen:  # the same pair twice: keep both, distinct ids
                        k += 1
                        pair["id"] = f"{base}-{k}"
                elif pair["id"] in seen:
                    f0, l0 = seen[pair["id"]]
                    raise LineError(f"duplicate id {pair['id']!r} (first at {f0}:{l0})")
            except LineError as err:
                if not skip_invalid:
                    raise KatError(
                        err.reason, file=shown, line=lineno,
                        hint="fix the line, or pass --skip-invalid to skip bad lines",
                    ) from None
                report.invalid += 1
                if len(report.first_invalid) < REPORT_FIRST:
                    report.first_invalid.append((shown, lineno, err.reason))
                continue
            seen[pair["id"]] = (shown, lineno)
            out.write(schema.encode_pair(pair))
            report.pairs_written += 1
            report.by_src[pair["src"]] += 1
            report.by_split[pair["split"]] += 1
            if report.lines_read % 1000 == 0:
                progress("import pairs (bytes)", done, total)
    progress("import pairs (bytes)", total, total)
    if report.pairs_written == 0:
        raise KatError(
            f"no valid pairs in {', '.join(report.files)} ({report.invalid} invalid lines)",
            hint="each line needs prefix/chosen/rejected/src, the legacy prompt/chosen/rejected, or HH-RLHF's "
            "chosen/rejected transcripts",
        )
    return report
