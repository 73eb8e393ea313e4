"""Where each source's files are, and reading their rows through Hugging Face `datasets`.

A source is split into *groups* — HH-RLHF subset × split, UltraFeedback split, Stack Exchange site —
each a list of files in the hub's own layout:

    Anthropic/hh-rlhf/<subset>/{train,test}.jsonl.gz
    HuggingFaceH4/ultrafeedback_binarized/data/{train_prefs,test_prefs}-*.parquet
    HuggingFaceH4/stack-exchange-preferences/data/<site>/train-*.parquet

`locate_mirror(root)` finds them under a local directory laid out like the hub (`--from DIR`, or the sample
shipped in the package). `locate_hub` gets HH-RLHF and UltraFeedback with `snapshot_download` (the HF cache,
so `HF_HUB_OFFLINE=1` works once they were fetched) and *lists* Stack Exchange's ~22 GB instead of
downloading it: its files are `hf://` paths streamed row group by row group. Either way `iter_file` reads
every file the same way — `datasets.load_dataset(<json|parquet>, data_files=[file], streaming=True)`, in
Arrow batches turned into row dicts — so the mirror and the hub share one code path.

This module knows file layouts and the hub; it knows nothing about row contents, budgets or pairs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from katcli.data import hh, schema, ultrafeedback
from katcli.errors import ConfigError, KatError

REPOS: dict[str, str] = {
    schema.HH: "Anthropic/hh-rlhf",
    schema.UF: "HuggingFaceH4/ultrafeedback_binarized",
    schema.SE: "HuggingFaceH4/stack-exchange-preferences",
}
SAMPLE = "sample"
SE_COLUMNS = ["qid", "question", "answers"]
_LAYOUT_HINT = {
    schema.HH: "DIR/Anthropic/hh-rlhf/<subset>/{train,test}.jsonl.gz",
    schema.UF: "DIR/HuggingFaceH4/ultrafeedback_binarized/data/{train_prefs,test_prefs}-*.parquet",
    schema.SE: "DIR/HuggingFaceH4/stack-exchange-preferences/data/<site>/train-*.parquet",
}
_ALLOW = {
    schema.HH: [f"{s}/{sp}.jsonl.gz" for s in hh.SUBSETS for sp in ("train", "test")],
    schema.UF: [f"data/{stem}-*.parquet" for stem in ultrafeedback.SPLIT_FILES.values()],
    schema.SE: ["data/*/train-*.parquet"],
}


@dataclass(frozen=True)
class Group:
    """One readable unit of a source: its files are read in order as one stream of rows."""

    source: str
    name: str  # "harmless-base/train", "train", "cooking.stackexchange.com"
    split: str
    files: tuple[str, ...]  # local paths or hf:// URLs
    size: int  # bytes, for ordering and progress
    subset: str | None = None  # HH subset or SE site
    kind: str | None = None  # the `datasets` builder (json, parquet, csv) when not told by the file names
    columns: tuple[str, ...] | None = None  # the columns to read (parquet), when the group knows them

    @property
    def builder(self) -> str:
        if self.kind is not None:
            return self.kind
        return "json" if self.files[0].endswith((".jsonl.gz", ".jsonl", ".json.gz")) else "parquet"


@dataclass
class Located:
    source: str
    origin: str  # where the files came from, for the summary and the manifest
    groups: list[Group]
    missing: list[str] = field(default_factory=list)  # expected groups the mirror does not hold
    root: Path | None = None  # a local directory read (a `--dataset DIR`), for the manifest


def sample_root() -> Path:
    """The small mirror shipped inside the package (`--from sample`)."""
    from importlib.resources import files

    return Path(str(files("katcli") / "sample"))


def resolve_from(from_dir: str) -> Path:
    if from_dir == SAMPLE:
        return sample_root()
    root = Path(from_dir).expanduser()
    if not root.is_dir():
        raise ConfigError(
            f"--from: {from_dir} is not a directory",
            hint="pass a local mirror with the hub's layout, e.g. DIR/Anthropic/hh-rlhf/..., or --from sample",
        )
    return root.resolve()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def scan_repo_dir(source: str, repo_dir: Path) -> tuple[list[Group], list[str]]:
    """The groups found in one repository's directory (mirror or HF snapshot), and the expected missing."""
    groups: list[Group] = []
    missing: list[str] = []
    if source == schema.HH:
        for subset in hh.SUBSETS:
            for split in ("train", "test"):
                f = repo_dir / subset / f"{split}.jsonl.gz"
                if f.is_file():
                    groups.append(Group(source, f"{subset}/{split}", split, (str(f),), _size(f), subset))
                else:
                    missing.append(f"{subset}/{split}")
    elif source == schema.UF:
        for split, stem in ultrafeedback.SPLIT_FILES.items():
            files = sorted((repo_dir / "data").glob(f"{stem}-*.parquet"))
            if files:
                groups.append(
                    Group(source, split, split, tuple(map(str, files)), sum(map(_size, files)))
                )
            else:
                missing.append(split)
    elif source == schema.SE:
        data = repo_dir / "data"
        sites = sorted(p for p in data.iterdir() if p.is_dir()) if data.is_dir() else []
        for site_dir in sites:
            files = sorted(site_dir.glob("train-*.parquet"))
            if files:
                groups.append(
                    Group(source, site_dir.name, "train", tuple(map(str, files)),
                          sum(map(_size, files)), site_dir.name)
                )
    else:  # pragma: no cover - callers pass schema.SOURCES only
        raise ValueError(source)
    return groups, missing


