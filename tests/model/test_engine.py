"""Engine: KV-cache decoding equals full recomputation; seeded, independent rows; stops, masks, log-probs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from katcli.errors import ConfigError, KatError
from katcli.model.engine import Engine, SamplingConfig, sample_tokens
from katcli.model.gpt import GPT
from katcli.model.tokenizer import Tokenizer

from modelkit import one_torch_thread, randomize, tiny_config, tiny_model, tokenizer  # noqa: F401

PROMPTS = [[391, 392, 327, 356, 111, 393, 394], [391, 392, 50, 393, 394], [391, 392, 7, 8, 9, 10, 11, 12, 393, 394]]


def _greedy_by_recomputation(model: GPT, prompt: list[int], n: int, stops: set[int]) -> list[int]:
    ids, out = list(prompt), []
    with torch.no_grad():
        for _ in range(n):
            token = int(model(torch.tensor([ids]))[0, -1].argmax())
            out.append(token)
            ids.append(token)
            if token in stops:
                break
    return out


def test_greedy_with_kv_cache_equals_full_recomputation(tiny_model: GPT, tokenizer: Tokenizer) -> None:
    engine = Engine(tiny_model, tokenizer)
    gen = engine.generate(PROMPTS, temperature=0.0, max_new_tokens=40)
    recomputed = engine.generate(PROMPTS, temperature=0.0, max_new_tokens=40, use_kv_cache=False)
    assert torch.equal(gen.tokens, recomputed.tokens)
    assert torch.equal(gen.mask, recomputed.mask)
    assert torch.allclose(gen.logprobs, recomputed.logprobs, atol=1e-4)
    for row, prompt in enumerate(PROMPTS):  # each prompt alone, unpadded, no cache, no engine
        reference = _greedy_by_recomputation(tiny_model, prompt, 40, set(engine.stop_token_ids))
        assert gen.completion(row, include_stop=True) == reference
    assert gen.tokens.shape[1] >= 10


def test_greedy_with_gqa_and_one_prompt(tokenizer: Tokenizer) -> None:
    cfg = tiny_config(tokenizer.vocab_size, n_embd=128, n_head=4, n_kv_head=1)
    model = randomize(GPT(cfg), seed=4).eval()
    gen = Engine(model, tokenizer).generate([PROMPTS[0]], temperature=0.0, max_new_tokens=30)
    assert gen.completion(0, include_stop=True) == _greedy_by_recomputation(
        model, PROMPTS[0], 30, {tokenizer.encode_special("<|assistant_end|>"), tokenizer.bos_token_id}
    )


def test_sampling_is_seeded_and_rows_are_independent(tiny_model: GPT, tokenizer: Tokenizer) -> None:
    engine = Engine(tiny_model, tokenizer)
    cfg = SamplingConfig(max_new_tokens=8, temperature=1.5, num_samples=8, seed=11)
    a, b = engine.generate(PROMPTS[:2], cfg), engine.generate(PROMPTS[:2], cfg)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.logprobs, b.logprobs)
    assert a.tokens.shape[0] == 16 and a.prompt_index.tolist() == [0] * 8 + [1] * 8
    assert not torch.equal(engine.generate(PROMPTS[:2], cfg, seed=12).tokens, a.tokens)
    # Every row draws its own first token: eight samples of one prompt do not all start alike.
    assert len(set(a.tokens[:8, 0].tolist())) > 1
    assert len({tuple(a.completion(r)) for r in range(8)}) == 8
    # The recomputation path consumes the generator identically.
    assert torch.equal(engine.generate(PROMPTS[:2], cfg, use_kv_cache=False).tokens, a.tokens)


def test_logprobs_are_the_models_untempered_logprobs(tiny_model: GPT, tokenizer: Tokenizer) -> None:
    engine = Engine(tiny_model, tokenizer)
    gen = engine.generate([PROMPTS[1]], temperature=0.7, top_k=50, num_samples=3, max_new_tokens=12, seed=2)
    for row in range(3):
        completion = gen.completion(row, include_stop=True)
        full = torch.tensor([PROMPTS[1] + completion])
        with torch.no_grad():
            logp = F.log_softmax(tiny_model(full)[0], dim=-1)
        start = len(PROMPTS[1]) - 1
        expected = logp[start : start + len(completion)].gather(1, torch.tensor(completion)[:, None]).squeeze(1)
        n = len(completion)
        assert torch.allclose(gen.logprobs[row, :n], expected, atol=1e-4)
        assert gen.logprobs[row, n:].eq(0).all()


def test_stop_token_ends_a_row_and_is_masked_in(tiny_model: GPT) -> None:
    free = Engine(tiny_model, stop_token_ids=[0]).generate([PROMPTS[0]], temperature=0.0, max_new_tokens=30)
    seq = free.tokens[0].tolist()
    stop_at = next(i for i in range(2, len(seq)) if seq[i] not in seq[:i])
    gen = Engine(tiny_model, stop_token_ids=[seq[stop_at]]).generate(
        [PROMPTS[0], PROMPTS[2]], temperature=0.0, max_new_tokens=30
    )
    assert gen.tokens[0, : stop_at + 1].tolist() == seq[: stop_at + 1]
    assert gen.mask[0].tolist()[: stop_at + 2] == [1] * (stop_at + 1) + [0]
    assert gen.tokens[0, stop_at + 1 :].eq(0).all()
    assert bool(gen.finished[0])
    assert gen.completion(0) == seq[:stop_at]
    assert gen.completion(0, include_stop=True) == seq[: stop_at + 1]


def test_top_k_one_and_tiny_top_p_are_greedy(tiny_model: GPT, tokenizer: Tokenizer) -> None:
    engine = Engine(tiny_model, tokenizer)
    greedy = engine.generate(PROMPTS, temperature=0.0, max_new_tokens=10).tokens
    assert torch.equal(engine.generate(PROMPTS, temperature=1.0, top_k=1, max_new_tokens=10).tokens, greedy)
    assert torch.equal(engine.generate(PROMPTS, temperature=1.0, top_p=1e-6, max_new_tokens=10).tokens, greedy)


def test_sample_tokens_respects_top_k_and_top_p() -> None:
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0, -1.0]]).repeat(2000, 1)
    gen = torch.Generator().manual_seed(0)
    top2 = sample_tokens(logits, gen, temperature=1.0, top_k=2)
    assert set(top2.tolist()) == {0, 1}
    probs = logits[0].softmax(-1)  # 0.636, 0.234, 0.086, ...: top_p=0.8 keeps exactly the first two
    assert probs[0] < 0.8 < probs[:2].sum()
    nucleus = sample_tokens(logits, gen, temperature=1.0, top_p=0.8)
    assert set(nucleus.tolist()) == {0, 1}
    everything = sample_tokens(logits, gen, temperature=1.0)
    assert len(set(everything.tolist())) >= 5


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(max_new_tokens=0), "--max-new-tokens must be at least 1"),
        (dict(temperature=-1.0), "--temperature must be 0 (greedy) or positive"),
        (dict(top_k=0), "--top-k must be at least 1"),
        (dict(top_p=1.5), "--top-p must be in (0, 1]"),
        (dict(num_samples=0), "--num-samples must be at least 1"),
    ],
)
def test_bad_sampling_config(kw, message) -> None:
    with pytest.raises(ConfigError) as info:
        SamplingConfig(**kw)
    assert info.value.message == message


def test_bad_prompts_are_kat_errors(tiny_model: GPT, tokenizer: Tokenizer) -> None:
    engine = Engine(tiny_model, tokenizer)
    with pytest.raises(KatError, match="prompt 1 is empty"):
        engine.generate([[1], []])
    with pytest.raises(KatError, match="outside the model's vocabulary"):
        engine.generate([[1, 400]])
    with pytest.raises(KatError, match="exceeds the model's limit of 640 tokens"):
        engine.generate([[1] * 600], max_new_tokens=41)


def test_sample_tokens_follows_the_distribution() -> None:
    probs = torch.tensor([0.5, 0.3, 0.2, 0.0])
    logits = probs.log().repeat(20000, 1)  # log(0) = -inf: an impossible token
    drawn = sample_tokens(logits, torch.Generator().manual_seed(1), temperature=1.0)
    freq = torch.bincount(drawn, minlength=4).float() / 20000
    assert freq[3] == 0
    assert torch.allclose(freq[:3], probs[:3], atol=0.015)
    hot = sample_tokens(logits, torch.Generator().manual_seed(1), temperature=0.5)
    sharpened = (probs[:3] ** 2) / (probs[:3] ** 2).sum()
    assert torch.allclose(torch.bincount(hot, minlength=4)[:3].float() / 20000, sharpened, atol=0.015)


def test_row_seeds_make_a_rows_sample_independent_of_its_batch(tiny_model: GPT, tokenizer: Tokenizer) -> None:
    engine = Engine(tiny_model, tokenizer)
    cfg = SamplingConfig(max_new_tokens=10, temperature=1.3, num_samples=2, seed=0)
    seeds = [11, 12, 21, 22, 31, 32]
    together = engine.generate(PROMPTS, cfg, row_seeds=seeds)
    alone = engine.generate([PROMPTS[1]], cfg, row_seeds=seeds[2:4])
    assert together.completion(2) == alone.completion(0) and together.completion(3) == alone.completion(1)
    # the batch seed no longer matters; the row seeds do
    assert torch.equal(engine.generate(PROMPTS, cfg, row_seeds=seeds, seed=5).tokens, together.tokens)
    other = engine.generate(PROMPTS, cfg, row_seeds=[s + 100 for s in seeds])
    assert not torch.equal(other.tokens, together.tokens)
    # the recomputation path consumes the row streams identically
    assert torch.equal(engine.generate(PROMPTS, cfg, row_seeds=seeds, use_kv_cache=False).tokens, together.tokens)
    with pytest.raises(ValueError, match="row_seeds has 2 seeds for 6 rows"):
        engine.generate(PROMPTS, cfg, row_seeds=[1, 2])


# ------------------------------------------------------------------------------------------- host syncs (item 3)


def _decode_syncs(engine: Engine, n: int, **kw) -> int:
    from synckit import counting_syncs

    with counting_syncs() as count:
        engine.generate(PROMPTS, max_new_tokens=n, **kw)
    return len(count)


@pytest.mark.parametrize("sampling", [dict(temperature=1.0, top_k=20, top_p=0.9), dict(temperature=0.7)])
def test_decoding_waits_for_the_device_only_at_the_periodic_stop_check(tiny_model: GPT, sampling) -> None:
    # No stop tokens: every row decodes every token. The prompts differ in length (left padding: the masked path).
    engine = Engine(tiny_model, stop_token_ids=[])
    engine.stop_check_every = 8  # what a GPU gets
    extra = _decode_syncs(engine, 32, num_samples=2, **sampling) - _decode_syncs(engine, 16, num_samples=2, **sampling)
    assert extra == 16 // 8  # 16 more tokens: two more "has every row stopped?" checks, nothing per token


def test_checking_for_stops_every_few_tokens_gives_the_same_samples(tiny_model: GPT, tokenizer: Tokenizer) -> None:
    stops = list(range(0, tokenizer.vocab_size, 6))  # one token in six stops: every row ends early
    every_token = Engine(tiny_model, stop_token_ids=stops)
    assert every_token.stop_check_every == 1  # on the CPU a check costs nothing
    every_eighth = Engine(tiny_model, stop_token_ids=stops)
    every_eighth.stop_check_every = 8
    cfg = SamplingConfig(max_new_tokens=40, temperature=1.2, num_samples=4, seed=3)
    a, b = every_token.generate(PROMPTS, cfg), every_eighth.generate(PROMPTS, cfg)
    # Every row stopped well before the end, some of them between two checks: the extra steps wrote nothing.
    assert bool(a.finished.all()) and a.tokens.size(1) % 8 != 0
    for field in ("tokens", "logprobs", "mask", "finished"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field


def test_the_zero_probability_guard_needs_no_host_check() -> None:
    # u·total at the very top of the cdf lands past the last positive token: the guard steps back to it.
    logits = torch.tensor([[0.0, 0.0, float("-inf"), float("-inf")], [0.0, float("-inf"), 0.0, float("-inf")]])
    from synckit import counting_syncs

    with counting_syncs() as count:
        out = sample_tokens(logits, None, uniforms=torch.tensor([1.0, 1.0]))
    assert out.tolist() == [1, 2] and len(count) == 0
