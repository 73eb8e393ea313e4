"""The CLI layer: thin Typer commands that parse flags, build a config, call the pipeline and render.

`app` is the root and its error boundary, `commands` the one table of commands, `config_options` the flags made
from config dataclasses, `render` what is shown. Heavy libraries are imported inside command functions only.
"""
