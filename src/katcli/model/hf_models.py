"""Hugging Face models as the modules kat trains: a causal-LM policy and a sequence-classifier reward model.

- `HFPolicy` (`AutoModelForCausalLM`): hidden states + output head, kat's GPT interface, so
  `model.logprobs.token_logprobs` works unchanged; `start_generation` lets kat's Engine sample through
  transformers' own KV cache (`HFGeneration`).
- `HFRewardModel` (`AutoModelForSequenceClassification(num_labels=1)`): `forward(ids, lengths)` as kat's
  RewardModel; transformers' own pooling reads the last real token (decoders: the config's pad id is set apart from
  the end token) or `[CLS]` (encoders, with segment ids when the tokenizer gives them).
Dropout is off (as in TRL's trainers and kat's GPT); the forward runs under autocast to `compute_dtype`
(`katcli.model.gpt.autocast_for`: `--dtype`, by default bf16 on CUDA and fp32 on the CPU). This module
knows torch and transformers' model classes; not tokenizers' rendering, files of a run, losses or the loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from katcli.errors import KatError
from katcli.model.gpt import autocast_for
from katcli.model.hf import (
    HFSource,
    atomic_save_pretrained,
    is_encoder,
    quiet_transformers,
)


class HFConfigView:
    """What kat's summaries and metas record of an HF model's architecture."""

    def __init__(self, config: Any) -> None:
        self._c = config

    @property
    def vocab_size(self) -> int:
        return int(self._c.vocab_size)

    @property
    def sequence_len(self) -> int:
        return _max_positions(self._c)

    def to_dict(self) -> dict[str, Any]:
        c = self._c
        keys = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "n_embd", "n_layer")
        return {k: getattr(c, k) for k in keys if isinstance(getattr(c, k, None), (int, str))}


def _max_positions(config: Any) -> int:
    for key in ("max_position_embeddings", "n_positions", "max_seq_len"):
        v = getattr(config, key, None)
        if isinstance(v, int):
            return v
    return 1 << 30




class _HFModule(nn.Module):
    is_hf = True

    def __init__(self, hf: Any, source: HFSource) -> None:
        super().__init__()
        self.hf = hf
        self.source = source
        self.compute_dtype: torch.dtype | None = None  # None: the device's `--dtype auto` (`autocast_for`)

    @property
    def config(self) -> HFConfigView:
        return HFConfigView(self.hf.config)

    @property
    def device(self) -> Any:
        return next(self.parameters()).device

    @property
    def rotary_seq_len(self) -> int:
        return _max_positions(self.hf.config)

    def trainable_parameters(self) -> list[Any]:
        return [p for p in self.parameters() if p.requires_grad]

    @property
    def lora(self) -> Any:
        """The LoRA adapters' PEFT wrapper (`katcli.model.lora`), None for a model that trains every weight."""
        return self.__dict__.get("_peft")

    def checkpoint_state(self) -> dict[str, Any]:
        """The model file's tensors: every weight, or with LoRA adapters only the trainable ones (never the base)."""
        if self.lora is not None:
            from katcli.model.lora import adapter_state

            return adapter_state(self)
        return {k: v.detach() for k, v in self.state_dict().items()}

    def load_checkpoint_state(self, state: Any) -> None:
        if self.lora is not None:
            from katcli.model.lora import load_adapter_state

            load_adapter_state(self, dict(state))
            return
        self.load_state_dict(dict(state), strict=True)

    def export_pretrained(self, directory: Path, *, state: Any = None) -> list[Path]:
        """The model as `save_pretrained` writes it (config.json, model.safetensors, …) into `directory` (with
        LoRA: PEFT's adapter_config.json + adapter_model.safetensors); `state` (this module's `checkpoint_state()`
        keys) replaces the live weights, e.g. gathered whole from FSDP shards."""
        if self.lora is not None:
            from katcli.model.lora import save_adapter

            return save_adapter(self, directory, base_name=self.__dict__.get("_lora_base", ""), state=state)
        inner = None if state is None else {k.removeprefix("hf."): v for k, v in state.items()}
        return atomic_save_pretrained(self.hf, directory, state_dict=inner)


def _positions(real: Any) -> Any:
    """Left padding as kat's GPT does it: pads get no position, each row's first real token is position 0."""
    return (real.long().cumsum(1) - 1).clamp(min=0)


class HFPolicy(_HFModule):
    """An `AutoModelForCausalLM` with kat's GPT interface: hidden states, then the output head.

    `pad_mask` (real tokens True) is for left-padded rows (rollouts): it becomes the attention mask and the
    positions, exactly as `start_generation` feeds them, so a sampled reply's training log-probs are the ones it
    was sampled with.
    """

    def forward(self, ids: Any, pad_mask: Any = None, return_hidden: bool = False) -> Any:
        # Right-padded rows need no mask (a real token never attends to a later pad); all ones says so to
        # transformers, which otherwise warns when it sees a pad id.
        kw: dict[str, Any] = {"attention_mask": ids.new_ones(ids.shape)}
        if pad_mask is not None:
            kw = {"attention_mask": pad_mask.long(), "position_ids": _positions(pad_mask)}
        with autocast_for(ids.device, self.compute_dtype):
            hidden = self.hf.base_model(input_ids=ids, use_cache=False, **kw).last_hidden_state
        return hidden if return_hidden else self.logits_from_hidden(hidden)

    def logits_from_hidden(self, hidden: Any) -> Any:
        with autocast_for(hidden.device, self.compute_dtype):
            return self.hf.get_output_embeddings()(hidden)

    def start_generation(self, ids: Any, real: Any) -> tuple[Any, HFGeneration]:
        """Prefill left-padded prompts through transformers' KV cache: (hidden states, the decoding state)."""
        state = HFGeneration(self, real.long())
        return state.run(ids, _positions(real)), state


