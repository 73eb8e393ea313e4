"""kat: density-aware preference learning from one command line.

This top-level module holds only the version; everything else is imported lazily so that
`kat --help` and `kat status` stay fast (no torch, datasets or sentence-transformers).
"""

__version__ = "0.1.0"
