"""The `tokenizer` stage: train BPE on the pairs' text and record `tokenizer/tokenizer.json` in the manifest.

Input (checked against the manifest): `data/pairs_all.jsonl`; every prefix message's content, every chosen and every
rejected reply is one training text, in file order, optionally capped at `--max-chars` characters in total (the
text that crosses the cap is cut at it, so the cap is exact and the result deterministic). Output: the tokenizer's
canonical JSON, whose sha256 the manifest records. The BPE itself is `katcli.model.tokenizer`; this module only
wires files, parameters and the manifest. It knows nothing about Typer or Rich.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from katcli.errors import ConfigError, KatError
from katcli.pipeline.stage import StageRun
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P
from katcli.workspace.jsonl import iter_json_lines

STAGE = "tokenizer"
OUTPUT = P.TOKENIZER
DEFAULT_VOCAB_SIZE = 32768
MIN_VOCAB_SIZE = 256 + 9
# Compression is measured on a fixed-size head of the training text: cheap, and the same every run.
_COMPRESSION_SAMPLE_CHARS = 1_000_000


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = DEFAULT_VOCAB_SIZE
    max_chars: int | None = None
    force: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.vocab_size < MIN_VOCAB_SIZE:
            raise ConfigError(
                f"--vocab-size must be at least {MIN_VOCAB_SIZE} (256 byte tokens + 9 special tokens)"
            )
        if self.max_chars is not None and self.max_chars < 1:
            raise ConfigError("--max-chars must be at least 1")

    def params(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if k != "force"}


@dataclass(frozen=True)
class TokenizerResult:
    path: Path
    sha256: str
    vocab_size: int
    vocab_size_requested: int
    n_pairs: int
    n_texts: int
    n_chars: int
    bytes_per_token: float
    forced_over: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Counts:
    pairs: int = 0
    texts: int = 0
    chars: int = 0
    sample: list[str] = field(default_factory=list)
    sample_chars: int = 0


def pair_texts(
    path: Path, counts: _Counts, *, max_chars: int | None, total_lines: int | None, progress: ProgressFn
) -> Iterator[str]:
    """Yield the training texts of a pairs file, validating each line's shape."""
    shown = str(path)
    hint = ("each line needs prefix.messages[*].content, chosen and rejected; re-create it with `kat pairs download` "
            "or `kat pairs import`")
    for lineno, row in iter_json_lines(path, hint=hint):
        try:
            messages = row["prefix"]["messages"]
            texts = [m["content"] for m in messages] + [row["chosen"], row["rejected"]]
        except (KeyError, TypeError) as exc:
            raise KatError(f"not a pair record: {exc}", file=shown, line=lineno, hint=hint) from exc
        if not all(isinstance(t, str) for t in texts):
            raise KatError("pair texts must be strings", file=shown, line=lineno)
        counts.pairs += 1
        for text in texts:
            if max_chars is not None and counts.chars + len(text) > max_chars:
                text = text[: max_chars - counts.chars]
            if text:
                counts.texts += 1
                counts.chars += len(text)
                if counts.sample_chars < _COMPRESSION_SAMPLE_CHARS:
                    counts.sample.append(text)
                    counts.sample_chars += len(text)
                yield text
            if max_chars is not None and counts.chars >= max_chars:
                progress("reading pairs", counts.pairs, counts.pairs)
                return
        if counts.pairs % 1000 == 0:
            progress("reading pairs", counts.pairs, total_lines)
    progress("reading pairs", counts.pairs, counts.pairs)


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def run_tokenizer(ws: Workspace, cfg: TokenizerConfig, *, progress: ProgressFn = no_progress) -> TokenizerResult:
    """Train the workspace tokenizer on its pairs and record it."""
    from katcli.model.tokenizer import Tokenizer

    cfg.validate()
    with StageRun(ws, STAGE, params=cfg.params(), force=cfg.force) as run:
        src = run.input(P.PAIRS)
        counts = _Counts()
        texts = pair_texts(
            src, counts, max_chars=cfg.max_chars, total_lines=_count_lines(src), progress=progress
        )
        tokenizer = Tokenizer.train(texts, cfg.vocab_size)
        if counts.texts == 0:
            raise KatError("no text to train the tokenizer on", file=str(src), hint="the pairs file is empty")
        data = tokenizer.to_json_bytes()
        run.output(OUTPUT).write_bytes(data)
        run.describe(OUTPUT, rows=tokenizer.vocab_size)
        sample = "\n".join(counts.sample)
        n_tokens = len(tokenizer.encode(sample))
        bytes_per_token = round(len(sample.encode("utf-8")) / max(1, n_tokens), 4)
        sha = tokenizer.sha256()
        warnings = []
        if tokenizer.vocab_size < cfg.vocab_size:
            warnings.append(
                f"the text supports only {tokenizer.vocab_size:,} ids, fewer than --vocab-size {cfg.vocab_size:,}"
            )
        run.stats.update(
            {
                "vocab_size": tokenizer.vocab_size,
                "vocab_size_requested": cfg.vocab_size,
                "sha256": sha,
                "pairs": counts.pairs,
                "texts": counts.texts,
                "chars": counts.chars,
                "bytes_per_token": bytes_per_token,
            }
        )
        forced_over = list(run.forced_over)
    return TokenizerResult(
        path=ws.abs(OUTPUT),
        sha256=sha,
        vocab_size=tokenizer.vocab_size,
        vocab_size_requested=cfg.vocab_size,
        n_pairs=counts.pairs,
        n_texts=counts.texts,
        n_chars=counts.chars,
        bytes_per_token=bytes_per_token,
        forced_over=forced_over,
        warnings=warnings,
    )
