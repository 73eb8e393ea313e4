"""The pipeline's stages, in order: what each is called, which command produces it, what it writes.

Status rows, the "run X first" hints and the next-command suggestion all come from this table. It does
not know how a stage computes anything, nor what its latest run recorded (that is the manifest).
"""

from __future__ import annotations

from dataclasses import dataclass

from katcli.workspace import paths as P


@dataclass(frozen=True)
class StageSpec:
    name: str
    title: str
    command: str  # the command that (re)produces this stage's outputs
    outputs: tuple[str, ...]  # expected outputs; a trailing "/" means "files under this directory"
    named: bool = False  # one run per `--name` (e.g. rm/uniform, rm/density)
    optional: bool = False  # not part of the main pipeline: never suggested as "next"

    def key(self, name: str | None = None) -> str:
        return f"{self.name}/{name}" if self.named else self.name

    def outputs_for(self, name: str | None = None) -> tuple[str, ...]:
        return tuple(o.format(name=name or "") for o in self.outputs)

    def command_for(self, name: str | None = None) -> str:
        return self.command.format(name=name) if self.named and name else self.command.split(" --name")[0]

    def owns(self, path: str, name: str | None = None) -> bool:
        for out in self.outputs_for(name):
            if out.endswith("/") and path.startswith(out):
                return True
            if out == path:
                return True
        return False


STAGES: tuple[StageSpec, ...] = (
    StageSpec("pairs", "Preference pairs", "kat pairs download", (P.PAIRS,)),
    StageSpec("prefixes", "Unique prefixes", "kat prefixes", (P.PREFIXES, P.PREFIX_ID_MAP)),
    StageSpec(
        "embed",
        "Embeddings & density",
        "kat embed",
        (P.EMBEDDINGS, P.DENSITY_WEIGHTS, P.EMBED_IDS, P.EMBED_METADATA),
    ),
    StageSpec("tokenizer", "Tokenizer", "kat train tokenizer", (f"{P.TOKENIZER_DIR}/",)),
    StageSpec("rm", "Reward model", "kat train rm --name {name}", (f"{P.RM_DIR}/{{name}}/",), named=True),
    StageSpec("sft", "SFT policy", "kat train sft --name {name}", (f"{P.SFT_DIR}/{{name}}/",), named=True),
    StageSpec("dpo", "DPO policy", "kat train dpo --name {name}", (f"{P.DPO_DIR}/{{name}}/",), named=True),
    StageSpec("viz", "3D view", "kat viz", (f"{P.VIZ_DIR}/embeddings_3d.json", f"{P.VIZ_DIR}/embeddings_3d.html")),
    StageSpec(
        "model",
        "Imported model",
        "kat import nanochat",
        (f"{P.MODELS_DIR}/{{name}}/",),
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


def fix_command(path: str) -> str:
    """The command that writes `path` (for "run X first" hints)."""
    found = producer_of(path)
    if found is None:
        return "the stage that writes it"
    s, name = found
    return s.command_for(name)
