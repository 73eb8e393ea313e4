"""`--dataset NAME_OR_DIR`: any preference dataset `datasets` can read, located as groups of files (one per split).

A directory in the hub's layout (`DIR/data/<split>-*.parquet`, `DIR/<split>.jsonl`, `DIR/<split>.csv`, configs
declared in its README, ...) or a hub name (`org/name`) is resolved by `datasets.load_dataset_builder`, which
gives each split's data files; offline (`HF_HUB_OFFLINE=1`), or when the hub cannot be reached, a hub name is
looked up in the HF cache (`snapshot_download(local_files_only=True)`) and read as a directory. The files then
travel the same road as the built-in sources' (`sources.iter_file`: streamed in Arrow batches, hub files row
group by row group), so a budget smaller than the dataset reads only what it takes.

Each dataset is a source of its own, labelled `LABEL` (`--dataset LABEL=NAME_OR_DIR`, or the name's last part),
which is its `src` in the pairs and its name in `--mix`. A split named `train…`/`test…` keeps that side; any other
split's pairs are sided by prefix id (`keys.derived_split`), as Stack Exchange's are. Knows nothing of budgets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from katcli.data import schema, sources
from katcli.data.preference import Columns, FormatError
from katcli.errors import ConfigError, KatError

BUILDERS = ("parquet", "json", "csv")
RESERVED = frozenset({*schema.SHORT_NAMES, *schema.SOURCES, "import"})
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_LAYOUT = "DIR/data/<split>-*.parquet, DIR/<split>.jsonl or DIR/<split>.csv (the hub's layout)"


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # as given: a hub name or a directory
    label: str  # its `src` and `--mix` name
    config: str | None = None
    splits: tuple[str, ...] = ("train",)
    columns: Columns = field(default_factory=Columns)


def default_label(name: str) -> str:
    """A dataset's label from its name: the last part of `org/name` or of a path, as letters, digits, `._-`."""
    base = Path(name.rstrip("/\\")).name or name
    label = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._")[:64]
    return label or "dataset"


def parse_dataset_arg(text: str) -> tuple[str, str]:
    """`LABEL=NAME_OR_DIR` or `NAME_OR_DIR` → (label, name)."""
    label, sep, name = text.partition("=")
    if sep and _LABEL.match(label) and not Path(text).expanduser().exists():
        return label, name
    return default_label(text), text


def make_specs(datasets: tuple[str, ...], *, config: str | None, splits: tuple[str, ...],
               columns: Columns) -> tuple[DatasetSpec, ...]:
    """The `--dataset` sources, each labelled; ConfigError for a clash with another source's name."""
    out: list[DatasetSpec] = []
    for text in datasets:
        label, name = parse_dataset_arg(text)
        if not name.strip():
            raise ConfigError(f"--dataset {text!r} names no dataset")
        clash = "a built-in source" if label in RESERVED else (
            "another --dataset" if any(s.label == label for s in out) else None)
        if clash:
            raise ConfigError(f"--dataset {text}: its label {label!r} is already {clash}'s name",
                              hint=f"label it: --dataset NEWLABEL={name}")
        out.append(DatasetSpec(name, label, config, tuple(dict.fromkeys(splits)) or ("train",), columns))
    return tuple(out)


def kat_split(split: str) -> str:
    """`train…` → train, `test…` → test, anything else "" (each pair sided by its prefix id)."""
    low = split.lower()
    return "train" if low.startswith("train") else "test" if low.startswith("test") else ""


