"""What a run records beside its weights (`meta_<step>.json`): one typed, versioned record, `RunMeta`.

Schema `kat.run/2`; files written before it (`"format": 1`, or none: `kat import nanochat`, hand-made test
directories) read as the same record. The JSON keys are the same in both, so older tools still read new files:
`kind`, `objective`, `step`, `model_config`, `tokenizer_sha256`, `config` (the run's flags), `training`, `init`
(where the starting model came from: a run's `path` and `step`, `depth`/`seed` from scratch, an `hf` source),
`inputs` (the sha256 of the workspace files it trained on), `heldout` (the split: seed, ratio, fingerprint),
`sampling` (uniform or density-aware, its effective sample size, the density weights' sha256), `eval`,
`reward_model` / `reference`, and the objective's own records (`dpo`, `ref_cache`, `rollout`, `sequences`, …) kept
as they are in `extra`. Every module reads and writes metas through this one class; nothing else knows the keys.

The checkpoint kinds are defined here, once. This module knows JSON and paths; not models or the workspace.
"""

from __future__ import annotations

import json

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from katcli.errors import KatError

#: What to do about a checkpoint file that is missing or unreadable: kat wrote it whole or not at all, so it was
#: damaged or replaced afterwards, or the directory is not a checkpoint.
REWRITE_HINT = "re-create the checkpoint (re-run the training or the import that wrote it) or point at another one"
SCHEMA = "kat.run/2"
RM_KIND = "kat-reward-model"  # `kat train rm`
POLICY_KIND = "kat-policy"  # `kat train sft|dpo|grpo`: a plain GPT (or HF causal LM) state dict
NANOCHAT_KIND = "nanochat"  # `kat import nanochat`
AS_IS_KIND = "hf-model"  # a Hugging Face model used as it is (`hf:NAME|DIR`), with no kat run around it
POLICY_KINDS = (POLICY_KIND, NANOCHAT_KIND)  # what can generate (besides an HF causal LM as it is)
KIND_NAMES = {RM_KIND: "kat reward-model", POLICY_KIND: "kat policy"}
IMPLICIT_REWARD_OBJECTIVES = ("dpo", "kto")  # policy objectives that define an implicit reward model on pairs

# The keys RunMeta types; every other key of a meta file is the objective's and travels in `extra`.
_TYPED = ("kind", "objective", "step", "model_config", "tokenizer_sha256", "config", "training", "init", "inputs",
          "heldout", "sampling", "eval_weights", "eval", "reward_model", "reference", "schema", "format")


@dataclass(frozen=True)
class Split:
    """The held-out split a run was trained with: a seeded hash of the prefix id (`katcli.train.split`)."""

    seed: int
    val_ratio: float
    pairs: int | None = None
    prompts: int | None = None
    fingerprint: str | None = None  # over the pair ids of the held-out set (`Split.fingerprint` of train.split)

    @property
    def spec(self) -> tuple[int, float]:
        return (self.seed, self.val_ratio)

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "val_ratio": self.val_ratio, "pairs": self.pairs, "prompts": self.prompts,
                "fingerprint": self.fingerprint}

    @classmethod
    def from_json(cls, d: Any) -> Split | None:
        if not isinstance(d, Mapping) or "seed" not in d or "val_ratio" not in d:
            return None
        return cls(d["seed"], d["val_ratio"], d.get("pairs"), d.get("prompts"), d.get("fingerprint"))


