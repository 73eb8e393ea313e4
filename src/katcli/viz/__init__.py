"""katcli.viz: the prompt space in 3-D as one self-contained HTML page.

`inputs` reads and cross-checks the embed/prefixes files, `sampling` picks the shown prompts (always the
rarest), `projection` maps embeddings to 3-D (PCA, or UMAP when installed), `points` assembles the data
document, `page` inlines it with the renderer (`page.html`, `page.js`) into one file, and `build` runs
those steps in order. Nothing here knows about the workspace, the manifest or the CLI.
"""
