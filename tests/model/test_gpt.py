"""GPT: nanochat's key names and shapes, an independent reference forward, GQA, padding, overfitting."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from katcli.errors import ConfigError, KatError
from katcli.model.gpt import GPT, GPTConfig

from modelkit import one_torch_thread, randomize, tiny_config, tiny_model, tokenizer  # noqa: F401


def test_state_dict_keys_are_nanochats() -> None:
    model = GPT(tiny_config(n_layer=2))
    keys = set(model.state_dict())
    expected = {"transformer.wte.weight", "lm_head.weight"}
    for i in range(2):
        expected |= {f"transformer.h.{i}.attn.{n}.weight" for n in ("c_q", "c_k", "c_v", "c_proj")}
        expected |= {f"transformer.h.{i}.mlp.{n}.weight" for n in ("c_fc", "c_proj")}
    assert keys == expected
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.cos.dtype == torch.bfloat16 and model.cos.shape == (1, 640, 1, 16)


def test_depth_rule() -> None:
    assert GPTConfig.from_depth(2, vocab_size=512).to_dict() == dict(
        sequence_len=1024, vocab_size=512, n_layer=2, n_head=1, n_kv_head=1, n_embd=128
    )
    c = GPTConfig.from_depth(20, vocab_size=65536, sequence_len=2048)
    assert (c.n_embd, c.n_head, c.n_kv_head, c.head_dim) == (1280, 10, 10, 128)
    assert GPTConfig.from_depth(1, vocab_size=300).n_head == 1


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(n_embd=100, n_head=3), "model config n_embd (100) must be divisible by n_head (3)"),
        (dict(n_head=4, n_kv_head=3), "model config n_kv_head (3) must divide n_head (4)"),
        (dict(n_layer=0), "model config n_layer must be a positive integer, got 0"),
    ],
)
def test_bad_config_is_a_config_error(kw, message) -> None:
    with pytest.raises(ConfigError) as info:
        tiny_config(**kw)
    assert info.value.message == message


def test_unknown_config_fields_are_refused() -> None:
    data = GPTConfig().to_dict() | {"window_pattern": "SSSL"}
    with pytest.raises(KatError, match="unknown fields: window_pattern"):
        GPTConfig.from_dict(data)


def test_shapes_softcap_loss_and_hidden(tiny_model: GPT) -> None:
    idx = torch.randint(0, 400, (3, 11), generator=torch.Generator().manual_seed(0))
    logits = tiny_model(idx)
    assert logits.shape == (3, 11, 400) and logits.dtype == torch.float32
    assert logits.abs().max() <= 15.0
    hidden = tiny_model(idx, return_hidden=True)
    assert hidden.shape == (3, 11, 64)
    # Final hidden states are RMS-normalised and feed lm_head directly.
    assert torch.allclose(hidden.pow(2).mean(-1), torch.ones(3, 11), atol=1e-4)
    assert torch.allclose(15 * torch.tanh(tiny_model.lm_head(hidden) / 15), logits, atol=1e-5)
    targets = idx.roll(-1, 1)
    targets[:, -1] = -1
    loss = tiny_model(idx, targets)
    manual = F.cross_entropy(logits[:, :-1].reshape(-1, 400), idx[:, 1:].reshape(-1))
    assert loss.shape == () and torch.allclose(loss, manual, atol=1e-5)
    per_token = tiny_model(idx, targets, loss_reduction="none")
    assert per_token.shape == (33,) and per_token.view(3, 11)[:, -1].eq(0).all()


def _reference_forward(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """nanochat's forward written out independently with explicit attention matrices."""
    c = model.config
    sd = model.state_dict()
    B, T = idx.shape
    hd = c.head_dim
    inv = 1.0 / (10000 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = torch.outer(torch.arange(T, dtype=torch.float32), inv)
    cos, sin = ang.cos().bfloat16().float(), ang.sin().bfloat16().float()

    def rms(x):
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + torch.finfo(x.dtype).eps)

    def rot(x):  # (B, T, H, hd)
        x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
        cc, ss = cos[None, :, None, :], sin[None, :, None, :]
        return torch.cat([x1 * cc + x2 * ss, -x1 * ss + x2 * cc], -1)

    x = rms(sd["transformer.wte.weight"][idx])
    causal = torch.ones(T, T).tril().bool()
    for i in range(c.n_layer):
        p = f"transformer.h.{i}."
        h = rms(x)
        q = (h @ sd[p + "attn.c_q.weight"].T).view(B, T, c.n_head, hd)
        k = (h @ sd[p + "attn.c_k.weight"].T).view(B, T, c.n_kv_head, hd)
        v = (h @ sd[p + "attn.c_v.weight"].T).view(B, T, c.n_kv_head, hd)
        q, k = rms(rot(q)), rms(rot(k))
        group = c.n_head // c.n_kv_head
        out = torch.empty(B, T, c.n_head, hd)
        for head in range(c.n_head):
            kv = head // group
            att = q[:, :, head] @ k[:, :, kv].transpose(1, 2) / math.sqrt(hd)
            att = att.masked_fill(~causal, float("-inf")).softmax(-1)
            out[:, :, head] = att @ v[:, :, kv]
        x = x + out.reshape(B, T, -1) @ sd[p + "attn.c_proj.weight"].T
        h = rms(x)
        x = x + torch.relu(h @ sd[p + "mlp.c_fc.weight"].T).square() @ sd[p + "mlp.c_proj.weight"].T
    logits = rms(x) @ sd["lm_head.weight"].T
    return 15 * torch.tanh(logits / 15)


