"""The sample mirror shipped with kat (`kat pairs download --from sample`) and the script that builds it.

The data files under this directory use the hub's exact layout and schemas; `generate.py` rewrites them
deterministically from the hand-written tables in `content.py` and `se_content.py`. This package is data
plus its generator: it imports nothing from the rest of katcli, and nothing in katcli imports it (the
data layer finds these files by path).
"""
