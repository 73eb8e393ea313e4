"""Is an artifact fresh? The one judge behind both `kat status` and every stage's input checks.

States, per run and per input file:
- `missing`: an expected output is absent;
- `modified`: a file's checksum differs from what its producer recorded (or nobody recorded it);
- `stale`: a run's inputs changed after it ran — directly (the input's checksum now differs from the
  one read) or transitively (the run that produced an input is itself stale);
- `ok`.
`kat status` trusts the hash cache; a stage's own inputs are hashed afresh (`fresh_sha`), so what it
records is the checksum of the bytes it read, whatever the cache says.
This module reads the manifest and hashes files; it never writes artifacts and knows no stage internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from katcli.errors import UpstreamError
from katcli.pipeline import registry
from katcli.workspace import HashCache, Manifest, RunRecord, Workspace, sha256_file
from katcli.workspace import paths as P

OK, MISSING, MODIFIED, STALE = "ok", "missing", "modified", "stale"


@dataclass
class RunVerdict:
    state: str
    reasons: list[str] = field(default_factory=list)


class Judge:
    """Memoised freshness verdicts over one manifest snapshot."""

    def __init__(self, ws: Workspace, manifest: Manifest, hasher: HashCache) -> None:
        self.ws = ws
        self.manifest = manifest
        self.hasher = hasher
        self._sha: dict[str, str | None] = {}
        self._verdicts: dict[str, RunVerdict] = {}

    def current_sha(self, rel: str) -> str | None:
        """The file's checksum now, or None when it does not exist."""
        if rel not in self._sha:
            path = self.ws.abs(rel)
            self._sha[rel] = self.hasher.sha256(path) if path.is_file() else None
        return self._sha[rel]

    def fresh_sha(self, rel: str) -> str | None:
        """The checksum of the file's bytes now, read afresh (never from the cache), as a stage records it.

        Later checks in this snapshot use the same value, and the cache learns it for `kat status`.
        """
        path = self.ws.abs(rel)
        digest = sha256_file(path) if path.is_file() else None
        if digest is not None:
            self.hasher.remember(path, digest)
        if self._sha.get(rel, digest) != digest:
            self._verdicts.clear()  # judged on the cached value, which was wrong
        self._sha[rel] = digest
        return digest

    def verdict(self, run: RunRecord) -> RunVerdict:
        if run.key in self._verdicts:
            return self._verdicts[run.key]
        self._verdicts[run.key] = RunVerdict(STALE, ["depends on itself"])  # cycle guard
        v = self._judge(run)
        self._verdicts[run.key] = v
        return v

    def _judge(self, run: RunRecord) -> RunVerdict:
        missing = [o.path for o in run.outputs if self.current_sha(o.path) is None]
        if missing:
            return RunVerdict(MISSING, [f"{p} is missing" for p in missing])
        if not run.outputs:
            return RunVerdict(MISSING, ["the run recorded no outputs"])
        modified = [o.path for o in run.outputs if self.current_sha(o.path) != o.sha256]
        if modified:
            return RunVerdict(MODIFIED, [f"{p} changed after `{registry.shown_command(run.command)}` wrote it" for p in modified])
        reasons: list[str] = []
        for inp in run.inputs:
            if inp.external:
                continue
            now = self.current_sha(inp.path)
            if now is None:
                reasons.append(f"its input {inp.path} is gone")
            elif now != inp.sha256:
                reasons.append(f"its input {inp.path} changed after this run")
            else:
                owner = self.manifest.owner_of(inp.path)
                if owner is not None and owner.key != run.key and self.verdict(owner).state == STALE:
                    reasons.append(f"its input {inp.path} is stale")
        return RunVerdict(STALE, reasons) if reasons else RunVerdict(OK)

    def check_input(self, rel: str) -> UpstreamError | None:
        """Why `rel` must not be used as an input now, or None when it is fine."""
        now = self.current_sha(rel)
        owner = self.manifest.owner_of(rel)
        # The run that wrote it is re-run as it was recorded (flags kept); otherwise the registry's command.
        fix = registry.rerun_command(owner.key, owner.command) if owner is not None else registry.fix_command(rel)
        if fix is None:  # no stage writes it: a file of the user's, which a stage reads only when named explicitly
            return UpstreamError(
                f"{rel} is not a file kat writes" + ("" if now is not None else ", and it is missing"),
                hint="name your own files explicitly (`kat pairs import FILE`, `--init hf:DIR`, `--rm DIR`): kat "
                "then records them as your inputs",
            )
        if now is None:
            return UpstreamError(f"{rel} is missing", hint=f"run `{fix}` first")
        if owner is None:
            return UpstreamError(
                f"{rel} is not recorded in the manifest",
                hint=f"run `{fix}` to produce it, or pass --force to use it as it is",
            )
        recorded = owner.output(rel)
        if recorded is not None and recorded.sha256 != now:
            return UpstreamError(
                f"{rel} was modified after `{registry.shown_command(owner.command)}` wrote it",
                hint=f"re-run `{fix}`, or pass --force to use it as it is",
            )
        v = self.verdict(owner)
        if v.state == STALE:
            return UpstreamError(
                f"{rel} is stale: {v.reasons[0]}",
                hint=f"run `{fix}` first",
            )
        return None


    def checkpoint_files(self, rel_model: str) -> list[str]:
        """What a reader of the checkpoint `rel_model` loads, to check as its inputs: every output its run recorded
        in that directory (meta, tokenizer, Hugging Face files, reference cache) except the training log and the
        optimizer state. A deleted reference cache is left out: it is a cache, recomputed from the reference by
        whoever needs it (an edited one is still checked). Just `rel_model` when no run recorded it (`check_input`
        then says so)."""
        owner = self.manifest.owner_of(rel_model)
        if owner is None:
            return [rel_model]
        folder = rel_model.rsplit("/", 1)[0] + "/"
        files = [o.path for o in owner.outputs if o.path.startswith(folder) and "/" not in o.path[len(folder):]]
        skip = ("metrics.jsonl", "optim_")
        cache = (P.REF_CACHE_ARRAY, P.REF_CACHE_KEY)
        return [rel_model] + [
            f for f in files
            if f != rel_model and not f[len(folder):].startswith(skip)
            and not (f[len(folder):] in cache and not self.ws.abs(f).exists())
        ]


def load_judge(ws: Workspace, *, verify: bool = False) -> Judge:
    cache_file: Path | None = ws.state_dir / "hash_cache.json" if ws.root.exists() else None
    return Judge(ws, Manifest.load(ws.manifest_path), HashCache(cache_file, verify=verify))
