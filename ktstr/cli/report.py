"""``ktstr report``: one self-contained HTML file with plots from result files."""

from __future__ import annotations

from pathlib import Path

import click

from ktstr.cli.compare import need_compare_extra


@click.command("report")
@click.argument("results", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("report.html"), show_default=True, help="The HTML file to write.")
@click.option("--title", default="ktstr report", show_default=True, help="Page title.")
def report(results: tuple[Path, ...], output: Path, title: str) -> None:
    """Write RESULTS as one HTML page (inline SVG plots; opens without a network).

    \b
    RESULTS may be: a `ktstr compare` directory or its comparison.json (A/B
    distributions with confidence intervals, per-cgroup share and wait bars, every
    metric); a pytest results directory (the gauntlet matrix: preset x flags x kernel,
    coloured by verdict); a verifier sweep directory or --json file (verified
    instructions per program by kernel and topology); `ktstr run --json` files.
    """
    need_compare_extra()
    from ktstr.results.html import report_of

    report_of(results, output, title=title)
    click.echo(f"ktstr: wrote {output}", err=True)
