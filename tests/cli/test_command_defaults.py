"""The commands outside `kat train` objectives: each flag's default is its pipeline config's, each choice its registry's.

These commands keep explicit Typer signatures (their configs live in the stage modules); this test is what keeps
the two from drifting. Flags with no config field are listed per command: they only shape what is printed.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import pytest
import typer

# command path → (config class or pipeline function, {flag parameter: config field}, presentation-only parameters)
CONFIGS = {
    "embed": ("katcli.pipeline.embed:EmbedConfig", {}, ()),
    "pairs download": ("katcli.pipeline.pairs:DownloadConfig",
                       {"source": "sources", "dataset": "datasets", "split": "splits"}, ()),
    "pairs import": ("katcli.pipeline.pairs:ImportConfig", {}, ()),
    "prefixes": ("katcli.pipeline.prefixes:PrefixesConfig", {}, ()),
    "quickstart": ("katcli.pipeline.quickstart:QuickstartConfig", {}, ("workspace",)),
    "report": ("katcli.pipeline.report:ReportConfig", {}, ("open_page",)),
    "train tokenizer": ("katcli.pipeline.tokenizer:TokenizerConfig", {}, ()),
    "viz": ("katcli.pipeline.viz:VizConfig", {}, ("open_page",)),
    "import nanochat": ("katcli.pipeline.nanochat_import:ImportConfig", {}, ()),
    "eval policy": ("katcli.pipeline.eval_policy:EvalPolicyConfig", {"rm": "rms"}, ("as_json",)),
    "eval rm": ("katcli.pipeline.eval_rm:run_eval_rm", {}, ("as_json",)),
}


def _command(path: str):
    from katcli.cli.app import app

    cmd = typer.main.get_command(app)
    for name in path.split():
        cmd = cmd.commands[name]
    return cmd


def _defaults(target: str) -> dict:
    module, name = target.split(":")
    obj = getattr(importlib.import_module(module), name)
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        return out
    return {p.name: p.default for p in inspect.signature(obj).parameters.values() if p.default is not p.empty}


def _plain(value):
    value = getattr(value, "value", value)  # an Enum choice
    return tuple(_plain(v) for v in value) if isinstance(value, (list, tuple)) else value


@pytest.mark.parametrize("path", sorted(CONFIGS))
def test_each_flag_default_is_the_configs(path):
    target, rename, presentation = CONFIGS[path]
    defaults = _defaults(target)
    options = [p for p in _command(path).params if isinstance(p, typer.core.TyperOption) and p.name != "help"]
    assert options
    for opt in options:
        if opt.name in presentation:
            continue
        field = rename.get(opt.name, opt.name)
        assert field in defaults, f"kat {path} {opt.opts[0]}: no such config field {field!r}"
        default = _plain(opt.default)
        expected = _plain(defaults[field])
        if default is None and opt.multiple:  # a repeatable flag given no value: the config's default applies
            continue
        assert default == expected, f"kat {path} {opt.opts[0]}: {default!r} vs the config's {expected!r}"


def _choices(path: str, flag: str) -> tuple[str, ...]:
    opt = next(p for p in _command(path).params if flag in getattr(p, "opts", ()))
    if getattr(opt.type, "choices", None):
        return tuple(_plain(c) for c in opt.type.choices)
    return tuple(opt.metavar.split("|"))


def test_choice_flags_list_their_registry():
    from katcli.data.schema import SHORT_NAMES
    from katcli.density.knn import INDEXES
    from katcli.density.text import TEXT_MODES
    from katcli.devices import DEVICES
    from katcli.pipeline.nanochat_import import SOURCE_NAMES
    from katcli.viz.page import COLOR_MODES
    from katcli.viz.projection import METHODS

    assert _choices("embed", "--text") == TEXT_MODES
    assert _choices("embed", "--device") == DEVICES
    assert _choices("embed", "--index") == INDEXES  # typed out: knn imports numpy, which `kat --help` must not
    assert _choices("viz", "--method") == METHODS  # likewise: projection imports numpy
    assert _choices("viz", "--color") == COLOR_MODES
    assert _choices("import nanochat", "--source") == SOURCE_NAMES
    assert _choices("pairs download", "--source") == tuple(SHORT_NAMES)
    for path in ("eval rm", "eval policy", "report"):
        assert _choices(path, "--device") == DEVICES
