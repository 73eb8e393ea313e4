"""The pipeline's stages, in order: what each is called, which command produces it, what it writes.

Status rows, the "run X first" hints and the next-command suggestion all come from this table, or, once a
stage has run, from the command line its run recorded (`rerun_command`), so a re-run keeps its flags. It
does not know how a stage computes anything, nor what its latest run recorded (that is the manifest).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from katcli.workspace import paths as P


@dataclass(frozen=True)
class StageSpec:
    name: str
    title: str
    command: str  # the command that (re)produces this stage's outputs
    outputs: tuple[str, ...]  # expected outputs; a trailing "/" means "files under this directory"
    named: bool = False  # one run per `--name` (e.g. rm/uniform, rm/density)
    optional: bool = False  # not part of the main pipeline: "next" only once every main stage is ok
    also: tuple[str, ...] = ()  # other commands that record this stage (e.g. `kat pairs import`)

    def key(self, name: str | None = None) -> str:
        return f"{self.name}/{name}" if self.named else self.name

    def outputs_for(self, name: str | None = None) -> tuple[str, ...]:
        return tuple(o.format(name=name or "") for o in self.outputs)

    def command_for(self, name: str | None = None) -> str:
        return self.command.format(name=name) if self.named and name else self.command.split(" --name")[0]

    def runs_as(self, words: list[str]) -> bool:
        """Whether a command's words (after `kat` and its global options) are one of this stage's commands."""
        for command in (self.command, *self.also):
            own = command.split()[1:]
            own = own[: next((i for i, w in enumerate(own) if w.startswith("-")), len(own))]
            if words[: len(own)] == own:
                return True
        return False

    def owns(self, path: str, name: str | None = None) -> bool:
        for out in self.outputs_for(name):
            if out.endswith("/") and path.startswith(out):
                return True
            if out == path:
                return True
        return False


STAGES: tuple[StageSpec, ...] = (
    StageSpec("pairs", "Preference pairs", "kat pairs download", (P.PAIRS,), also=("kat pairs import",)),
    StageSpec("prefixes", "Unique prefixes", "kat prefixes", (P.PREFIXES, P.PREFIX_ID_MAP)),
    StageSpec(
        "embed",
        "Embeddings & density",
        "kat embed",
        (P.EMBEDDINGS, P.DENSITY_WEIGHTS, P.EMBED_IDS, P.EMBED_METADATA),
    ),
    # Further weightings from the same embeddings (`kat embed --name sharp --power 2`): compared in one report.
    StageSpec("weights", "Density weight set", "kat embed --name {name}", (f"{P.WEIGHT_SETS_DIR}/{{name}}/",),
              named=True, optional=True),
    StageSpec("tokenizer", "Tokenizer", "kat train tokenizer", (f"{P.TOKENIZER_DIR}/",)),
    StageSpec("rm", "Reward model", "kat train rm --name {name}", (f"{P.RM_DIR}/{{name}}/",), named=True),
    StageSpec("sft", "SFT policy", "kat train sft --name {name}", (f"{P.SFT_DIR}/{{name}}/",), named=True),
    StageSpec("dpo", "DPO policy", "kat train dpo --name {name}", (f"{P.DPO_DIR}/{{name}}/",), named=True),
    # GRPO cannot run without a reward model: suggest the one `kat train rm` names by default.
    StageSpec("grpo", "GRPO policy", "kat train grpo --rm uniform --name {name}", (f"{P.GRPO_DIR}/{{name}}/",),
              named=True),
    # Optional (not suggested as "next"): the pipeline's main path is the DPO and GRPO arms.
    StageSpec("kto", "KTO policy", "kat train kto --name {name}", (f"{P.KTO_DIR}/{{name}}/",), named=True,
              optional=True),
    StageSpec("ppo", "PPO policy", "kat train ppo --rm uniform --name {name}", (f"{P.PPO_DIR}/{{name}}/",),
              named=True, optional=True),
    StageSpec("viz", "3D view", "kat viz", (f"{P.VIZ_DIR}/embeddings_3d.json", f"{P.VIZ_DIR}/embeddings_3d.html")),
    # Optional until every stage it reports on exists: then `kat status` may suggest it as the last step.
    StageSpec("report", "Report", "kat report", (f"{P.REPORTS_DIR}/",), optional=True),
    StageSpec(
        "model",
        "Imported model",
        "kat import nanochat",
        (f"{P.MODELS_DIR}/{{name}}/",),
        named=True,
        optional=True,
    ),
    StageSpec(
        "eval-policy",
        "Policy eval",
        "kat eval policy",
        (f"{P.EVAL_POLICY_DIR}/{{name}}/",),
        named=True,
        optional=True,
    ),
)

_BY_NAME = {s.name: s for s in STAGES}


def spec(name: str) -> StageSpec:
    return _BY_NAME[name]


def split_key(key: str) -> tuple[StageSpec, str | None]:
    """`"rm/uniform"` → (rm spec, "uniform"); `"pairs"` → (pairs spec, None)."""
    stage, _, name = key.partition("/")
    return _BY_NAME[stage], (name or None)


def command_for_key(key: str) -> str:
    s, name = split_key(key)
    return s.command_for(name)


def _without_workspace(argv: list[str]) -> list[str]:
    """`argv` (after `kat`) minus the global `-w/--workspace DIR`: where the workspace is, not how to run."""
    out: list[str] = []
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "--":
        tok = argv[i]
        i += 1
        if tok == "--workspace":
            i += 1
        elif tok.startswith("--workspace="):
            pass
        elif not tok.startswith("--") and "w" in tok:
            flags, _, value = tok[1:].partition("w")  # a short cluster such as -qw DIR or -wDIR
            if flags:
                out.append("-" + flags)
            if not value:
                i += 1
        else:
            out.append(tok)
    return out + argv[i:]


def shown_command(recorded: str) -> str:
    """A recorded command as messages quote it: without its `-w DIR`, which names where the workspace was when it
    ran (wrong once the workspace is copied or moved)."""
    try:
        argv = shlex.split(recorded)
    except ValueError:
        return recorded
    if not argv or argv[0] != "kat":
        return recorded
    return shlex.join(["kat", *_without_workspace(argv[1:])])


def with_resume(command: str) -> str:
    """The command as typed, with `--resume` (once): what continues an interrupted training run."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return f"{command} --resume"
    return shlex.join(argv if "--resume" in argv else [*argv, "--resume"])


