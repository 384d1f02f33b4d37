"""Pure parts of uploads: name checks, plan references, client-side rewriting, and the
worker's localisation of a cell."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ktstr.contract import Cell, CellKind
from ktstr.errors import UserError
from ktstr.service.storage import (
    BadUploadName,
    FileStore,
    UploadTooLarge,
    check_upload_name,
    keep_job_result,
    kept_results,
    missing_uploads,
    plan_upload_refs,
)
from ktstr.service.uploads import local_uploads
from ktstr.worker.files import localize_cell


@pytest.mark.parametrize("name", ["bzImage", "scx_simple", "sched.conf", "a+b-1.2_x"])
def test_plain_names_pass(name: str) -> None:
    assert check_upload_name(name) == name


@pytest.mark.parametrize(("name", "why"), [
    ("../x", "contains a path"), ("/etc/passwd", "absolute path"), ("a/b", "contains a path"),
    ("a\\b", "contains a path"), ("..", "contains a path"), ("a\x00", "NUL"),
    (".bashrc", "not starting with a dot"), ("", "needs a file name"),
    ("x" * 201, "longer than 200"), ("C:x", "absolute path"), ("a b", "may use only"),
])
def test_bad_names_say_why(name: str, why: str) -> None:
    with pytest.raises(BadUploadName, match=why):
        check_upload_name(name)


def test_plan_refs_and_missing_ones() -> None:
    doc = {"runs": [{"kernels": ["7.2", "upload:bzImage"], "schedulers": ["upload:s"]}],
           "files": ["upload:c.conf"]}
    refs = plan_upload_refs(doc)
    assert refs == [("runs[0].kernels[1]", "bzImage"), ("runs[0].schedulers[0]", "s"),
                    ("files[0]", "c.conf")]
    assert missing_uploads(refs, {"bzImage", "c.conf"}) == [
        "runs[0].schedulers[0]: refers to upload:s, which was not uploaded with the plan"]


def test_store_is_content_addressed_and_limited(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    sha, size = store.put("a", io.BytesIO(b"hello"), limit=5)
    again, _ = store.put("b", io.BytesIO(b"hello"), limit=5)
    assert sha == again and size == 5 and store.path(sha).read_bytes() == b"hello"
    with pytest.raises(UploadTooLarge, match="'big' is larger than the limit of 5 bytes"):
        store.put("big", io.BytesIO(b"hello!"), limit=5)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [sha]
    with pytest.raises(BadUploadName, match="not a SHA-256"):
        store.path("../../etc/passwd")


def test_local_uploads_rewrites_only_local_files(tmp_path: Path) -> None:
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "bzImage").write_bytes(b"1")
    (tmp_path / "bzImage").write_bytes(b"2")
    (tmp_path / "my.conf").write_text("x")
    doc = {"runs": [{"kernels": ["7.2", "./k/bzImage", "./bzImage", "./k/bzImage",
                                 "./missing/bzImage"], "schedulers": ["scx_simple"]}],
           "files": ["my.conf"]}
    out, files = local_uploads(doc, tmp_path)
    assert out["runs"][0]["kernels"] == ["7.2", "upload:bzImage", "upload:bzImage-2",
                                         "upload:bzImage", "./missing/bzImage"]
    assert files == {"bzImage": tmp_path / "k" / "bzImage",
                     "bzImage-2": tmp_path / "bzImage", "my.conf": tmp_path / "my.conf"}
    assert doc["runs"][0]["kernels"][1] == "./k/bzImage"  # the input is untouched
    with pytest.raises(UserError, match=r"files\[0\]: 'nope' is not a local file"):
        local_uploads({"runs": [], "files": ["nope"]}, tmp_path)


def test_localize_cell() -> None:
    cell = Cell(kind=CellKind.TEST, kernel="upload:bzImage", scheduler="scx_simple",
                topology="1,1,2,1", topology_label="1n1l2c1t", repeat=0, duration_s=5,
                timeout_s=60)
    local = localize_cell(cell, {"bzImage": Path("/w/files/bzImage")})
    assert local.kernel == "/w/files/bzImage" and local.scheduler == "scx_simple"
    assert localize_cell(cell, {}) == cell


def test_kept_results_are_lines_in_a_file_per_day(tmp_path: Path) -> None:
    root = tmp_path / "results"
    day = 1_764_547_200.0  # 2025-12-01 00:00 UTC
    first = keep_job_result(root, day + 10, '{"job_id":1,"attempt":1}', "log one\n")
    keep_job_result(root, day + 20, '{"job_id":2,"attempt":1}', "")
    nextday = keep_job_result(root, day + 86_400, '{"job_id":3,"attempt":2}', "é\x00")
    assert first.name == "2025-12-01.jsonl" and nextday.name == "2025-12-02.jsonl"
    with first.open("ab") as out:  # a line cut short (the disk filled up)
        out.write(b'{"record":{"job_id":4')
    assert list(kept_results(root)) == [({"job_id": 1, "attempt": 1}, "log one\n"),
                                        ({"job_id": 2, "attempt": 1}, ""),
                                        ({"job_id": 3, "attempt": 2}, "é\x00")]
