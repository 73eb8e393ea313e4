"""Every command's flag errors: exit 1, one exact `Error:` line and a `Hint:` line, before anything runs.

Errors raised without a hint of their own get the boundary's, which names the command's --help; the table walks
each command's range checks, so a command (or a new flag) that prints a bare `Error:` fails here.
"""

from __future__ import annotations

import pytest


def _help_hint(command: str) -> str:
    return f"Hint: `kat {command} --help` lists each flag with the values it accepts"


# (command argv, bad flags, exact error line, exact hint line)
CASES = [
    ("pairs download", ["--budget", "-5"],
     "Error: --budget must be a number of pairs like 200000, 200k or 1.5M, got '-5'", _help_hint("pairs download")),
    ("pairs download", ["--budget", "0"], "Error: --budget must be at least 1, got '0'", _help_hint("pairs download")),
    ("pairs download", ["--se-pairs-per-question", "0"], "Error: --se-pairs-per-question must be at least 1",
     _help_hint("pairs download")),
    ("pairs download", ["--mix", "hh=-1"], "Error: --mix weight for 'hh' must be at least 0, got '-1'",
     _help_hint("pairs download")),
    ("embed", ["--k", "0"], "Error: --k must be at least 1 (got 0)", _help_hint("embed")),
    ("embed", ["--eps", "0"], "Error: --eps must be a positive number (got 0.0)", _help_hint("embed")),
    ("embed", ["--power", "-1"], "Error: --power must be a number ≥ 0 (got -1.0)",
     "Hint: 0 gives uniform weights; larger values up-weight rare prompts more"),
    ("embed", ["--max-ratio", "0.5"], "Error: --max-ratio must be at least 1 (got 0.5)", _help_hint("embed")),
    ("embed", ["--batch-size", "0"], "Error: --batch-size must be at least 1 (got 0)", _help_hint("embed")),
    ("embed", ["--build-threads", "0"], "Error: --build-threads must be at least 1 (got 0)", _help_hint("embed")),
    ("embed", ["--target-recall", "1.5"], "Error: --target-recall must be in (0, 1] (got 1.5)",
     "Hint: a share of true neighbours found: 0.95 (the default) or up to 1.0, which searches widest"),
    ("train tokenizer", ["--vocab-size", "3"],
     "Error: --vocab-size must be at least 265 (256 byte tokens + 9 special tokens)", _help_hint("train tokenizer")),
    ("train tokenizer", ["--max-chars", "0"], "Error: --max-chars must be at least 1", _help_hint("train tokenizer")),
    ("train rm", ["--max-steps", "0"], "Error: --max-steps must be at least 1", _help_hint("train rm")),
    ("train rm", ["--lr", "-1"], "Error: --lr must be positive", _help_hint("train rm")),
    ("train rm", ["--val-ratio", "1.5"], "Error: --val-ratio must be between 0 and 1 (exclusive)",
     _help_hint("train rm")),
    ("train rm", ["--batch-size", "0"], "Error: --batch-size must be at least 1", _help_hint("train rm")),
    ("train rm", ["--micro-batch-size", "0"], "Error: --micro-batch-size must be at least 1", _help_hint("train rm")),
    ("train rm", ["--warmup-steps", "-1"], "Error: --warmup-steps must be 0 or more", _help_hint("train rm")),
    ("train rm", ["--weight-decay", "-1"], "Error: --weight-decay must be 0 or more", _help_hint("train rm")),
    ("train rm", ["--grad-clip", "-1"], "Error: --grad-clip must be 0 (off) or more", _help_hint("train rm")),
    ("train rm", ["--eval-every", "-1"], "Error: --eval-every must be 0 (only at the end) or more",
     _help_hint("train rm")),
    ("train rm", ["--max-len", "0"], "Error: --max-len must be at least 16", _help_hint("train rm")),
    ("train rm", ["--depth", "0"], "Error: --depth must be at least 1", _help_hint("train rm")),
    ("train rm", ["--threads", "0"], "Error: --threads must be at least 1", _help_hint("train rm")),
    ("train rm", ["--device", "tpu"], "Error: --device must be one of auto, cpu, cuda (got 'tpu')",
     _help_hint("train rm")),
    ("train rm", ["--weights", "sharp"], "Error: --weights only applies with --density-aware", _help_hint("train rm")),
    ("train dpo", ["--density-aware", "--weights", "a/b"],
     "Error: --weights must be a weight set's name (letters, digits, '.', '_' or '-')", _help_hint("train dpo")),
    ("embed", ["--name", "../x"],
     "Error: --name must be letters, digits, '.', '_' or '-' (no slashes), starting alphanumeric", _help_hint("embed")),
    ("pairs download", ["--columns", "answer=x"],
     "Error: --columns entries look like chosen=COLUMN (parts: prompt, chosen, rejected), got 'answer=x'",
     _help_hint("pairs download")),
    ("train rm", ["--reward-centering", "-1"], "Error: --reward-centering must be 0 (off) or more",
     _help_hint("train rm")),
    ("train dpo", ["--beta", "0"], "Error: --beta must be a positive number (got 0.0)", _help_hint("train dpo")),
    ("train dpo", ["--loss", "kto"],
     "Error: --loss must be one of sigmoid, ipo, hinge, robust, simpo, orpo (got 'kto')",
     _help_hint("train dpo")),
    ("train dpo", ["--label-smoothing", "0.5"], "Error: --label-smoothing must be at least 0 and below 0.5 (got 0.5)",
     _help_hint("train dpo")),
    ("train dpo", ["--loss", "ipo", "--label-smoothing", "0.1"],
     "Error: --label-smoothing only applies to --loss sigmoid or robust, not --loss ipo", _help_hint("train dpo")),
    ("train dpo", ["--sft-weight", "-1"], "Error: --sft-weight must be 0 (off) or more (got -1.0)",
     _help_hint("train dpo")),
    ("train dpo", ["--max-steps", "0"], "Error: --max-steps must be at least 1", _help_hint("train dpo")),
    ("train sft", ["--max-steps", "0"], "Error: --max-steps must be at least 1", _help_hint("train sft")),
    ("train sft", ["--val-ratio", "1.5"], "Error: --val-ratio must be between 0 and 1 (exclusive)",
     _help_hint("train sft")),
    ("train sft", ["--lr", "0"], "Error: --lr must be positive", _help_hint("train sft")),
    ("train sft", ["--max-len", "64", "--max-response-len", "60"],
     "Error: --max-response-len must be between 1 and --max-len − 8 (56)", _help_hint("train sft")),
    ("train dpo", ["--loss", "orpo", "--sft-weight", "1"],
     "Error: --sft-weight does not apply to --loss orpo: its loss already is the chosen reply's NLL plus --beta × "
     "the odds-ratio term", "Hint: weigh the odds-ratio term with --beta (ORPO's λ)"),
    ("train dpo", ["--simpo-gamma", "1"], "Error: --simpo-gamma only applies to --loss simpo, not --loss sigmoid",
     _help_hint("train dpo")),
    ("train kto", ["--beta", "0"], "Error: --beta must be a positive number (got 0.0)", _help_hint("train kto")),
    ("train kto", ["--undesirable-weight", "-1"], "Error: --undesirable-weight must be a positive number (got -1.0)",
     _help_hint("train kto")),
    ("train ppo", ["--rm", "x", "--lam", "2"], "Error: --lam must be in [0, 1] (got 2.0)", _help_hint("train ppo")),
    ("train ppo", ["--rm", "x", "--ppo-epochs", "0"], "Error: --ppo-epochs must be at least 1 (got 0)",
     _help_hint("train ppo")),
    ("train grpo", ["--rm", "x", "--advantage", "rloo", "--scale-rewards", "batch"],
     "Error: --scale-rewards batch only applies to --advantage group, not --advantage rloo",
     "Hint: rloo uses the raw leave-one-out difference; reinforce++ whitens over the whole batch itself"),
    ("train grpo", ["--max-steps", "0"], "Error: --max-steps must be at least 1", _help_hint("train grpo")),
    ("train grpo", ["--prompts-per-step", "0"], "Error: --prompts-per-step must be at least 1",
     _help_hint("train grpo")),
    ("train grpo", ["--micro-batch-size", "0"], "Error: --micro-batch-size must be at least 1",
     _help_hint("train grpo")),
    ("train grpo", ["--rm", "x", "--max-new-tokens", "0"], "Error: --max-new-tokens must be at least 1",
     _help_hint("train grpo")),
    ("train grpo", ["--rm", "x", "--top-p", "2"], "Error: --top-p must be in (0, 1]", _help_hint("train grpo")),
    ("train grpo", ["--rm", "x", "--top-k", "0"], "Error: --top-k must be at least 1", _help_hint("train grpo")),
    ("train grpo", ["--rm", "x", "--temperature", "0"],
     "Error: --temperature 0 samples the same reply --group-size times: every group has zero reward spread and "
     "nothing is learned", "Hint: sample with --temperature 1.0 (evaluation adds greedy replies by itself)"),
    ("train grpo", ["--rm", "x", "--epsilon", "0"], "Error: --epsilon must be in (0, 1), got 0.0: the clip keeps "
     "ratios in [1 − ε, 1 + ε]", "Hint: PPO's usual value is 0.2"),
    ("train grpo", ["--rm", "x", "--beta", "-1"], "Error: --beta must be 0 or positive, got -1.0",
     "Hint: 0 turns the KL penalty off"),
    ("train grpo", ["--rm", "x", "--num-iterations", "0"], "Error: --num-iterations must be at least 1, got 0",
     "Hint: 1 is fully on-policy: one gradient step per rollout batch"),
    ("train grpo", ["--rm", "x", "--eval-prompts", "0"], "Error: --eval-prompts must be at least 1",
     _help_hint("train grpo")),
    ("train grpo", ["--rm", "x", "--eval-samples", "0"], "Error: --eval-samples must be at least 1",
     _help_hint("train grpo")),
    ("eval rm", ["ckpt", "--batch-size", "0"], "Error: --batch-size must be at least 1", _help_hint("eval rm")),
    ("eval rm", ["ckpt", "--threads", "0"], "Error: --threads must be at least 1", _help_hint("eval rm")),
    ("eval rm", ["ckpt", "--device", "tpu"], "Error: --device must be one of auto, cpu, cuda (got 'tpu')",
     _help_hint("eval rm")),
    ("import nanochat", ["{base}", "--step", "-1"], "Error: --step must be 0 or more", _help_hint("import nanochat")),
    ("import nanochat", ["{base}", "--name", "a/b"],
     "Error: --name must be letters, digits, '.', '_' or '-' (no slashes), starting alphanumeric",
     _help_hint("import nanochat")),
    ("eval policy", ["p", "--prompts", "0"], "Error: --prompts must be at least 1", _help_hint("eval policy")),
    ("eval policy", ["p", "--samples", "0"], "Error: --samples must be at least 1", _help_hint("eval policy")),
    ("eval policy", ["p", "--top-p", "2"], "Error: --top-p must be in (0, 1]", _help_hint("eval policy")),
    ("report", ["--batch-size", "0"], "Error: --batch-size must be at least 1", _help_hint("report")),
    ("report", ["--threads", "0"], "Error: --threads must be at least 1", _help_hint("report")),
    ("viz", ["--max-points", "0"], "Error: --max-points must be at least 1", _help_hint("viz")),
    ("viz", ["--seed", "-1"], "Error: --seed must be zero or positive", _help_hint("viz")),
    ("quickstart", ["--rm-steps", "0"], "Error: --rm-steps must be at least 1, got 0", _help_hint("quickstart")),
]


