"""Reward-model training: data reading, held-out split, weighted sampling, sequences, the model, the loop.

Modules, in the order data flows through them: `inputs` (pairs, prefix counts, density weights), `split` (seeded
held-out prompts), `sampler` (uniform / density-aware with-replacement stream, ESS), `sequences` (render + trim),
`batching` (padding), `reward_model` (GPT + scalar head), `losses` (Bradley–Terry), `schedule` (warmup + cosine),
`trainer` (the loop, checkpoints, resume), `evaluate` + `metrics` (held-out accuracy with Wilson intervals),
`rm_checkpoint` (directory layout), `ddp` (torchrun). Import the modules directly; this package imports nothing, so
`import katcli.train` stays free of torch. It knows nothing about the workspace manifest or the CLI.
"""
