"""`kat train tokenizer`: train the BPE tokenizer on the pairs' text and print what it wrote.

The objectives (`train rm|sft|dpo|grpo`) are their own modules; all are registered in `cli.commands`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from katcli.cli.options import ForceUpstream
from katcli.cli.render import print_labelled, progress
from katcli.cli.workspace_opt import state_of, workspace_of


_PANEL = "Options"


def tokenizer(
    ctx: typer.Context,
    vocab_size: Annotated[
        int,
        typer.Option(
            "--vocab-size",
            metavar="N",
            help="Vocabulary size, including nanochat's 9 special tokens (at least 265).",
            rich_help_panel=_PANEL,
        ),
    ] = 32768,
    max_chars: Annotated[
        int | None,
        typer.Option(
            "--max-chars",
            metavar="N",
            help="Train on at most N characters of pair text (default: all of it).",
            rich_help_panel=_PANEL,
            show_default=False,
        ),
    ] = None,
    force: ForceUpstream = False,
) -> None:
    """Train a BPE tokenizer (GPT-4-style split, nanochat special tokens) on the pairs' text.

    Reads data/pairs_all.jsonl (prefix messages, chosen and rejected replies) and writes tokenizer/tokenizer.json —
    plain JSON, never a pickle — whose sha256 is recorded in the manifest.

    Example: kat -w ./exp train tokenizer --vocab-size 8192 --max-chars 20000000
    """
    from katcli.pipeline.tokenizer import TokenizerConfig, run_tokenizer

    state = state_of(ctx)
    cfg = TokenizerConfig(vocab_size=vocab_size, max_chars=max_chars, force=force)
    with progress(state) as report:
        result = run_tokenizer(workspace_of(ctx), cfg, progress=report)
    if state.quiet:
        return
    out = state.out
    print_labelled(out, "Forced", result.forced_over)
    print_labelled(out, "Note", result.warnings)
    out.print(
        f"Trained on {result.n_chars:,} characters ({result.n_texts:,} texts from {result.n_pairs:,} pairs)",
        markup=False,
    )
    out.print(
        f"Vocabulary: {result.vocab_size:,} ids ({result.vocab_size - 9:,} merges + 9 special tokens); "
        f"{result.bytes_per_token:.2f} bytes/token",
        markup=False,
    )
    out.print(f"Wrote {result.path} (sha256 {result.sha256[:16]}…)", markup=False)