@pytest.mark.parametrize(("command", "flags", "error", "hint"), CASES, ids=[f"{c[0]} {' '.join(c[1])}" for c in CASES])
def test_a_bad_flag_is_one_error_line_and_a_hint(kat, ws_dir, tmp_path, command, flags, error, hint):
    base = tmp_path / "nanochat"
    base.mkdir()
    args = [*command.split(), *(f.replace("{base}", str(base)) for f in flags)]
    if command == "quickstart":
        args += ["-w", str(ws_dir)]
    result = kat(*args)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [error, hint]
    assert not (ws_dir / "data").exists()  # refused before anything was read or written


def test_every_command_with_flags_is_in_the_table():
    import typer

    from katcli.cli.app import app

    def leaves(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs is None:
            yield " ".join(path), cmd
        for name, sub in (subs or {}).items():
            yield from leaves(sub, (*path, name))

    tabled = {c[0] for c in CASES}
    numeric = {name for name, cmd in leaves(typer.main.get_command(app), ())
               if any(p.param_type_name == "option" and p.type.name in {"int", "integer", "float"} for p in cmd.params)}
    assert {"embed", "train rm", "eval rm"} <= numeric  # the walk sees the real commands' flags
    assert numeric <= tabled, f"commands with numeric flags but no bad-flag case: {sorted(numeric - tabled)}"


@pytest.mark.parametrize(
    ("make", "error", "hint"),
    [
        (lambda d: d / "nope.jsonl", "Error: FILE {p} does not exist",
         "Hint: check the path (relative paths start at the current directory, not the workspace)"),
        (lambda d: d, "Error: FILE {p} is a directory", "Hint: pass the JSONL files inside it, e.g. {p}/*.jsonl"),
    ],
    ids=["missing", "directory"],
)
def test_pairs_import_of_a_missing_path_or_a_directory(kat, tmp_path, make, error, hint):
    path = make(tmp_path)
    result = kat("pairs", "import", str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [error.format(p=path), hint.format(p=path)]