def _is_local(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or Path(name).expanduser().exists()


def _builder(spec: DatasetSpec, where: str):
    import datasets

    try:
        with sources.quiet_hub_bars():
            return datasets.load_dataset_builder(where, name=spec.config)
    except ValueError as exc:
        if "BuilderConfig" in str(exc):
            raise ConfigError(f"--config {spec.config}: {spec.name} {_reason(exc)}") from None
        raise KatError(f"cannot read dataset {spec.name}: {_reason(exc)}", hint=f"expected {_LAYOUT}") from None
    except FileNotFoundError as exc:
        raise KatError(f"cannot read dataset {spec.name}: {_reason(exc)}", hint=f"expected {_LAYOUT}") from None


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _hub_error(name: str, exc: BaseException) -> KatError:
    err = sources.hub_error(name, exc)
    err.hint = (f"no network? pass --dataset DIR (a local copy in the hub's layout), or fill the HF cache once while "
                f"online (`huggingface-cli download --repo-type dataset {name}`) and set HF_HUB_OFFLINE=1")
    return err


def _cached_snapshot(name: str) -> Path:
    from huggingface_hub import snapshot_download

    with sources.quiet_hub_bars():
        return Path(snapshot_download(name, repo_type="dataset", local_files_only=True))


def _resolve(spec: DatasetSpec) -> tuple[object, str, Path | None]:
    """(builder, origin, local root) for a directory, a hub name, or a hub name in the HF cache."""
    if _is_local(spec.name):
        root = Path(spec.name).expanduser()
        if not root.is_dir():
            raise ConfigError(f"--dataset {spec.name} is not a directory",
                              hint=f"pass a dataset directory ({_LAYOUT}) or a hub name like org/name")
        root = root.resolve()
        return _builder(spec, str(root)), f"dataset {root}", root
    if not sources.hub_offline():
        try:
            b = _builder(spec, spec.name)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - unreachable hub: the HF cache may still hold it
            try:
                snap = _cached_snapshot(spec.name)
            except Exception:  # noqa: BLE001
                raise _hub_error(spec.name, exc) from None
            return _builder(spec, str(snap)), f"hub {spec.name} (cache {snap})", None
        return b, f"hub {spec.name}{_revision(b)}", None
    try:
        snap = _cached_snapshot(spec.name)
    except Exception as exc:  # noqa: BLE001
        raise _hub_error(spec.name, exc) from None
    return _builder(spec, str(snap)), f"hub {spec.name} (cache {snap})", None


def _revision(builder) -> str:
    for files in builder.config.data_files.values():
        for f in files:
            if str(f).startswith("hf://") and "@" in str(f):
                return "@" + str(f).split("@", 1)[1].split("/", 1)[0][:12]
    return ""


def _columns_of(kind: str, file: str) -> list[str] | None:
    """The columns `datasets` sees in a file (its schema, or its first rows'), None when it cannot tell."""
    import datasets

    try:
        ds = datasets.load_dataset(kind, data_files=[file], split="train", streaming=True)
    except Exception:  # noqa: BLE001 - reading the file itself reports the problem, located
        return None
    return list(ds.features) if ds.features is not None else None


def _size(file: str) -> int:
    try:
        return Path(file).stat().st_size if not file.startswith("hf://") else 0
    except OSError:
        return 0


def locate_dataset(spec: DatasetSpec) -> sources.Located:
    """The chosen splits' files; Config/KatError for an unknown split or config, a wrong layout or a missing column."""
    builder, origin, root = _resolve(spec)
    kind = builder.name
    if kind not in BUILDERS:
        raise KatError(f"--dataset {spec.name}: kat reads parquet, JSON Lines and CSV datasets, not {kind!r}",
                       hint=f"expected {_LAYOUT}")
    data_files = {str(k): [str(f) for f in v] for k, v in builder.config.data_files.items()}
    groups = []
    for split in spec.splits:
        files = data_files.get(split)
        if not files:
            raise ConfigError(f"--split {split}: {spec.name} has no split {split!r} "
                              f"(it has {', '.join(sorted(data_files)) or 'none'})")
        try:
            wanted = spec.columns.wanted(_columns_of(kind, files[0]))
        except FormatError as err:
            raise KatError(f"row 1 of {spec.label}/{split}: {err.reason}", file=sources.shown_file(files[0]), line=1,
                           hint="name the dataset's columns with --columns prompt=COL,chosen=COL,rejected=COL") from None
        groups.append(sources.Group(spec.label, split, kat_split(split), tuple(files), sum(map(_size, files)),
                                    kind=kind, columns=tuple(wanted) if wanted else None))
    return sources.Located(spec.label, origin, groups, root=root)
