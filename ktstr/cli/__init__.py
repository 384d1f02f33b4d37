"""The ``ktstr`` command line: one module per click group; errors become exit codes here."""

from __future__ import annotations

import sys

import click

from ktstr.errors import KtstrError


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from ktstr.cli.root import cli

    try:
        rv = cli.main(args=argv, prog_name="ktstr", standalone_mode=False)
    except KtstrError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)
