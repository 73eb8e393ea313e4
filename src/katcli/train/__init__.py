"""Training kat's models: the objectives (reward model, SFT, DPO, GRPO), their losses and the shared loop.

Library code with no knowledge of the workspace manifest or the CLI. This package imports nothing, so
`import katcli.train` stays free of torch; import the modules directly.
"""
