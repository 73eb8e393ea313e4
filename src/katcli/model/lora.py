"""LoRA adapters on Hugging Face backbones, through PEFT (`LoraConfig`, `get_peft_model`): attach, save, merge.

`attach` injects the adapters into an `HFPolicy` / `HFRewardModel` in place (the module keeps its transformers model
as `.hf`, now holding LoRA layers; PEFT's wrapper is kept beside it, not as a submodule, so state-dict keys stay the
module's own). Everything but the adapters is frozen; a reward model's value head is trained in full
(`modules_to_save`, which PEFT's `SEQ_CLS` task sets). `adapter_state` is what a checkpoint holds (the trainable
tensors only: a 7B base is never rewritten), `save_adapter` writes PEFT's own files (`adapter_config.json` +
`adapter_model.safetensors`, loadable by `PeftModel.from_pretrained(base, dir)`), `without_adapters` is the
reference (the same weights with the adapters disabled), `merge_into` folds saved adapters into a base model (a
chain's earlier adapter runs, and `kat export --merge`).

This module knows PEFT and torch; not the workspace, runs' metas or the loop.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from katcli.errors import ConfigError, KatError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# What PEFT's save_pretrained writes into a run directory (README.md: its model card).
ADAPTER_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS, "README.md")
ALL_LINEAR = "all-linear"
BASE_ADAPTERS = "base_adapters"  # a chained run's earlier adapters, merged into the base before its own, in order


@dataclass(frozen=True)
class LoraSpec:
    """`--lora-r/--lora-alpha/--lora-dropout/--lora-targets`; `targets` None: every attention and MLP projection."""

    r: int
    alpha: float
    dropout: float = 0.0
    targets: tuple[str, ...] | None = None

    def peft_config(self, *, reward: bool) -> Any:
        from peft import LoraConfig, TaskType

        # Default: every linear layer of the attention and MLP blocks (PEFT's all-linear leaves the output head
        # out), as QLoRA and TRL's LoRA recipes train; PEFT's own per-model default is only q_proj and v_proj.
        targets: Any = ALL_LINEAR if self.targets in (None, (ALL_LINEAR,)) else list(self.targets)
        return LoraConfig(
            r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets, bias="none",
            task_type=TaskType.SEQ_CLS if reward else TaskType.CAUSAL_LM,
        )

    def to_json(self) -> dict[str, Any]:
        return {"r": self.r, "alpha": self.alpha, "dropout": self.dropout,
                "targets": list(self.targets) if self.targets is not None else None}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LoraSpec:
        targets = d.get("targets")
        return cls(int(d["r"]), float(d["alpha"]), float(d.get("dropout", 0.0)),
                   tuple(targets) if targets is not None else None)


def peft_of(module: Any) -> Any:
    """The PEFT wrapper of an adapted module (None: no adapters)."""
    return module.__dict__.get("_peft")


def attach(module: Any, spec: LoraSpec, *, base_name: str, flag: str = "--lora-targets") -> list[str]:
    """Inject fresh LoRA adapters into `module.hf` (seeded by the caller's RNG); returns the adapted module names.
    `base_name` is what the saved adapter_config.json names as its base model."""
    from peft import get_peft_model

    import warnings

    config = spec.peft_config(reward=bool(getattr(module, "is_reward_model", False)))
    try:
        with warnings.catch_warnings():  # PEFT asks transformers a deprecated question (is_gradient_checkpointing)
            warnings.simplefilter("ignore", FutureWarning)
            peft_model = get_peft_model(module.hf, config)
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        if "target" in first.lower() or "not found" in first.lower():
            names = sorted({n.rsplit(".", 1)[-1] for n, m in module.hf.named_modules() if isinstance(m, torch.nn.Linear)})
            raise ConfigError(
                f"{flag}: no module of this {module.hf.config.model_type} model matches "
                f"{', '.join(spec.targets or ('the default targets',))} ({first})",
                hint=f"name some of its linear layers ({', '.join(names[:12])}) or pass {flag} {ALL_LINEAR}",
            ) from None
        raise KatError(f"cannot add LoRA adapters: {first}", hint=f"check {flag}") from None
    module.__dict__["_peft"] = peft_model
    module.__dict__["_lora_base"] = base_name
    return adapted_modules(module)


def adapted_modules(module: Any) -> list[str]:
    """The module names that carry adapters as PEFT resolved the targets (`q_proj`, …, not per layer), sorted."""
    peft_model = peft_of(module)
    targets = peft_model.peft_config["default"].target_modules
    names = targets if isinstance(targets, (set, list, tuple)) else [str(targets)]
    return sorted({n.rsplit(".", 1)[-1] for n in names})


def adapter_state(module: Any) -> dict[str, torch.Tensor]:
    """The trainable tensors (adapters, and a reward model's head), by the module's own state-dict names."""
    return {name: p.detach() for name, p in module.named_parameters() if p.requires_grad}


def load_adapter_state(module: Any, state: dict[str, torch.Tensor]) -> None:
    """`adapter_state`'s tensors back into `module`, refusing a state that names other tensors or misses some."""
    own = adapter_state(module)
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise KatError(f"the checkpoint's adapters do not fit this model (missing {missing[:3]}, unexpected "
                       f"{unexpected[:3]})", hint="resume with the same --lora-* flags and --init model")
    module.load_state_dict(dict(state), strict=False)


def save_adapter(module: Any, directory: Path, *, base_name: str, state: Any = None) -> list[Path]:
    """PEFT's files for the adapters (atomically, file by file); `base_name` goes into adapter_config.json."""
    from katcli.model.hf import atomic_save_pretrained

    peft_model = peft_of(module)
    peft_model.peft_config["default"].base_model_name_or_path = base_name
    inner = None
    if state is not None:  # e.g. gathered whole: the module's names → PEFT's (`base_model.model.` + hf's)
        inner = {"base_model.model." + k.removeprefix("hf."): v for k, v in state.items()}
    return atomic_save_pretrained(peft_model, directory, state_dict=inner)


@contextlib.contextmanager
def adapters_disabled(module: Any) -> Iterator[None]:
    """The base model: adapters off (and a reward model's original head) for the duration."""
    peft_model = peft_of(module)
    if peft_model is None:
        yield
        return
    with peft_model.disable_adapter():
        yield


class WithoutAdapters(torch.nn.Module):
    """The frozen reference of a LoRA policy: the same module, run with its adapters disabled (one copy of the
    weights). Its `eval()`/`requires_grad_()` leave the policy alone: the policy is held outside the module tree."""

    is_hf = True

    def __init__(self, policy: Any) -> None:
        super().__init__()
        self.__dict__["policy"] = policy

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with adapters_disabled(self.policy), torch.no_grad():
            return self.policy(*args, **kwargs)

    def logits_from_hidden(self, hidden: Any) -> Any:
        with adapters_disabled(self.policy), torch.no_grad():
            return self.policy.logits_from_hidden(hidden)

    @property
    def config(self) -> Any:
        return self.policy.config

    @property
    def device(self) -> Any:
        return self.policy.device


def merge_into(hf: Any, adapter_dir: Path) -> Any:
    """`hf` with the PEFT adapter saved in `adapter_dir` merged into its weights (PEFT's `merge_and_unload`)."""
    from peft import PeftModel

    from katcli.model.hf import quiet_transformers

    import warnings

    with quiet_transformers(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # PEFT's deprecated is_gradient_checkpointing question
        wrapped = PeftModel.from_pretrained(hf, str(adapter_dir))
        return wrapped.merge_and_unload()


def merge_attached(module: Any) -> None:
    """Fold `module`'s own adapters into its weights in place (`kat export --merge`); it is a plain model after."""
    peft_model = peft_of(module)
    module.hf = peft_model.merge_and_unload()
    del module.__dict__["_peft"]


def read_adapter_config(directory: Path) -> dict[str, Any]:
    return json.loads((directory / ADAPTER_CONFIG).read_text(encoding="utf-8"))


def is_adapter_dir(directory: Path | None) -> bool:
    return directory is not None and (directory / ADAPTER_CONFIG).is_file()


# ---------------------------------------------------------------------------------------------------- base model


def base_record(source: Any, directory: Path) -> dict[str, Any]:
    """What a LoRA run records of its base model: its source, where it lies, and its weights' sha256."""
    from katcli.model.hf import weights_sha256

    return {"hf": source.to_json(), "dir": str(directory.resolve()), "weights_sha256": weights_sha256(directory)}


def base_directory(base: dict[str, Any], *, file: Path | str | None = None, flag: str = "--init") -> Path:
    """The base model's directory as recorded, refused when it is gone or its weights changed (sha256)."""
    from katcli.model.hf import weights_sha256

    d = Path(base["dir"])
    if not d.is_dir():
        hf = base.get("hf") or {}
        if hf.get("source") in ("hub", "hub-cache") and hf.get("revision"):
            from huggingface_hub import snapshot_download

            try:
                d = Path(snapshot_download(hf["location"], revision=hf["revision"], local_files_only=True))
            except Exception:  # noqa: BLE001 - not cached here: the error below says what is missing
                pass
    if not d.is_dir():
        raise KatError(f"{flag}: the LoRA run's base model is gone ({base['dir']})", file=str(file or d),
                       hint="put the base model back where it was trained from, or retrain the adapters")
    current = weights_sha256(d)
    if current != base["weights_sha256"]:
        raise KatError(
            f"{flag}: the LoRA run's base model changed since it was trained (weights sha256 {current[:12]}…, "
            f"recorded {str(base['weights_sha256'])[:12]}…)", file=str(d),
            hint="adapters only fit the exact weights they were trained on: restore that base model or retrain",
        )
    return d


def stacked_adapters(directory: Path) -> list[Path]:
    """A LoRA run's adapters in the order they apply: the earlier ones merged into the base, then its own."""
    merged = directory / BASE_ADAPTERS
    earlier = sorted((p for p in merged.iterdir() if is_adapter_dir(p)), key=lambda p: p.name) if merged.is_dir() else []
    return [*earlier, directory]
