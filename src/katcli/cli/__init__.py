"""The CLI layer: thin Typer commands that parse flags, build a config, call the pipeline and render.

Nothing here computes; heavy libraries are imported inside command functions, never at module import.
"""
