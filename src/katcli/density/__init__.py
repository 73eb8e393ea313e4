"""Prompt embeddings and k-NN density weights (rare prompts weigh more) — the library behind `kat embed`.

`text` (what is embedded per prefix) → `encoder` + `chunked` (sentence-transformers, resumable) → `embeddings`
(validated, L2-normalised) → `knn` (exact, or the approximate `hnsw` / `ivf` indexes with measured recall) →
`weights` (density → weights, ESS); `estimate` runs knn + weights in one call.

Nothing here imports Typer or Rich, prints, or knows the workspace manifest; heavy libraries (torch,
sentence-transformers, hnswlib) are imported inside the functions that use them.
"""
