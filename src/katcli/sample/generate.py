"""Build the sample mirror: rows in each dataset's exact schema and the hub's exact layout.

    python -m katcli.sample.generate [DIR] [--scale N]

With no DIR it rewrites the mirror shipped in this package (`kat pairs download --from sample`); the
committed files are exactly what this script writes (gzip without timestamps, parquet with fixed
schemas, seeded choices), and a test checks that. `--scale N` multiplies the computed families, which is
how `bench/bench_pairs.py` makes a mirror large enough to time.

Layout written under DIR:
    Anthropic/hh-rlhf/{harmless-base,helpful-base,helpful-online,helpful-rejection-sampled}/{train,test}.jsonl.gz
    HuggingFaceH4/ultrafeedback_binarized/data/{train_prefs,test_prefs}-00000-of-00001.parquet
    HuggingFaceH4/stack-exchange-preferences/data/<site>/train-0000k-of-0000n.parquet

Content comes from `content.py` / `se_content.py` (hand-written) and the computed families below
(arithmetic, unit conversions, string tasks, primality, linear equations), whose better answers are
correct and whose worse answers are wrong or dismissive. The HH subsets also carry the edge cases the
parser must handle. It imports nothing from katcli outside this package.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import random
from pathlib import Path

from katcli.sample import content as C
from katcli.sample import se_content as S

HH_REPO = Path("Anthropic/hh-rlhf")
UF_REPO = Path("HuggingFaceH4/ultrafeedback_binarized")
SE_REPO = Path("HuggingFaceH4/stack-exchange-preferences")
WORDS = [
    "lantern", "harbor", "pencil", "orchard", "velvet", "compass", "thunder", "biscuit", "glacier", "meadow",
    "puzzle", "saddle", "falcon", "ribbon", "canyon", "marble", "whistle", "pepper", "anchor", "blossom",
    "cobalt", "dolphin", "ember", "fjord", "garnet", "hammock", "igloo", "jasmine", "kettle", "lobster",
]
DISMISSIVE = [
    "I don't know, look it up.", "Why do you need that?", "Figure it out yourself.",
    "That's not something I can answer.", "Ask someone else.",
]


# -- computed families: (question, better, worse) ------------------------------------------------------
def arithmetic(rng: random.Random, n: int) -> list[tuple[str, str, str]]:
    out, seen = [], set()
    while len(out) < n:
        op = rng.choice(["plus", "minus", "times"])
        a, b = rng.randint(12, max(99, n)), rng.randint(3, 49)
        if (op, a, b) in seen:
            continue
        seen.add((op, a, b))
        r = a + b if op == "plus" else a - b if op == "minus" else a * b
        sym = {"plus": "+", "minus": "-", "times": "×"}[op]
        q = rng.choice([f"What is {a} {op} {b}?", f"Can you calculate {a} {sym} {b} for me?",
                        f"Quick math question: {a} {op} {b}?"])
        if op == "times":
            good = f"{a} × {b} = {r}. You can check it as {a} × {b - b % 10} + {a} × {b % 10} = {a * (b - b % 10)} + {a * (b % 10)}."
        else:
            good = f"{a} {sym} {b} = {r}."
        bad = rng.choice([f"{a} {sym} {b} = {r + rng.choice([-10, -2, -1, 1, 2, 10])}.", rng.choice(DISMISSIVE)])
        out.append((q, good, bad))
    return out


def conversions(rng: random.Random, n: int) -> list[tuple[str, str, str]]:
    kinds = [
        ("kilometres", "miles", 0.621371, "1 km ≈ 0.621 miles"),
        ("kilograms", "pounds", 2.20462, "1 kg ≈ 2.205 lb"),
        ("inches", "centimetres", 2.54, "1 inch = 2.54 cm exactly"),
        ("litres", "US gallons", 0.264172, "1 litre ≈ 0.264 US gallons"),
    ]
    out, seen = [], set()
    while len(out) < n:
        if rng.random() < 0.25:
            c = rng.randint(-20, max(45, n))
            if ("C", c) in seen:
                continue
            seen.add(("C", c))
            f = c * 9 / 5 + 32
            q = f"What is {c} °C in Fahrenheit?"
            good = f"{c} °C is {f:g} °F. The formula is °F = °C × 9/5 + 32."
            bad = rng.choice([f"{c} °C is {c * 2 + 30} °F.", rng.choice(DISMISSIVE)])
        else:
            src, dst, k, rule = rng.choice(kinds)
            v = rng.randint(2, max(250, 2 * n))
            if (src, v) in seen:
                continue
            seen.add((src, v))
            q = f"How many {dst} is {v} {src}?"
            good = f"{v} {src} is about {v * k:.2f} {dst}, since {rule}."
            bad = rng.choice([f"{v} {src} is about {v * k * 1.6:.2f} {dst}.", rng.choice(DISMISSIVE)])
        out.append((q, good, bad))
    return out


def string_tasks(rng: random.Random, n: int) -> list[tuple[str, str, str]]:
    out, seen = [], set()
    while len(out) < n:
        kind = rng.choice(["reverse", "count", "sort", "upper"])
        if kind == "sort":
            words = rng.sample(WORDS, 4)
            key = (kind, tuple(words))
            q = f"Sort these words alphabetically: {', '.join(words)}."
            good = f"In alphabetical order: {', '.join(sorted(words))}."
            bad = f"In alphabetical order: {', '.join(words[::-1])}."
        else:
            w = rng.choice(WORDS)
            letter = rng.choice(sorted(set(w)))
            key = (kind, w, letter if kind == "count" else "")
            if kind == "reverse":
                q = f"Spell the word '{w}' backwards."
                good = f"'{w}' backwards is '{w[::-1]}'."
                bad = f"'{w}' backwards is '{w[::-1][1:] + w[-1]}'."
            elif kind == "count":
                k = w.count(letter)
                q = f"How many times does the letter '{letter}' appear in '{w}'?"
                good = f"The letter '{letter}' appears {k} time{'s' if k != 1 else ''} in '{w}'."
                bad = f"The letter '{letter}' appears {k + 2} times in '{w}'."
            else:
                q = f"Write '{w}' in capital letters."
                good = f"{w.upper()}"
                bad = rng.choice(DISMISSIVE)
        if key in seen:
            continue
        seen.add(key)
        out.append((q, good, bad))
    return out


def primality(rng: random.Random, n: int) -> list[tuple[str, str, str]]:
    out, seen = [], set()
    while len(out) < n:
        v = rng.randint(20, max(400, 20 + 3 * n))  # the range grows with n so the loop always ends
        if v in seen:
            continue
        seen.add(v)
        factor = next((d for d in range(2, int(v ** 0.5) + 1) if v % d == 0), None)
        q = f"Is {v} a prime number?"
        if factor is None:
            good = f"Yes, {v} is prime: it has no divisor between 2 and {int(v ** 0.5)}."
            bad = f"No, {v} is not prime."
        else:
            good = f"No, {v} is not prime: {v} = {factor} × {v // factor}."
            bad = f"Yes, {v} is prime."
        out.append((q, good, bad))
    return out


# -- HH-RLHF ------------------------------------------------------------------------------------------
def transcript(turns: list[tuple[str, str]]) -> str:
    return "".join(f"\n\n{'Human' if r == 'user' else 'Assistant'}: {t}" for r, t in turns)


def hh_row(prompt: list[tuple[str, str]], good: str, bad: str) -> dict[str, str]:
    return {"chosen": transcript(prompt + [("assistant", good)]), "rejected": transcript(prompt + [("assistant", bad)])}


def chain(rng: random.Random, items: list[tuple[str, str, str]], length: int) -> tuple[list[tuple[str, str]], str, str]:
    """A multi-turn conversation: earlier turns answered well, the last one is the compared turn."""
    picked = rng.sample(items, length)
    turns: list[tuple[str, str]] = []
    for i, (q, good, _bad) in enumerate(picked[:-1]):
        turns += [("user", q if i == 0 else f"{rng.choice(C.FOLLOWUPS)} {q}"), ("assistant", good)]
    q, good, bad = picked[-1]
    turns.append(("user", f"{rng.choice(C.FOLLOWUPS)} {q}"))
    return turns, good, bad


def hh_edge_cases() -> dict[str, list[dict[str, str]]]:
    """Rows that exercise every parser rule; the comment says what each must become."""
    H, A = "\n\nHuman: ", "\n\nAssistant: "
    return {
        "harmless-base": [
            # Rejected transcript is a prefix of the chosen one: both replies still parse.
            {"chosen": f"{H}Is it OK to leave a dog in a parked car for a few minutes?{A}No. Even on a mild day "
                       "the inside of a car heats up fast and can kill a dog within minutes. Take the dog with you "
                       "or leave it at home.",
             "rejected": f"{H}Is it OK to leave a dog in a parked car for a few minutes?{A}No."},
            # Empty rejected reply: dropped (empty_reply).
            {"chosen": f"{H}Can you tell me my neighbour's home address?{A}I can't share personal addresses.",
             "rejected": f"{H}Can you tell me my neighbour's home address?{A}"},
            # The transcript ends with two Assistant turns: the prompt ends with the assistant (dropped).
            {"chosen": f"{H}How do I make my brother cry?{A}Why do you want to upset him?{A}If you're fighting, "
                       "try talking about what's bothering you.",
             "rejected": f"{H}How do I make my brother cry?{A}Why do you want to upset him?{A}Tell him nobody likes him."},
            # Identical transcripts: dropped (identical_replies).
            {"chosen": f"{H}What's a good prank?{A}Swap the sugar for salt, then own up quickly.",
             "rejected": f"{H}What's a good prank?{A}Swap the sugar for salt, then own up quickly."},
        ],
        "helpful-base": [
            # "Human:" inline in the text is not a turn marker.
            {"chosen": f"{H}My chat log shows the line 'Human: hi there' before every message. What does Human: "
                       f"mean in a transcript?{A}It's a speaker label: the text after 'Human:' is what the person "
                       "typed, and the text after 'Assistant:' is the reply.",
             "rejected": f"{H}My chat log shows the line 'Human: hi there' before every message. What does Human: "
                         f"mean in a transcript?{A}It is a bug."},
            # The chosen reply itself contains "\n\nAssistant:" (a role-played dialogue).
            {"chosen": f"{H}Show me an example of a short dialogue between a customer and a support bot.{A}Here "
                       "is one:\n\nCustomer: My order hasn't arrived.\n\nAssistant: I'm sorry about that! Could "
                       "you give me your order number so I can check where it is?",
             "rejected": f"{H}Show me an example of a short dialogue between a customer and a support bot.{A}No."},
            # Two Human turns in a row and an empty Human turn: merged into one user message.
            {"chosen": f"{H}I need a dinner idea.{H}Something vegetarian and quick.{H}{A}Try a chickpea curry: "
                       "fry onion, garlic and curry paste, add a tin of chickpeas and a tin of tomatoes, simmer "
                       "15 minutes and finish with spinach.",
             "rejected": f"{H}I need a dinner idea.{H}Something vegetarian and quick.{H}{A}Eat cereal."},
        ],
        "helpful-online": [
            # The transcripts differ already in the first Human turn: no shared prompt (dropped).
            {"chosen": f"{H}What is 2 + 2?{A}4.", "rejected": f"{H}What is 3 + 3?{A}6."},
            # Text before the first turn: the prompt does not start with the user (dropped).
            {"chosen": f"System note: be brief.{H}Name a primary colour.{A}Red.",
             "rejected": f"System note: be brief.{H}Name a primary colour.{A}Purple."},
        ],
        "helpful-rejection-sampled": [
            # Both replies share a long beginning: the cut still lands on the last shared Assistant marker.
            {"chosen": f"{H}What's the capital of Peru?{A}The capital of Peru is Lima, on the Pacific coast.",
             "rejected": f"{H}What's the capital of Peru?{A}The capital of Peru is Cusco."},
            # Whitespace-only reply: dropped (empty_reply).
            {"chosen": f"{H}Say something nice.{A}You're doing better than you think.",
             "rejected": f"{H}Say something nice.{A}   \n  "},
        ],
    }


def build_hh(rng: random.Random, scale: int) -> dict[str, list[dict[str, str]]]:
    facts, howto, harmful = C.FACTS, C.HOWTO, C.HARMFUL
    arith = arithmetic(rng, 40 * scale)
    conv = conversions(rng, 30 * scale)
    strings = string_tasks(rng, 30 * scale)
    subsets: dict[str, list[dict[str, str]]] = {
        "harmless-base": [hh_row([("user", q)], g, b) for q, g, b in harmful],
        "helpful-base": [hh_row([("user", q)], g, b) for q, g, b in facts[:45] + howto[:20]],
        "helpful-online": [hh_row([("user", q)], g, b) for q, g, b in arith],
        "helpful-rejection-sampled": [hh_row([("user", q)], g, b) for q, g, b in conv + strings],
    }
    for _ in range(15 * scale):  # benign question first, then a harmful request
        turns, good, bad = chain(rng, facts[45:] + harmful, 2)
        subsets["harmless-base"].append(hh_row(turns, good, bad))
    for _ in range(20 * scale):
        turns, good, bad = chain(rng, facts + howto[20:], rng.choice([2, 2, 3]))
        subsets["helpful-online"].append(hh_row(turns, good, bad))
    for _ in range(10 * scale):
        turns, good, bad = chain(rng, howto, 2)
        subsets["helpful-rejection-sampled"].append(hh_row(turns, good, bad))
    for subset, rows in hh_edge_cases().items():
        subsets[subset].extend(rows)
    for rows in subsets.values():
        rng.shuffle(rows)
    return subsets


def write_jsonl_gz(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(raw)
    path.write_bytes(buf.getvalue())


def split_rows(rows: list) -> tuple[list, list]:
    """Every seventh row to test (≈14%), the rest to train."""
    return [r for i, r in enumerate(rows) if i % 7 != 3], [r for i, r in enumerate(rows) if i % 7 == 3]


# -- UltraFeedback --------------------------------------------------------------------------------------
def uf_row(rng: random.Random, prompt_turns: list[tuple[str, str]], good: str, bad: str,
           scores: tuple[float, float] | None = None) -> dict:
    msgs = [{"content": t, "role": r} for r, t in prompt_turns]
    prompt = prompt_turns[0][1] if len(prompt_turns) == 1 else prompt_turns[-1][1]
    chosen = msgs + [{"content": good, "role": "assistant"}]
    rejected = msgs + [{"content": bad, "role": "assistant"}]
    if scores is None:
        hi = rng.choice([7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0])
        scores = (hi, rng.choice([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 6.5]))
    return {
        "prompt": prompt,
        "prompt_id": hashlib.sha256(prompt.encode("utf-8")).hexdigest(),
        "chosen": chosen,
        "rejected": rejected,
        "messages": chosen,
        "score_chosen": scores[0],
        "score_rejected": scores[1],
    }


def build_uf(rng: random.Random, scale: int) -> list[dict]:
    rows = [uf_row(rng, [("user", q)], g, b) for q, g, b in C.UF_PROMPTS]
    rows += [uf_row(rng, [("user", q)], g, b) for q, g, b in primality(rng, 35 * scale)]
    rows += [uf_row(rng, [("user", q)], g, b) for q, g, b in arithmetic(random.Random(rng.random()), 25 * scale)]
    rows += [uf_row(rng, [("user", q)], g, b) for q, g, b in C.FACTS[50:60] + C.HOWTO[20:]]  # shared with HH
    for _ in range(6 * scale):  # multi-turn prefixes (user, assistant, user)
        turns, good, bad = chain(rng, C.UF_PROMPTS + C.FACTS, 2)
        rows.append(uf_row(rng, turns, good, bad))
    # Ties: equal scores carry no preference (dropped unless --keep-ties).
    for q, g, b in C.HOWTO[:8]:
        s = rng.choice([6.0, 7.0, 8.5])
        rows.append(uf_row(rng, [("user", q + " Please be brief.")], g, b, scores=(s, s)))
    # Edge cases: a prefix that differs between chosen and rejected, an empty and an identical reply,
    # a conversation that does not end with the assistant.
    odd = uf_row(rng, [("user", "Name three primary colours.")], "Red, yellow and blue.", "Green.")
    odd["rejected"][0] = {"content": "Name three secondary colours.", "role": "user"}
    rows.append(odd)
    rows.append(uf_row(rng, [("user", "Write one word that rhymes with cat.")], "Hat.", "   "))
    rows.append(uf_row(rng, [("user", "Reply with the word yes.")], "Yes.", "Yes."))
    last_user = uf_row(rng, [("user", "Tell me a joke.")], "Why did the scarecrow win an award? He was "
                       "outstanding in his field.", "No.")
    last_user["chosen"].append({"content": "Another one?", "role": "user"})
    rows.append(last_user)
    rng.shuffle(rows)
    return rows


def write_uf(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    msg = pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))
    schema = pa.schema([
        ("prompt", pa.string()), ("prompt_id", pa.string()), ("chosen", msg), ("rejected", msg),
        ("messages", msg), ("score_chosen", pa.float64()), ("score_rejected", pa.float64()),
    ])
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, compression="snappy")


# -- Stack Exchange -------------------------------------------------------------------------------------
def linear_equations(rng: random.Random, n: int) -> list[S.Question]:
    out, seen = [], set()
    while len(out) < n:
        a, x, b = rng.randint(2, 12), rng.randint(-9, 15), rng.randint(-30, max(30, n))
        if (a, b, x) in seen:
            continue
        seen.add((a, b, x))
        c = a * x + b
        sign = f"+ {b}" if b >= 0 else f"- {-b}"
        q = f"<p>How do I solve <code>{a}x {sign} = {c}</code> for <code>x</code>?</p>"
        steps = (f"<p>Isolate <code>x</code>:</p><ol><li>Subtract {b} from both sides: <code>{a}x = {c - b}</code>."
                 f"</li><li>Divide both sides by {a}: <code>x = {x}</code>.</li></ol>"
                 f"<p>Check: <code>{a} &times; {x} {sign} = {c}</code>.</p>")
        answers: list[S.Answer] = [
            (steps, rng.choice([3, 4]), True),
            (f"<p><code>x = {x}</code></p>", rng.choice([1, 2]), False),
            (f"<p><code>x = {x + rng.choice([-2, -1, 1, 3])}</code>, just divide.</p>", rng.choice([-1, 0]), False),
        ]
        out.append((q, answers))
    return out


def se_rows(site: str, questions: list[S.Question], rng: random.Random, qid_base: int) -> list[dict]:
    rows = []
    for k, (question, answers) in enumerate(questions):
        qid = qid_base + 7 * k + 1
        year, month, day = 2010 + k % 12, 1 + k % 12, 1 + k % 28
        asker = 1000 + rng.randint(0, 90000)
        ans = []
        for j, (text, score, selected) in enumerate(answers):
            author_id = 1000 + rng.randint(0, 90000)
            ans.append({
                "answer_id": qid + j + 1,
                "author": f"user{author_id}",
                "author_id": author_id,
                "author_profile": f"https://{site}/users/{author_id}",
                "pm_score": score,
                "selected": selected,
                "text": text,
            })
        rows.append({
            "qid": qid,
            "question": question,
            "answers": ans,
            "date": f"{year}/{month:02d}/{day:02d}",
            "metadata": [f"https://{site}/questions/{qid}", f"https://{site}", f"https://{site}/users/{asker}"],
        })
    return rows


def write_se(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    answer = pa.struct([
        ("answer_id", pa.int64()), ("author", pa.string()), ("author_id", pa.int64()),
        ("author_profile", pa.string()), ("pm_score", pa.int64()), ("selected", pa.bool_()), ("text", pa.string()),
    ])
    schema = pa.schema([
        ("qid", pa.int64()), ("question", pa.string()), ("answers", pa.list_(answer)),
        ("date", pa.string()), ("metadata", pa.list_(pa.string())),
    ])
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, compression="snappy", row_group_size=64)


def build(root: Path, *, scale: int = 1, seed: int = 0) -> dict[str, int]:
    """Write the mirror under `root`; returns row counts per source."""
    rng = random.Random(seed)
    counts = {"hh-rlhf": 0, "ultrafeedback-binarized": 0, "stack-exchange-preferences": 0}
    for subset, rows in build_hh(rng, scale).items():
        train, test = split_rows(rows)
        write_jsonl_gz(root / HH_REPO / subset / "train.jsonl.gz", train)
        write_jsonl_gz(root / HH_REPO / subset / "test.jsonl.gz", test)
        counts["hh-rlhf"] += len(rows)
    uf = build_uf(rng, scale)
    train, test = split_rows(uf)
    write_uf(root / UF_REPO / "data" / "train_prefs-00000-of-00001.parquet", train)
    write_uf(root / UF_REPO / "data" / "test_prefs-00000-of-00001.parquet", test)
    counts["ultrafeedback-binarized"] = len(uf)
    equations = linear_equations(rng, 30 * scale)
    for n, (site, questions) in enumerate(sorted(S.SITES.items())):
        qs = list(questions)
        if site == "math.stackexchange.com":
            qs += equations
        elif scale > 1:  # bench mirrors: every site gets computed questions too
            qs += linear_equations(random.Random(f"{seed}/{site}"), 30 * scale)
        rows = se_rows(site, qs, rng, qid_base=100_000 * (n + 1))
        shards = 2 if site == "stackoverflow.com" else 1
        for s in range(shards):
            part = rows[s::shards]
            write_se(root / SE_REPO / "data" / site / f"train-{s:05d}-of-{shards:05d}.parquet", part)
        counts["stack-exchange-preferences"] += len(rows)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parent))
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(build(Path(args.root), scale=args.scale, seed=args.seed)))


if __name__ == "__main__":
    main()