@dataclass(frozen=True)
class Sampling:
    """How the training items were drawn: uniformly or by density weight, and what that left (ESS)."""

    weighting: str
    density_aware: bool
    train_pairs: int
    train_prompts: int
    ess: float  # rounded to 3 decimals, as recorded
    ess_fraction: float  # rounded to 6 decimals
    items: str = "pairs"  # what the sampler draws: "pairs", or the objective's own items ("prompts")
    train_items: int = 0
    weights_sha256: str | None = None  # the density weights sampled by (density-aware runs only)
    weights: str | None = None  # the named weight set sampled by (`--weights`); None: the default set (or uniform)

    def to_json(self) -> dict[str, Any]:
        out = {"weighting": self.weighting, "density_aware": self.density_aware, "train_pairs": self.train_pairs,
               "train_prompts": self.train_prompts, "ess": self.ess, "ess_fraction": self.ess_fraction,
               "items": self.items, "train_items": self.train_items, "weights_sha256": self.weights_sha256}
        return out if self.weights is None else {**out, "weights": self.weights}  # recorded only when named

    @classmethod
    def from_json(cls, d: Any, config: Mapping[str, Any], inputs: Mapping[str, str]) -> Sampling | None:
        if not isinstance(d, Mapping) or "weighting" not in d:
            return None
        from katcli.workspace import paths as P

        aware = bool(d.get("density_aware", config.get("density_aware", False)))
        return cls(d["weighting"], aware, d.get("train_pairs", 0), d.get("train_prompts", 0), d.get("ess", 0.0),
                   d.get("ess_fraction", 0.0), d.get("items", "pairs"), d.get("train_items", d.get("train_pairs", 0)),
                   d.get("weights_sha256", inputs.get(P.DENSITY_WEIGHTS) if aware else None), d.get("weights"))


def _dict(v: Any) -> dict[str, Any]:
    return dict(v) if isinstance(v, Mapping) else {}


