"""Re-run hints offer the command a run was recorded with (flags kept, `-w DIR` dropped), for every stage."""

from __future__ import annotations

import json

import pytest
from katfixtures import record_stage

from katcli.errors import UpstreamError
from katcli.workspace import paths as P

# Each stage, in pipeline order: its key, outputs, inputs, the command line it was recorded with (with the
# global workspace option spelled differently each time) and the re-run command status must offer.
CHAIN = [
    ("pairs", None, {P.PAIRS: '{"a": 1}\n'}, (),
     "kat -w /somewhere/else pairs import mine.jsonl --skip-invalid",
     "kat pairs import mine.jsonl --skip-invalid"),
    ("prefixes", None, {P.PREFIXES: "p\n", P.PREFIX_ID_MAP: "a\tp\n"}, (P.PAIRS,),
     "kat -q --workspace ./exp prefixes --force",
     "kat -q prefixes --force"),
    ("embed", None, {P.EMBEDDINGS: "e", P.DENSITY_WEIGHTS: "w", P.EMBED_IDS: "[]", P.EMBED_METADATA: "{}"},
     (P.PREFIXES,),
     "kat --workspace=./exp embed --device cpu --k 7 --text 'prompt only'",
     "kat embed --device cpu --k 7 --text 'prompt only'"),
    ("tokenizer", None, {"tokenizer/tokenizer.json": "{}"}, (P.PAIRS,),
     "kat -w./exp train tokenizer --vocab-size 2048",
     "kat train tokenizer --vocab-size 2048"),
    ("rm", "density", {"rm_checkpoints/density/model_000060.pt": "w"}, (P.PAIRS, P.DENSITY_WEIGHTS),
     "kat -qw ./exp train rm --name density --density-aware --max-steps 60",
     "kat -q train rm --name density --density-aware --max-steps 60"),
    ("sft", "density", {"sft_checkpoints/density/model_000010.pt": "w"}, (P.PAIRS, P.DENSITY_WEIGHTS),
     "kat -w ./exp train sft --density-aware --max-steps 10",
     "kat train sft --density-aware --max-steps 10"),
    ("dpo", "density", {"dpo_checkpoints/density/model_000010.pt": "w"}, (P.PAIRS, P.DENSITY_WEIGHTS),
     "kat -w ./exp train dpo --density-aware --beta 0.2 --max-steps 10",
     "kat train dpo --density-aware --beta 0.2 --max-steps 10"),
    ("grpo", "density", {"grpo_checkpoints/density/model_000010.pt": "w"}, (P.PAIRS, P.DENSITY_WEIGHTS),
     "kat -w ./exp train grpo --rm uniform --density-aware --max-steps 10",
     "kat train grpo --rm uniform --density-aware --max-steps 10"),
    ("viz", None, {f"{P.VIZ_DIR}/embeddings_3d.json": "{}", f"{P.VIZ_DIR}/embeddings_3d.html": "<p>"},
     (P.EMBEDDINGS,),
     "kat -w ./exp viz --max-points 500",
     "kat viz --max-points 500"),
]


def _record_chain(root):
    for stage, name, outputs, inputs, command, _ in CHAIN:
        record_stage(root, stage, outputs, inputs=inputs, name=name, command=command)


