"""Typer options made from a config dataclass's fields, so a flag's default, help and choices are written once.

`flag()` fields (`katcli.pipeline.train_config`) carry their help, metavar, panel and choices in their metadata;
`config_command(Cfg)` turns `def cmd(ctx, cfg: Cfg)` into the Typer command taking one option per field and
building `Cfg` from them; `option(Cfg, "field")` is one field's option for a command that takes a few.
Help lists a command's flags in `HELP_ORDER` (within each panel, panels in order of their first flag).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

# The order flags appear in `kat train … --help`, over every objective; a test checks every flag is listed.
HELP_ORDER = (
    "--rm", "--name", "--init", "--chat-template", "--trust-remote-code", "--gradient-checkpointing", "--fsdp",
    "--lora-r", "--lora-alpha", "--lora-dropout", "--lora-targets",
    "--ref", "--depth", "--max-len", "--max-response-len", "--density-aware", "--weights", "--pair-weighting",
    "--val-ratio", "--seed", "--split-seed", "--seeds", "--no-bucketing", "--prompts-per-step", "--group-size",
    "--max-new-tokens", "--temperature", "--top-k", "--top-p", "--beta", "--loss", "--label-smoothing", "--sft-weight",
    "--simpo-gamma", "--desirable-weight", "--undesirable-weight", "--epsilon", "--epsilon-high", "--num-iterations",
    "--scale-rewards", "--advantage", "--loss-type", "--kl-coef", "--kl-estimator", "--gamma", "--lam",
    "--cliprange", "--cliprange-value", "--vf-coef", "--ppo-epochs", "--num-minibatches", "--max-steps",
    "--batch-size", "--micro-batch-size",
    "--lr", "--warmup-steps", "--weight-decay", "--grad-clip", "--reward-centering", "--eval-every",
    "--eval-prompts", "--eval-samples", "--save-every", "--resume", "--device", "--dtype", "--threads", "--report-to",
    "--force",
)


def flag_name(f: dataclasses.Field) -> str:
    """`--max-len` for field `max_len`, unless the field names its flag (`--no-bucketing`, `--prompts-per-step`)."""
    return f.metadata.get("name") or "--" + f.name.replace("_", "-")


def is_negated(f: dataclasses.Field) -> bool:
    """A boolean field set by the absence of its `--no-…` flag."""
    return flag_name(f).startswith("--no-")


def flag_fields(cfg_cls: type) -> list[dataclasses.Field]:
    """The fields of `cfg_cls` that are flags of its command, in help order."""
    skip = set(getattr(cfg_cls, "NO_FLAG", ()))
    found = [f for f in dataclasses.fields(cfg_cls) if "help" in f.metadata and f.name not in skip]
    return sorted(found, key=lambda f: HELP_ORDER.index(flag_name(f)))


def _sci(x: float) -> str:
    """2e-05 → "2e-5": a learning rate as help text writes it."""
    mantissa, exponent = f"{x:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def help_text(cfg_cls: type, f: dataclasses.Field) -> str:
    """The field's help with the class's learning-rate constants filled in (`{LR_INIT}`, `{LR_SCRATCH}`)."""
    text = f.metadata["help"]
    return text.format(LR_INIT=_sci(cfg_cls.LR_INIT), LR_SCRATCH=_sci(cfg_cls.LR_SCRATCH)) if "{" in text else text


@functools.cache
def _hints(cfg_cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cfg_cls)


def _annotation(cfg_cls: type, f: dataclasses.Field) -> Any:
    hints = _hints(cfg_cls)
    meta = f.metadata
    kw: dict[str, Any] = {"help": help_text(cfg_cls, f), "rich_help_panel": meta["panel"]}
    if meta.get("metavar"):
        kw["metavar"] = meta["metavar"]
    if f.default is None:
        kw["show_default"] = False
    return Annotated[hints[f.name], typer.Option(flag_name(f), **kw)]


def _param_name(f: dataclasses.Field) -> str:
    return flag_name(f)[2:].replace("-", "_")


def _parameter(cfg_cls: type, f: dataclasses.Field) -> inspect.Parameter:
    default = (not f.default) if is_negated(f) else f.default
    return inspect.Parameter(_param_name(f), inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=_annotation(cfg_cls, f))


def option(cfg_cls: type, name: str) -> Any:
    """The `Annotated[...]` Typer option of one field, for a command that takes only some of a config's flags."""
    f = next(f for f in dataclasses.fields(cfg_cls) if f.name == name)
    return _annotation(cfg_cls, f)


def config_kwargs(cfg_cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The config's keyword arguments from the command's parsed options (negated flags inverted)."""
    out = {}
    for f in flag_fields(cfg_cls):
        value = values[_param_name(f)]
        out[f.name] = (not value) if is_negated(f) else value
    return out


def config_command(cfg_cls: type) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Make `def cmd(ctx, cfg)` a Typer command with one option per flag field of `cfg_cls`, building `cfg`.

    The command's docstring is its help; the config is built (and validated, inside kat's error boundary) before
    `cmd` runs.
    """

    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def command(ctx: typer.Context, **values: Any) -> None:
            fn(ctx, cfg_cls(**config_kwargs(cfg_cls, values)))

        params = [_parameter(cfg_cls, f) for f in flag_fields(cfg_cls)]
        ctx_param = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
        del command.__wrapped__  # Typer reads the signature below, not fn's
        command.__signature__ = inspect.Signature([ctx_param, *params])  # type: ignore[attr-defined]
        command.__annotations__ = {"ctx": typer.Context, **{p.name: p.annotation for p in params}}
        return command

    return wrap