def locate_mirror(root: Path, source: str, *, label: str | None = None) -> Located:
    """A source's groups under a local mirror; `label` names it in reports (default: its path)."""
    repo_dir = root / REPOS[source]
    groups, missing = scan_repo_dir(source, repo_dir) if repo_dir.is_dir() else ([], [])
    name = label or str(root)
    if not groups:
        raise KatError(
            f"{source}: the mirror {name} holds none of its files",
            hint=f"expected {_LAYOUT_HINT[source]}; or drop `--source` for this dataset",
        )
    return Located(source, f"mirror {name}", groups, missing)


# -- the hub -------------------------------------------------------------------------------------
def offline_hint() -> str:
    return (
        "no network? use `--from DIR` with a local copy in the hub's layout (or `--from sample`); "
        "or fetch once while online so the HF offline cache (HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1) serves later runs"
    )


def hub_error(repo: str, exc: BaseException) -> KatError:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    if len(reason) > 300:
        reason = reason[:297] + "..."
    return KatError(f"cannot get {repo} from the Hugging Face hub: {reason}", hint=offline_hint())


@contextlib.contextmanager
def quiet_hub_bars() -> Iterator[None]:
    """HF's own tqdm bars would fight kat's Rich bars on stderr; silence them for the call."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


def _snapshot(source: str, *, local_only: bool = False) -> Path:
    from huggingface_hub import snapshot_download

    with quiet_hub_bars():
        path = snapshot_download(
            REPOS[source], repo_type="dataset", allow_patterns=_ALLOW[source], local_files_only=local_only
        )
    return Path(path)


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _list_se_on_hub() -> tuple[list[Group], str]:
    """Stack Exchange site files on the hub, listed (not downloaded), pinned to the current commit."""
    from huggingface_hub import HfApi

    repo = REPOS[schema.SE]
    api = HfApi()
    sha = api.dataset_info(repo).sha
    by_site: dict[str, list[tuple[str, int]]] = {}
    for entry in api.list_repo_tree(repo, path_in_repo="data", recursive=True, revision=sha, repo_type="dataset"):
        path = getattr(entry, "path", "")
        parts = path.split("/")
        if len(parts) == 3 and parts[2].startswith("train-") and parts[2].endswith(".parquet"):
            by_site.setdefault(parts[1], []).append((path, int(getattr(entry, "size", 0) or 0)))
    groups = []
    for site in sorted(by_site):
        files = sorted(by_site[site])
        urls = tuple(f"hf://datasets/{repo}@{sha}/{p}" for p, _ in files)
        groups.append(Group(schema.SE, site, "train", urls, sum(s for _, s in files), site))
    return groups, f"hub {repo}@{sha[:12]}"


def locate_hub(source: str) -> Located:
    """Find (HH, UF: download into the HF cache) a source's files on the hub; KatError when unreachable."""
    repo = REPOS[source]
    if source == schema.SE and not hub_offline():
        try:
            groups, origin = _list_se_on_hub()
        except Exception as exc:  # noqa: BLE001 - any hub failure becomes one clear message
            try:  # sites fetched earlier may still be in the HF cache
                return _located_snapshot(source, _snapshot(source, local_only=True))
            except Exception:  # noqa: BLE001
                raise hub_error(repo, exc) from None
        if not groups:
            raise KatError(f"{repo} lists no data/<site>/train-*.parquet files on the hub", hint=offline_hint())
        return Located(source, origin, groups)
    try:
        # Stack Exchange reaches this point only offline: never snapshot its 22 GB from the network.
        snap = _snapshot(source, local_only=source == schema.SE)
    except Exception as exc:  # noqa: BLE001
        raise hub_error(repo, exc) from None
    return _located_snapshot(source, snap)


