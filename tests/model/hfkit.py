"""Test kit for Hugging Face backbones: tiny random models built from configs and saved with `save_pretrained`.

Everything offline: a word-level tokenizer trained in the test with the `tokenizers` library (plus special tokens
and a ChatML-style chat template; the encoder's gives BERT's segment ids), a Llama-style and a GPT-2-style causal LM
and a BERT-style encoder, each a few tens of thousands of parameters; `build_classifier` saves one of them with a
sequence-classification head (an "off-the-shelf" reward model), `plain_rewards` scores texts with plain
`transformers` the way kat renders them. Tests import it by name (tests/model is on
pytest's pythonpath) and build the models once per session.
"""

from __future__ import annotations

from pathlib import Path

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
DECODER_SPECIALS = ["<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "<unk>"]
ENCODER_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Training flags that run a tiny model for a few steps in about a second on one CPU thread.
FAST_TRAINING = dict(max_steps=3, batch_size=8, max_len=64, val_ratio=0.2, eval_every=0, save_every=0, device="cpu",
                     threads=1, lr=1e-3)


def _texts(pairs: list[dict]) -> list[str]:
    out = []
    for p in pairs:
        out += [m["content"] for m in p["prefix"]["messages"]] + [p["chosen"], p["rejected"]]
    out += ["user", "assistant", "system", ":"]
    return out


def train_tokenizer(pairs: list[dict], *, encoder: bool, chat_template: bool = True):
    """A `PreTrainedTokenizerFast` trained on the pairs' words (word level: tiny vocabularies, exact round trips)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ENCODER_SPECIALS if encoder else DECODER_SPECIALS
    unk = "[UNK]" if encoder else "<unk>"
    tk = Tokenizer(models.WordLevel(unk_token=unk))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tk.train_from_iterator(_texts(pairs), trainers.WordLevelTrainer(special_tokens=specials))
    from tokenizers import decoders

    tk.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    if encoder:
        cls, sep = tk.token_to_id("[CLS]"), tk.token_to_id("[SEP]")
        tk.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
            mask_token="[MASK]", model_input_names=["input_ids", "token_type_ids", "attention_mask"],
        )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    if chat_template:
        tok.chat_template = CHATML
    return tok


def build_model(kind: str, tokenizer, directory: Path, *, seed: int = 0) -> Path:
    """A tiny random `llama`, `gpt2` or `bert` model saved with its tokenizer into `directory`."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        BertConfig,
        GPT2Config,
        LlamaConfig,
    )

    vocab = len(tokenizer)
    torch.manual_seed(seed)
    if kind == "llama":
        cfg = LlamaConfig(
            vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False,
            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        model = AutoModelForCausalLM.from_config(cfg)
    elif kind == "gpt2":
        cfg = GPT2Config(
            vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=256, pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        )
        model = AutoModelForCausalLM.from_config(cfg)
    elif kind == "bert":
        cfg = BertConfig(
            vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id,
        )
        model = AutoModelForMaskedLM.from_config(cfg)
    else:
        raise ValueError(kind)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def build_classifier(kind: str, tokenizer, directory: Path, *, num_labels: int = 1, seed: int = 0) -> Path:
    """A tiny random `llama` or `bert` `…ForSequenceClassification` (a random head, as a trained one would be)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    base = build_model(kind, tokenizer, directory.with_name(directory.name + "-base"), seed=seed)
    cfg = AutoConfig.from_pretrained(str(base), num_labels=num_labels)
    torch.manual_seed(seed + 1)
    model = AutoModelForSequenceClassification.from_config(cfg)
    with torch.no_grad():  # a head of a visible size: rewards spread well beyond the 1e-5 tolerance
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def plain_rewards(directory: Path, rows, *, encoder: bool, end: str = "<|im_end|>") -> list[float]:
    """Rewards of (messages, reply) rows in plain `transformers`, one unpadded row at a time: encoders get the
    conversation as `role: content` lines and the reply as segment B, decoders the chat template, the reply and the
    end-of-turn token."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(directory)).eval()
    tok = AutoTokenizer.from_pretrained(str(directory))
    out = []
    with torch.no_grad():
        for messages, reply in rows:
            if encoder:
                enc = tok("\n".join(f"{m['role']}: {m['content']}" for m in messages), reply, return_tensors="pt")
            else:
                prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
                enc = tok(prompt + reply + end, add_special_tokens=False, return_tensors="pt")
            out.append(model(**enc).logits[0, 0].item())
    return out
