"""Where a workspace lives and what its files are called.

The layout keeps the seed project's file names so existing experiments stay readable. This module only
names paths; it does not create, hash or record anything, and it knows no stage semantics.
"""

from __future__ import annotations

import os
from pathlib import Path

from katcli.errors import ConfigError, KatError

# Relative paths inside a workspace (POSIX style: they are also the manifest's keys).
PAIRS = "data/pairs_all.jsonl"
PREFIXES = "data/prefixes_all.jsonl"
PREFIX_ID_MAP = "data/prefix_id_map.tsv"
STATS = "data/stats.txt"
EMBED_DIR = "data/embeddings_offline"
EMBEDDINGS = f"{EMBED_DIR}/embeddings.npy"
DENSITY_WEIGHTS = f"{EMBED_DIR}/density_weights.npy"
EMBED_IDS = f"{EMBED_DIR}/ids.json"
EMBED_METADATA = f"{EMBED_DIR}/embeddings_metadata.json"
#: Named sets of density weights beside the default one (`kat embed --name NAME`), from the same embeddings.
WEIGHT_SETS_DIR = f"{EMBED_DIR}/weights"
#: The name of the set `kat embed` writes without `--name` (the files above).
DEFAULT_WEIGHT_SET = "default"
TOKENIZER_DIR = "tokenizer"
#: The tokenizer file: the workspace's under TOKENIZER_DIR, and the copy beside every run's weights.
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER = f"{TOKENIZER_DIR}/{TOKENIZER_FILE}"
RM_DIR = "rm_checkpoints"
SFT_DIR = "sft_checkpoints"
DPO_DIR = "dpo_checkpoints"
GRPO_DIR = "grpo_checkpoints"
KTO_DIR = "kto_checkpoints"
PPO_DIR = "ppo_checkpoints"
MODELS_DIR = "models"
VIZ_DIR = "viz"
EVAL_POLICY_DIR = "eval/policy"
#: In each `eval/policy/<run>/`: the `kat.eval.policy/1` document of the evaluation that wrote it.
EVAL_POLICY_DOCUMENT = "evaluation.json"
#: In a DPO run directory: the reference log-prob cache (`katcli.train.ref_cache`), array and key.
REF_CACHE_ARRAY = "ref_logps.npy"
REF_CACHE_KEY = "ref_logps.json"
REPORTS_DIR = "reports"
MANIFEST = "manifest.json"
# kat's own bookkeeping (lock, hash cache, resumable partial work); never an artifact.
STATE_DIR = ".kat"

ENV_WORKSPACE = "KAT_WORKSPACE"


def weight_set_weights(name: str) -> str:
    """`density_weights.npy` of a weight set: the default one's, or `weights/<name>/density_weights.npy`."""
    return DENSITY_WEIGHTS if name == DEFAULT_WEIGHT_SET else f"{WEIGHT_SETS_DIR}/{name}/density_weights.npy"


def weight_set_metadata(name: str) -> str:
    """How a weight set was made: the default's `embeddings_metadata.json`, or `weights/<name>/weights_metadata.json`."""
    return EMBED_METADATA if name == DEFAULT_WEIGHT_SET else f"{WEIGHT_SETS_DIR}/{name}/weights_metadata.json"


def default_root() -> Path:
    """`$KAT_WORKSPACE`, else the per-user data directory (platformdirs)."""
    env = os.environ.get(ENV_WORKSPACE)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("kat", appauthor=False))


class Workspace:
    """A workspace root plus helpers to move between absolute paths and manifest keys."""

    def __init__(self, root: Path | str) -> None:
        if isinstance(root, str) and not root:  # Path("") would silently mean the current directory
            raise ConfigError(
                "--workspace is empty",
                hint="pass --workspace DIR, or leave it out for the default ($KAT_WORKSPACE, else the per-user "
                "data dir)",
            )
        self.root = Path(root).expanduser().resolve()
        # The nearest part of the path that exists must be a directory, or the workspace can never be created.
        nearest = next((p for p in (self.root, *self.root.parents) if p.exists()), None)
        if nearest is not None and not nearest.is_dir():
            where = "" if nearest == self.root else f": {nearest} is a file"
            raise KatError(
                f"workspace {self.root} is not a directory{where}",
                hint="pass --workspace DIR with a directory (it is created if missing)",
            )

    def abs(self, rel: str) -> Path:
        """The absolute path of a manifest key such as `data/pairs_all.jsonl`."""
        return self.root / rel

    def rel(self, path: Path | str) -> str:
        """The manifest key of a path inside the workspace (POSIX separators)."""
        p = Path(path)
        if not p.is_absolute():
            p = self.root / p
        try:
            return p.resolve().relative_to(self.root).as_posix()
        except ValueError:
            raise KatError(
                f"{path} is outside the workspace {self.root}",
                hint="kat artifacts must live inside the workspace",
            ) from None

    def _escape(self, rel: str) -> tuple[Path, Path] | None:
        """(the first link on the way to `rel`, where it points) when following it leaves the workspace."""
        p = self.root
        for part in Path(rel).parts:
            p = p / part
            if p.is_symlink():
                target = p.resolve()
                if target != self.root and self.root not in target.parents:
                    return p, target
            if not p.exists():
                return None
        return None

    def check_output(self, rel: str) -> Path:
        """The absolute path kat may write `rel` at: never through a symlink that leaves the workspace, never over a
        symlink (outputs are replaced by rename, which would replace the link itself). Raises `KatError`."""
        escape = self._escape(rel)
        if escape is not None:
            link, target = escape
            raise KatError(
                f"{rel} would be written outside the workspace: {self.rel_lexical(link)} is a symlink to {target}",
                hint="kat writes only inside the workspace: replace the link with a real directory or file "
                f"(`rm {link}`) and re-run",
            )
        path = self.abs(rel)
        if path.is_symlink():
            raise KatError(
                f"{rel} is a symlink (to {path.resolve()}), and kat replaces its outputs by rename, which would "
                "replace the link",
                hint=f"replace the link with the file itself (`cp --remove-destination {path.resolve()} {path}`) "
                "and re-run",
            )
        return path

    def check_input(self, rel: str) -> Path:
        """The absolute path of a workspace artifact to read: refused when a symlink takes it outside the workspace
        (what kat records as read must be the workspace's own file). Links inside the workspace are followed."""
        escape = self._escape(rel)
        if escape is not None:
            link, target = escape
            raise KatError(
                f"{rel} is read through a symlink that leaves the workspace: {self.rel_lexical(link)} → {target}",
                hint=f"replace the link with a copy of what it points to (`cp -r --remove-destination {target} "
                f"{link}`); a file of your own enters the workspace with `kat pairs import FILE`",
            )
        return self.abs(rel)

    def rel_lexical(self, path: Path) -> str:
        """`path` relative to the root without resolving links (so a link is named as itself)."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def ensure(self) -> None:
        """Create the root and kat's state directory (writing commands only; status never creates)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)

    def partial_dir(self, name: str) -> Path:
        """A scratch directory for resumable work (e.g. encoded chunks); not an artifact."""
        path = self.state_dir / "partial" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"
