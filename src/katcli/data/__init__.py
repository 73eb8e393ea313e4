"""The data layer: preference pairs from HH-RLHF, UltraFeedback and Stack Exchange, imports, prefixes.

- `schema`, `keys`: the pair record, its byte encoding, the prefix id (dedupe key) and derived split;
- `hh`, `ultrafeedback`, `stackexchange`, `html_text`: per-source row parsers (drop reasons counted);
- `sources`: where the files are (hub via huggingface_hub, or a local mirror) and reading them with the datasets library;
- `budget`, `download`: `--budget`/`--mix` and the seeded, spread-out selection across sources and groups;
- `importer`: validating a user's JSONL; `prefixes`: streaming dedupe into unique prefixes; `stats`.

Plain library code: no Typer, no Rich, no printing, no workspace; progress goes through a `ProgressFn`.
"""
