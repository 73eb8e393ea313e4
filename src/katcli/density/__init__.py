"""Prompt embeddings and k-NN density weights (rare prompts weigh more) — the library behind `kat embed`.

- `text`: the text embedded per prefix (first user message, or the conversation as `role: content` lines);
- `encoder`: which sentence-transformers model and copy (local / hub / HF cache / bundled, sha256-checked), device;
- `chunked`: length-sorted, resumable chunked encoding (an interrupted run resumes to identical bytes);
- `embeddings`: validation and L2 normalisation of `[N, D]` matrices (`--embeddings-from`);
- `knn`: k nearest-neighbour similarities, exact (blocked) or HNSW with measured recall;
- `weights`: density → weights, statistics (ESS, percentiles), Spearman;
- `estimate`: knn + weights in one call; `ids`: the ids.json ↔ prefixes_all.jsonl consistency check.

Nothing here imports Typer or Rich, prints, or knows the workspace manifest; heavy libraries (torch,
sentence-transformers, hnswlib) are imported inside the functions that use them.
"""