class HFGeneration:
    """transformers' own KV cache (`DynamicCache`) driven one token at a time by kat's Engine.

    The Engine keeps its sampler (per-row seeds, untempered log-probs, stop tokens), which `generate()` cannot give;
    the model, its cache and its attention are transformers'.
    """

    def __init__(self, policy: HFPolicy, attn: Any) -> None:
        from transformers import DynamicCache

        self.policy = policy
        self.cache = DynamicCache(config=policy.hf.config)
        self.attn = attn
        self.next_pos = attn.sum(1, keepdim=True)

    def run(self, ids: Any, positions: Any) -> Any:
        with autocast_for(ids.device, self.policy.compute_dtype):
            out = self.policy.hf.base_model(
                input_ids=ids, attention_mask=self.attn, position_ids=positions, cache=self.cache, use_cache=True,
            )
        return out.last_hidden_state  # the cache grew in place

    def repeat_rows(self, times: int) -> None:
        self.cache.batch_repeat_interleave(times)
        self.attn = self.attn.repeat_interleave(times, dim=0)
        self.next_pos = self.next_pos.repeat_interleave(times, dim=0)

    def step(self, tokens: Any) -> Any:
        """Hidden states `[B, 1, D]` after appending one token per row."""
        self.attn = torch.cat([self.attn, self.attn.new_ones(self.attn.size(0), 1)], dim=1)
        hidden = self.run(tokens, self.next_pos)
        self.next_pos = self.next_pos + 1
        return hidden


class HFRewardModel(_HFModule):
    """An `AutoModelForSequenceClassification(num_labels=1)`; `forward(ids, lengths)` like kat's RewardModel."""

    is_reward_model = True

    def __init__(self, hf: Any, source: HFSource, *, encoder: bool, sep_id: int, token_types: bool = False) -> None:
        super().__init__(hf, source)
        self.encoder = encoder
        self.sep_id = sep_id
        self.token_types = token_types

    def forward(self, ids: Any, lengths: Any) -> Any:
        real = torch.arange(ids.size(1), device=ids.device)[None, :] < lengths[:, None]
        kwargs: dict[str, Any] = {"attention_mask": real.long()}
        if self.token_types:  # segment B (the reply) starts after the first [SEP]
            sep = (ids == self.sep_id).long()
            kwargs["token_type_ids"] = (((sep.cumsum(1) - sep) > 0) & real).long()
        with autocast_for(ids.device, self.compute_dtype):
            logits = self.hf(input_ids=ids, **kwargs).logits
        return logits[:, 0].float()


def _no_dropout(config: Any) -> None:
    """Dropout off, as in TRL's reward/DPO trainers and kat's GPT: a step depends on the weights and data only."""
    for key, value in list(config.to_dict().items()):
        if isinstance(value, float) and ("dropout" in key or key.endswith("_pdrop")):
            setattr(config, key, 0.0)


def _checkpointing(hf: Any) -> None:
    """Recompute each layer's activations in the backward pass (transformers' own, non-reentrant)."""
    enable = getattr(hf, "activation_checkpointing_enable", None)  # the newer name
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def _load(cls: Any, d: Path, *, trust_remote_code: bool, what: str, **kw: Any) -> Any:
    try:
        with quiet_transformers():
            return cls.from_pretrained(str(d), use_safetensors=True, trust_remote_code=trust_remote_code, **kw)
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc) or "not supported" in str(exc):
            raise KatError(f"this model cannot be {what}: {str(exc).splitlines()[0]}", file=str(d),
                           hint="reward models: any AutoModelForSequenceClassification; policies: a causal LM") from None
        raise KatError(f"cannot load the model: {exc}", file=str(d), hint="pass a save_pretrained directory") from None


def load_policy(d: Path, source: HFSource, *, seed: int, gradient_checkpointing: bool = False) -> HFPolicy:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(d), trust_remote_code=source.trust_remote_code)
    if is_encoder(config):
        raise KatError(f"a {config.model_type} encoder cannot be a policy (it is not a causal LM)", file=str(d),
                       hint="use it as a reward model (`kat train rm`), and a decoder (Llama, Qwen, GPT-2, …) as policy")
    _no_dropout(config)
    torch.manual_seed(seed)
    hf = _load(AutoModelForCausalLM, d, trust_remote_code=source.trust_remote_code, what="a policy (causal LM)",
               config=config, dtype=torch.float32)
    if gradient_checkpointing:
        _checkpointing(hf)
    return HFPolicy(hf, source)


def load_reward_model(
    d: Path, source: HFSource, tokenizer: Any, *, seed: int, gradient_checkpointing: bool = False
) -> HFRewardModel:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(str(d), trust_remote_code=source.trust_remote_code)
    encoder = is_encoder(config)
    _no_dropout(config)
    config.num_labels = 1
    config.pad_token_id = tokenizer.pad_token_id
    # A new head (and pooler) is transformers' own initialisation (normal, the config's initializer_range), as in
    # TRL, drawn from the global RNG: seeded, so runs repeat. Not zero as kat's GPT head: with a zero head the body
    # gets no gradient until the head has grown, which at a pretrained model's learning rates takes hundreds of steps.
    torch.manual_seed(seed)
    hf = _load(AutoModelForSequenceClassification, d, trust_remote_code=source.trust_remote_code,
               what="a reward model (sequence classifier)", config=config, dtype=torch.float32)
    if gradient_checkpointing:
        _checkpointing(hf)
    token_types = bool(getattr(tokenizer, "uses_token_types", False))
    return HFRewardModel(hf, source, encoder=encoder, sep_id=tokenizer.end_id, token_types=token_types)