def _status(kat):
    result = kat("status", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    return data, {row["key"]: row for row in data["stages"]}


@pytest.mark.parametrize("stage,name,outputs,inputs,command,expected", CHAIN, ids=[c[0] for c in CHAIN])
def test_modified_stage_is_offered_its_recorded_command(kat, ws_dir, stage, name, outputs, inputs, command,
                                                        expected):
    _record_chain(ws_dir)
    first_output = next(iter(outputs))
    (ws_dir / first_output).write_text("edited by hand\n", encoding="utf-8")
    data, rows = _status(kat)
    key = stage if name is None else f"{stage}/{name}"
    assert rows[key]["state"] == "modified"
    assert rows[key]["command"] == expected
    assert data["next_command"] == expected
    assert kat("status").stdout.rstrip().endswith(f"Next: {expected}")


def test_stale_density_model_is_not_offered_a_uniform_retrain(kat, ws_dir):
    _record_chain(ws_dir)
    record_stage(ws_dir, "rm", {"rm_checkpoints/uniform/model_000060.pt": "w"}, inputs=(P.PAIRS,), name="uniform",
                 command="kat -w ./exp train rm --name uniform --max-steps 60")
    new_weights = {**CHAIN[2][2], P.DENSITY_WEIGHTS: "new weights"}  # a re-embed with another k
    record_stage(ws_dir, "embed", new_weights, inputs=(P.PREFIXES,), command="kat -w ./exp embed --k 9")
    data, rows = _status(kat)
    assert rows["rm/density"]["state"] == "stale"
    assert rows["rm/density"]["command"] == "kat -q train rm --name density --density-aware --max-steps 60"
    assert rows["rm/uniform"]["state"] == "ok"
    assert data["next_command"] == "kat -q train rm --name density --density-aware --max-steps 60"
    assert "Next: kat -q train rm --name density --density-aware --max-steps 60" in kat("status").stdout


def test_imported_model_is_offered_its_recorded_command(kat, ws_dir):
    record_stage(ws_dir, "model", {"models/base/model_000100.pt": "w", "models/base/meta_000100.json": "{}"},
                 name="base", command="kat -w ./exp import nanochat /data/nanochat --name base --step 100 --force")
    (ws_dir / "models/base/model_000100.pt").write_text("edited", encoding="utf-8")
    data, rows = _status(kat)
    assert rows["model/base"]["state"] == "modified"
    assert rows["model/base"]["command"] == "kat import nanochat /data/nanochat --name base --step 100 --force"
    assert data["next_command"] == "kat pairs download"  # an optional stage is never "next"


def test_upstream_hint_offers_the_recorded_command(ws_dir):
    _record_chain(ws_dir)
    record_stage(ws_dir, "prefixes", {P.PREFIXES: "q\n", P.PREFIX_ID_MAP: "a\tq\n"}, inputs=(P.PAIRS,),
                 command="kat prefixes")  # embed now reads stale prefixes
    with pytest.raises(UpstreamError) as err:
        record_stage(ws_dir, "viz", CHAIN[5][2], inputs=(P.EMBEDDINGS,))
    assert err.value.message == (
        "data/embeddings_offline/embeddings.npy is stale: its input data/prefixes_all.jsonl changed after this run"
    )
    assert err.value.hint == "run `kat embed --device cpu --k 7 --text 'prompt only'` first"
    (ws_dir / P.EMBEDDINGS).write_text("edited", encoding="utf-8")
    with pytest.raises(UpstreamError) as err:
        record_stage(ws_dir, "viz", CHAIN[5][2], inputs=(P.EMBEDDINGS,))
    assert err.value.hint == (
        "re-run `kat embed --device cpu --k 7 --text 'prompt only'`, or pass --force to use it as it is"
    )


@pytest.mark.parametrize("recorded", ["kat test-prefixes", "kat quickstart --seed 3", "", "kat 'unclosed"])
def test_a_command_that_is_not_the_stage_falls_back_to_the_registry(kat, ws_dir, recorded):
    record_stage(ws_dir, "pairs", {P.PAIRS: '{"a": 1}\n'})
    record_stage(ws_dir, "prefixes", CHAIN[1][2], inputs=(P.PAIRS,), command=recorded)
    (ws_dir / P.PREFIXES).write_text("edited\n", encoding="utf-8")
    _, rows = _status(kat)
    assert rows["prefixes"]["command"] == "kat prefixes"


def test_a_real_import_is_offered_with_its_flags(kat, ws_dir, tmp_path):
    src = tmp_path / "mine.jsonl"
    src.write_text('{"prompt": "hi", "chosen": "a", "rejected": "b"}\n', encoding="utf-8")
    result = kat("pairs", "import", str(src), "--skip-invalid")
    assert result.exit_code == 0, result.output
    (ws_dir / P.PAIRS).write_text("edited\n", encoding="utf-8")
    data, rows = _status(kat)
    assert rows["pairs"]["command"] == f"kat pairs import {src} --skip-invalid"
    assert data["next_command"] == f"kat pairs import {src} --skip-invalid"
