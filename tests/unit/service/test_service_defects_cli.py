"""Client-side defects of issue 18: what an unreachable service says, plan files that
are not a plan, ``plan-list --jobs`` without a plan, and the lease rule for SUTs that
no worker serves."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ktstr.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_service_says_what_was_tried(capsys: pytest.CaptureFixture[str]) -> None:
    port = _closed_port()
    url = f"http://127.0.0.1:{port}"
    code, _, err = run(["sched", "sutclass-list", "--url", url, "--token", "t"], capsys)
    assert code == 3
    assert f"GET {url}/api/v1/sutclasses" in err
    assert "--port 5000" not in err and "sqlite:///scheduler.db" not in err
    assert f"curl {url}/api/v1/version" in err  # how to check it


@pytest.mark.parametrize(("text", "expect"), [
    ("", "the plan is empty"),
    ("- sut: {sutclass: demo}\n", "line 1: the plan is a list"),
    ("sut:\n  sutclass: demo\nruns:\n  - kernels: [7.2]\n    schedulers: [a]\n"
     "    repeats: many\n", "line 6: runs[0].repeats"),
])
def test_plan_file_problems_name_file_and_line(tmp_path: Path, text: str, expect: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    code, _, err = run(["sched", "plan-exec", str(path), "--url",
                        f"http://127.0.0.1:{_closed_port()}", "--token", "t"], capsys)
    assert code == 2, err
    assert f"{path}:" in err and expect in err, err
    assert "expected" in err or "should be" in err or "valid integer" in err, err


def test_plan_list_jobs_needs_a_plan_id(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["sched", "plan-list", "--jobs", "--url",
                        f"http://127.0.0.1:{_closed_port()}", "--token", "t"], capsys)
    assert code == 2 and "--jobs needs a PLAN_ID" in err, err