def rerun_command(key: str, recorded: str | None) -> str:
    """The command that re-runs `key`: the one its run recorded (flags kept, `-w DIR` dropped).

    Falls back to the registry's command when nothing usable was recorded: an old manifest, or a run
    recorded by something other than this stage's own command (a script calling the pipeline).
    """
    s, _name = split_key(key)
    try:
        argv = shlex.split(recorded or "")
    except ValueError:
        argv = []
    if len(argv) < 2 or argv[0] != "kat":
        return command_for_key(key)
    rest = _without_workspace(argv[1:])
    globals_end = next((i for i, w in enumerate(rest) if not w.startswith("-")), len(rest))
    if not s.runs_as(rest[globals_end:]):
        return command_for_key(key)
    return shlex.join(["kat", *rest])


def producer_of(path: str) -> tuple[StageSpec, str | None] | None:
    """Which stage (and run name) is expected to write `path`, from the layout alone."""
    for s in STAGES:
        if s.named:
            prefix = s.outputs[0].split("{name}")[0]
            if path.startswith(prefix):
                name = path[len(prefix):].split("/", 1)[0]
                return (s, name) if name else None
        elif s.owns(path):
            return s, None
    return None


def fix_command(path: str) -> str | None:
    """The command that writes `path` (for "run X first" hints), or None for a path no stage writes."""
    found = producer_of(path)
    if found is None:
        return None
    s, name = found
    return s.command_for(name)
