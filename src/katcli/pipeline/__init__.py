"""The pipeline layer: one module per stage, each declaring inputs and outputs and recording its run.

`registry` names the stages in order, `upstream` judges whether artifacts are fresh, `stage.StageRun`
is the single way a stage reads checked inputs and writes outputs, `status` computes `kat status` as data.
Modules here import domain packages lazily so `kat --help` stays fast.
"""