def _located_snapshot(source: str, snap: Path) -> Located:
    groups, missing = scan_repo_dir(source, snap)
    if not groups:
        raise KatError(f"the HF cache holds none of {REPOS[source]}'s files", hint=offline_hint())
    return Located(source, f"hub {REPOS[source]} (cache {snap})", groups, missing)


def locate(source: str, from_dir: str | None) -> Located:
    if from_dir is not None:
        # The shipped sample is named, not located: its path differs per install, its content does not.
        return locate_mirror(resolve_from(from_dir), source, label=SAMPLE if from_dir == SAMPLE else None)
    return locate_hub(source)


# -- reading ---------------------------------------------------------------------------------------
def iter_file(group: Group, file: str, *, columns: list[str] | None = None,
              batch_size: int = 512) -> Iterator[dict[str, Any]]:
    """Rows of one file of `group` as dicts, streamed through `datasets` (never loaded whole)."""
    import datasets

    kwargs: dict[str, Any] = {}
    if columns and group.builder == "parquet":
        kwargs["columns"] = columns
    shown = shown_file(file)
    try:
        ds = datasets.load_dataset(group.builder, data_files=[file], split="train", streaming=True, **kwargs)
        # Arrow batches, turned into row dicts in one C++ call each: the default Python format would build
        # per-row dicts, re-batch them into columns, and leave the rows to rebuild here.
        for table in ds.with_format("arrow").iter(batch_size=batch_size):
            if table.num_columns:
                yield from table.to_pylist()
    except Exception as exc:  # noqa: BLE001 - a corrupt or unreadable file is the user's to fix
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        hint = "re-download it, or remove it from the mirror" if not file.startswith("hf://") else offline_hint()
        raise KatError(f"cannot read {group.source} file: {reason}", file=shown, hint=hint) from None



def iter_group(group: Group, *, columns: list[str] | None = None, start_file: int = 0) -> Iterator[dict[str, Any]]:
    """Rows of every file of `group`, starting at file `start_file` and wrapping around."""
    for _, _, row in iter_group_rows(group, columns=columns, start_file=start_file):
        yield row


def iter_group_rows(group: Group, *, columns: list[str] | None = None,
                    start_file: int = 0) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(file index, row in that file, row) of every file of `group`, from file `start_file`, wrapping around."""
    n = len(group.files)
    for k in range(n):
        fi = (start_file + k) % n
        for ri, row in enumerate(iter_file(group, group.files[fi], columns=columns)):
            yield fi, ri, row


def shown_file(file: str) -> str:
    """A file as messages show it: a local path, or an hf:// URL without its repository prefix."""
    return file if not file.startswith("hf://") else file.split("@", 1)[-1]