@dataclass(frozen=True)
class RunMeta:
    kind: str | None
    objective: str | None = None  # rm | sft | dpo | grpo | kto | ppo (None: an import, an HF model as it is)
    step: int | None = None
    model_config: dict[str, Any] | None = None
    tokenizer_sha256: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the run's flags (`TrainConfig.params()`)
    training: dict[str, Any] = field(default_factory=dict)  # warmup, micro batch, world size, fsdp
    init: dict[str, Any] | None = None  # lineage: {path, step} of a run, {depth, seed} from scratch, {hf, …}
    inputs: dict[str, str] = field(default_factory=dict)  # workspace file → sha256 it was trained on
    split: Split | None = None
    sampling: Sampling | None = None
    eval_weights: str | None = None  # what the density weights served: "sampling", "eval quintiles" or None
    eval: dict[str, Any] | None = None  # the held-out report at `step`
    reward_model: dict[str, Any] | None = None  # GRPO: the reward model it was optimised against
    reference: dict[str, Any] | None = None  # DPO / GRPO: the frozen reference
    extra: dict[str, Any] = field(default_factory=dict)  # the objective's own records (dpo, ref_cache, hf, …)
    schema: str = SCHEMA

    # ------------------------------------------------------------------------------------------------ file

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, file: str | None = None) -> RunMeta:
        """A `kat.run/2` record, or an older one (`format` 1, or no version at all)."""
        schema = d.get("schema")
        if schema not in (None, SCHEMA) or d.get("format", 1) != 1:
            raise KatError(f"checkpoint meta has an unknown schema {schema or d.get('format')!r}", file=file,
                           hint=f"this kat reads {SCHEMA} and kat.run/1 metas; upgrade kat")
        config, inputs = _dict(d.get("config")), _dict(d.get("inputs"))
        return cls(
            kind=d.get("kind"), objective=d.get("objective"), step=d.get("step"),
            model_config=d["model_config"] if isinstance(d.get("model_config"), Mapping) else None,
            tokenizer_sha256=d.get("tokenizer_sha256"), config=config, training=_dict(d.get("training")),
            init=_dict(d["init"]) if isinstance(d.get("init"), Mapping) else None, inputs=inputs,
            split=Split.from_json(d.get("heldout")), sampling=Sampling.from_json(d.get("sampling"), config, inputs),
            eval_weights=d.get("eval_weights"), eval=d.get("eval"),
            reward_model=d["reward_model"] if isinstance(d.get("reward_model"), Mapping) else None,
            reference=d["reference"] if isinstance(d.get("reference"), Mapping) else None,
            extra={k: v for k, v in d.items() if k not in _TYPED}, schema=SCHEMA,
        )

    @classmethod
    def read(cls, path: Path) -> RunMeta:
        return cls.from_json(read_meta(path), file=str(path))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": SCHEMA, "kind": self.kind, "objective": self.objective, "step": self.step,
            "model_config": self.model_config, "tokenizer_sha256": self.tokenizer_sha256, "config": self.config,
            "training": self.training, "init": self.init, "inputs": self.inputs,
            "heldout": self.split.to_json() if self.split is not None else None,
            "sampling": self.sampling.to_json() if self.sampling is not None else None,
            "eval_weights": self.eval_weights, "eval": self.eval, "reward_model": self.reward_model,
            "reference": self.reference, **self.extra,
        }
        keep: set[str] = set()
        if self.kind in (RM_KIND, POLICY_KIND):  # a training run: readers expect these keys, null or not
            keep = {"eval", "eval_weights"} | ({"reference"} if self.objective in ("dpo", "grpo", "kto", "ppo")
                                               else set())
        return {k: v for k, v in out.items() if not (v is None or v == {}) or k in keep}

    def at_step(self, step: int, report: Any) -> RunMeta:
        """This record as saved at `step`, with the held-out report then (None when not evaluated)."""
        return replace(self, step=step, eval=report.to_json() if report is not None else None)

    # ------------------------------------------------------------------------------------------------ reading

    @property
    def is_dpo(self) -> bool:
        return self.kind == POLICY_KIND and self.objective == "dpo"

    @property
    def has_implicit_reward(self) -> bool:
        """A policy kat reads as an implicit reward model on pairs (DPO's every --loss, KTO)."""
        return self.kind == POLICY_KIND and self.objective in IMPLICIT_REWARD_OBJECTIVES

    @property
    def is_as_is(self) -> bool:
        return self.kind == AS_IS_KIND

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind or "", self.kind or "")

    def trained_on(self, rel: str) -> str | None:
        """The sha256 the run recorded for a workspace input (`data/pairs_all.jsonl`, …), None when unrecorded."""
        return self.inputs.get(rel)

    def lengths(self) -> tuple[int, int]:
        """(max_len, max_response_len) it was trained with: what scoring with it must use too."""
        max_len = int(self.config.get("max_len", 512))
        return max_len, int(self.config.get("max_response_len") or max_len // 2)

    @property
    def init_path(self) -> str | None:
        """The recorded path of the run this one started from, when it started from one."""
        path = (self.init or {}).get("path")
        return path if isinstance(path, str) else None

    @property
    def hf(self) -> dict[str, Any] | None:
        """An HF model as it is: its source (`katcli.model.hf.HFSource.to_json`)."""
        return self.extra.get("hf") if self.is_as_is else None

    @property
    def lora(self) -> dict[str, Any] | None:
        """A LoRA run's adapters: r, alpha, dropout, targets (as PEFT resolved them), its base model (source, dir,
        weights sha256) and whether the base is an encoder (`katcli.model.lora`)."""
        rec = self.extra.get("lora")
        return rec if isinstance(rec, Mapping) else None

    @property
    def weight_set(self) -> str | None:
        """The named weight set the run sampled by (`--weights`); None: the default set, or uniform sampling."""
        return self.sampling.weights if self.sampling is not None else None

    @property
    def pair_weighting(self) -> str:
        return "–" if self.is_as_is else str(self.config.get("pair_weighting", "?"))

    @property
    def trust_remote_code(self) -> bool:
        return bool(self.config.get("trust_remote_code", False))

    @property
    def trained_rm(self) -> dict[str, Any] | None:
        """The reward model a GRPO run was trained against (`name`, `path`), or None."""
        rm = self.reward_model
        return rm if rm is not None and rm.get("name") else None



def read_meta(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise KatError("checkpoint meta not found", file=str(path), hint=REWRITE_HINT)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise KatError(
            f"checkpoint meta is not valid JSON: {exc}", file=str(path), line=line, hint=REWRITE_HINT
        ) from exc
    if not isinstance(meta, dict):
        raise KatError("checkpoint meta must be a JSON object", file=str(path), hint=REWRITE_HINT)
    return meta
