"""`python -m katcli` — the same app as the `kat` console script (also what `torchrun -m katcli` runs)."""

from katcli.cli.app import main

if __name__ == "__main__":
    main()
