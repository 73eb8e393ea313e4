"""The report: every figure and number of an experiment in one offline HTML page, Markdown and paper-ready files.

Modules, in the order a report is made: `context` (what sections may see: recorded file reads, the manifest,
`kat status` and `kat eval rm` results handed in as plain JSON), `sections/` (the registry: provenance, prompt
density, reward models, policies; each builds its blocks or is absent), `curves` (training curves from any
`metrics.jsonl`), `document` (sections, tables, figures), `plotting` (matplotlib, byte-reproducible PNG/PDF),
`render` (HTML with a CSP that allows nothing external, Markdown), `build` (all of it to file bytes).
Nothing here writes files, prints, imports Typer or Rich, or knows the manifest's freshness rules; matplotlib is
imported only when a figure is drawn.
"""
