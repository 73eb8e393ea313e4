"""`kat train …` flags come from the config dataclasses: every default, help and choice list is the config's."""

from __future__ import annotations

import pytest
import typer

from katcli.cli.config_options import HELP_ORDER, flag_fields, flag_name
from katcli.devices import DEVICES
from katcli.errors import KatError
from katcli.pipeline import train_config as C
from katcli.train import loss_names

CONFIGS = {"rm": C.TrainRMConfig, "sft": C.TrainSFTConfig, "dpo": C.TrainDPOConfig, "grpo": C.TrainGRPOConfig,
           "kto": C.TrainKTOConfig, "ppo": C.TrainPPOConfig}


def _train_command(name: str):
    from katcli.cli.app import app

    return typer.main.get_command(app).commands["train"].commands[name]


def _options(cmd) -> dict:
    return {p.opts[0]: p for p in cmd.params if isinstance(p, typer.core.TyperOption)}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_each_flag_default_and_choices_are_the_configs(name):
    cfg_cls = CONFIGS[name]
    options = _options(_train_command(name))
    fields = {flag_name(f): f for f in flag_fields(cfg_cls)}
    assert set(options) == set(fields), f"kat train {name}: flags and config fields differ"
    for flag, f in fields.items():
        opt = options[flag]
        expected = (not f.default) if flag.startswith("--no-") else f.default
        assert opt.default == expected, flag
        if f.metadata["choices"]:
            assert opt.metavar == "|".join(f.metadata["choices"]), flag


def test_choice_flags_list_the_registry_they_select_from():
    from katcli.train import dpo_losses, grpo_losses

    assert dpo_losses.LOSSES is loss_names.DPO_LOSSES  # the losses dispatch on the tuple the flag lists
    assert grpo_losses.LOSS_TYPES is loss_names.LOSS_TYPES and grpo_losses.SCALE_REWARDS is loss_names.SCALE_REWARDS
    dpo, grpo, rm = _options(_train_command("dpo")), _options(_train_command("grpo")), _options(_train_command("rm"))
    assert dpo["--loss"].metavar == "|".join(dpo_losses.LOSSES) == "sigmoid|ipo|hinge|robust|simpo|orpo"
    assert grpo["--loss-type"].metavar == "|".join(grpo_losses.LOSS_TYPES)
    assert grpo["--scale-rewards"].metavar == "|".join(grpo_losses.SCALE_REWARDS)
    assert rm["--pair-weighting"].metavar == "|".join(C.WEIGHTINGS)
    assert rm["--device"].metavar == "|".join(DEVICES)


def test_learning_rate_help_names_the_config_constants():
    assert "default 2e-5 with --init, 1e-3 from scratch" in _options(_train_command("sft"))["--lr"].help
    assert (C.TrainConfig.LR_INIT, C.TrainConfig.LR_SCRATCH) == (2e-5, 1e-3)
    grpo = _options(_train_command("grpo"))["--lr"].help
    assert "default 1e-6 with --init, 1e-4 from scratch; 1e-6 is TRL's GRPO default" in grpo
    assert (C.TrainGRPOConfig.LR_INIT, C.TrainGRPOConfig.LR_SCRATCH) == (1e-6, 1e-4)


def test_help_order_lists_every_flag_once():
    assert len(HELP_ORDER) == len(set(HELP_ORDER))
    flags = {flag_name(f) for cls in CONFIGS.values() for f in flag_fields(cls)}
    assert flags == set(HELP_ORDER)


class _Stop(KatError):
    pass


def _built_config(kat, monkeypatch, name: str, *args: str):
    """The config `kat train NAME ARGS` hands its pipeline (stopped before anything runs)."""
    import importlib

    stage = importlib.import_module(f"katcli.pipeline.train_{name}")
    seen = []

    def fake_run(ws, cfg, **kw):
        seen.append(cfg)
        raise _Stop("stopped before training", hint="test")

    monkeypatch.setattr(stage, f"run_train_{name}", fake_run)
    result = kat("train", name, *args)
    assert result.exit_code == 1 and "stopped before training" in result.stderr, result.stderr
    return seen[0]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_no_flags_build_the_configs_defaults(kat, monkeypatch, name):
    required = {"rm": "uniform"} if name in ("grpo", "ppo") else {}
    args = [a for k, v in required.items() for a in (f"--{k}", v)]
    assert _built_config(kat, monkeypatch, name, *args) == CONFIGS[name](**required)


def test_parsed_flags_build_the_config(kat, monkeypatch):
    cfg = _built_config(kat, monkeypatch, "grpo", "--rm", "uniform", "--prompts-per-step", "4", "--no-bucketing",
                        "--loss-type", "grpo", "--lr", "0.5")
    assert cfg == C.TrainGRPOConfig(rm="uniform", batch_size=4, bucketing=False, loss_type="grpo", lr=0.5)
    cfg = _built_config(kat, monkeypatch, "dpo", "--loss", "ipo", "--density-aware", "--pair-weighting", "per-pair")
    assert cfg == C.TrainDPOConfig(loss="ipo", density_aware=True, pair_weighting="per-pair")


def test_a_bad_value_is_the_configs_error(kat):
    result = kat("train", "dpo", "--loss", "nope")
    assert result.exit_code == 1
    assert "--loss must be one of sigmoid, ipo, hinge, robust, simpo, orpo (got 'nope')" in result.stderr