@pytest.mark.parametrize(("n_head", "n_kv_head"), [(2, 2), (4, 2), (4, 1)])
def test_matches_an_independent_reference(n_head, n_kv_head) -> None:
    model = randomize(GPT(tiny_config(n_head=n_head, n_kv_head=n_kv_head)), std=0.3)
    idx = torch.randint(0, 400, (2, 13), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(model(idx), _reference_forward(model, idx), atol=2e-4)


def test_gqa_equals_mha_with_shared_kv_heads() -> None:
    gqa = randomize(GPT(tiny_config(n_embd=128, n_head=4, n_kv_head=2)), seed=5)
    assert gqa.transformer.h[0].attn.c_k.weight.shape == (64, 128)
    mha = GPT(tiny_config(n_embd=128, n_head=4, n_kv_head=4), seed=None)
    state = {}
    for key, value in gqa.state_dict().items():
        if key.endswith(("attn.c_k.weight", "attn.c_v.weight")):
            value = value.view(2, 32, 128).repeat_interleave(2, dim=0).reshape(128, 128)
        state[key] = value
    mha.load_state_dict(state)
    idx = torch.randint(0, 400, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(gqa(idx), mha(idx), atol=1e-5)


def test_left_padding_gives_the_unpadded_result(tiny_model: GPT) -> None:
    a = torch.tensor([5, 9, 17, 33, 2, 8, 100])
    b = torch.tensor([44, 12, 7])
    batch = torch.stack([a, torch.cat([torch.zeros(4, dtype=torch.long), b])])
    pad = batch.ne(0)
    pad[0] = True
    with torch.no_grad():
        out = tiny_model(batch, pad_mask=pad)
        assert not out.isnan().any()
        assert torch.allclose(out[0], tiny_model(a[None])[0], atol=1e-5)
        assert torch.allclose(out[1, 4:], tiny_model(b[None])[0], atol=1e-5)
        hidden = tiny_model(batch, pad_mask=pad, return_hidden=True)
        assert torch.allclose(hidden[1, 4:], tiny_model(b[None], return_hidden=True)[0], atol=1e-5)


def test_nanochat_init_is_seeded() -> None:
    cfg = GPTConfig(sequence_len=16, vocab_size=300, n_layer=1, n_head=1, n_kv_head=1, n_embd=64)
    a, b, c = GPT(cfg, seed=7), GPT(cfg, seed=7), GPT(cfg, seed=8)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.transformer.wte.weight, c.transformer.wte.weight)
    assert a.lm_head.weight.abs().sum() == 0  # zero-initialised output head, as nanochat


def test_loss_falls_when_overfitting_a_tiny_batch() -> None:
    torch.manual_seed(0)
    cfg = GPTConfig(sequence_len=32, vocab_size=300, n_layer=1, n_head=1, n_kv_head=1, n_embd=64)
    model = GPT(cfg, seed=0)
    idx = torch.randint(0, 300, (4, 17), generator=torch.Generator().manual_seed(0))
    x, y = idx[:, :-1], idx[:, 1:]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = model(x, y)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first == pytest.approx(math.log(300), rel=0.01)  # zero lm_head: uniform predictions
    assert model(x, y).item() < 0.5 * first


def test_sequence_beyond_rotary_table_is_refused() -> None:
    cfg = GPTConfig(sequence_len=2, vocab_size=300, n_layer=1, n_head=1, n_kv_head=1, n_embd=64)
    with pytest.raises(KatError, match="exceeds the model's rotary table"):
        GPT(cfg)(torch.zeros(1, 21, dtype=torch.long))
