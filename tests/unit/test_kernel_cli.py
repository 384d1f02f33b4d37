"""``ktstr kernel`` commands against a fake archive (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ktstr.cli.root import cli
from ktstr.kernel import fetch as fetch_module
from ktstr.testing.kernel import FakeArchive, image_kernel_debs, split_kernel_debs


@pytest.fixture(autouse=True)
def _fake_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeArchive:
    archive = FakeArchive()
    archive.add("7.2.13-1", "sid", split_kernel_debs(tmp_path, "7.2.13+deb14-amd64", "7.2.13-1"))
    archive.add("6.12.107-1", "trixie",
                image_kernel_debs(tmp_path, "6.12.107+deb13-amd64", "6.12.107-1"))
    monkeypatch.setattr(fetch_module, "PrivateApt", lambda: archive)
    monkeypatch.delenv("KTSTR_KERNEL", raising=False)
    return archive


def _run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_fetch_list_path_clean() -> None:
    result = CliRunner().invoke(cli, ["kernel", "fetch", "7.2", "6.12"],
                                catch_exceptions=False)
    assert result.exit_code == 0
    assert "7.2.13+deb14-amd64" in result.stdout and "downloading" in result.stderr
    listing = _run("kernel", "list")
    lines = {line.split()[0]: line.split() for line in listing.splitlines()[2:]}
    assert lines["7.2.13+deb14-amd64"][4] == "yes"  # SCHED_EXT column
    assert lines["6.12.107+deb13-amd64"][4] == "no"
    data = json.loads(_run("kernel", "list", "--json", "--available"))
    assert {k["key"]: k["sched_ext"] for k in data["cached"]} == {
        "6.12.107+deb13-amd64": False, "7.2.13+deb14-amd64": True}
    assert all(a["cached"] for a in data["available"])
    path = _run("kernel", "path", "7.2").strip()
    assert path.endswith("7.2.13+deb14-amd64/vmlinuz") and Path(path).is_file()
    assert _run("kernel", "path", "--modules", "7.2").strip().endswith("/modules")
    assert "would remove" in _run("kernel", "clean", "6.12", "--dry-run")
    _run("kernel", "clean", "6.12")
    assert "6.12.107" not in _run("kernel", "list")


def test_unknown_version_is_a_user_error() -> None:
    result = CliRunner().invoke(cli, ["kernel", "fetch", "7.9"])
    assert result.exit_code != 0
    assert "nearest available: 6.12.107, 7.2.13" in str(result.exception)


def test_help_names_the_specs() -> None:
    out = _run("kernel", "--help")
    assert "7.2..=7.3" in out and "KTSTR_KERNEL" in out
