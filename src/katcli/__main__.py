"""The `kat` console script and `python -m katcli` (also what `torchrun -m katcli` runs): one light entry point.

Only the interrupt handling is imported before it is armed, here on import (the console script imports this
module, then calls `main`); the app (click, typer, rich, the command modules) is imported after, inside
`main`, so Ctrl-C at any moment of start-up exits 130 with one line.
"""

from katcli.cli import interrupts

interrupts.arm()


def main() -> None:
    interrupts.arm()
    code: object = 0
    try:
        from katcli.cli.app import main as app_main

        app_main()
    except SystemExit as exc:
        code = exc.code
    interrupts.exit_now(code)  # a Ctrl-C during the teardown is one line and exit 130 too


if __name__ == "__main__":
    main()
