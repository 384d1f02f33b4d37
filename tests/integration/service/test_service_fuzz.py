"""Fuzz the service over real HTTP on 127.0.0.1 with hypothesis-generated requests built
from its own OpenAPI schema: whatever comes in, the answer is never a 5xx and never
carries a stack trace.

The big run sends ``FUZZ_EXAMPLES x BATCH`` (>= 10,000) requests; CI runs it (marker
``fuzz``, about a minute on 2 cores). ``KTSTR_FUZZ_EXAMPLES`` scales it for a local soak.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ktstr.service.settings import Settings
from ktstr.testing import ServiceThread

#: requests per hypothesis example (one example = one batch over a kept-alive client)
BATCH = 25
FUZZ_EXAMPLES = int(os.environ.get("KTSTR_FUZZ_EXAMPLES", "410"))
TOTAL_MIN = 10_000

_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
                max_size=40)
_NASTY = st.sampled_from([
    "../../etc/passwd", "..", "/etc/passwd", "a\x00b", "%00", "%2e%2e%2f", "' OR 1=1 --",
    "<script>alert(1)</script>", "{{7*7}}", "9" * 40, "-1", "0", "1e308", "NaN", "null",
    "ÿ", "😀", " ", "", "upload:../x", "a" * 300,
])
_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | _TEXT | _NASTY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        _TEXT | st.sampled_from(["plan", "sut", "sutclass", "runs", "kernels", "schedulers",
                                 "topologies", "priority", "name", "session", "wait_s",
                                 "worker", "attempt", "capabilities", "failed_only",
                                 "files", "defaults", "timeout", "outcome"]),
        inner, max_size=5),
    max_leaves=12)


class Api:
    """The service's operations, read from its OpenAPI schema."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.ops: list[tuple[str, str, list[str], list[str], bool]] = []
        for path, item in schema["paths"].items():
            for method, op in item.items():
                params = op.get("parameters", [])
                self.ops.append((
                    method.upper(), path,
                    [p["name"] for p in params if p["in"] == "path"],
                    [p["name"] for p in params if p["in"] == "query"],
                    "requestBody" in op))


def _valid_plan() -> dict[str, Any]:
    return {"sut": {"sutclass": "demo"},
            "runs": [{"kernels": ["7.2"], "schedulers": ["scx_simple"],
                      "topologies": ["1,1,2,1"]}]}


def _mutations() -> st.SearchStrategy[Any]:
    """Bodies near the valid ones, which reach deeper than random JSON."""
    plan = _valid_plan()
    return st.sampled_from([
        {"plan": plan}, {"plan": {**plan, "priority": 101}}, {"plan": {**plan, "runs": []}},
        {"plan": {**plan, "runs": [{**plan["runs"][0], "kernels": ["upload:x"]}]}},
        {"plan": {**plan, "defaults": {"timeout": "soon"}}}, {"priority": -1},
        {"session": 1, "wait_s": 0}, {"failed_only": True}, {"name": "a/b",
                                                              "capabilities": ["root"]},
        {"worker": "demo-01", "attempt": 1, "duration_s": -1},
    ]) | st.builds(lambda key, value: {"plan": {**plan, key: value}},
                   st.sampled_from(["sut", "runs", "defaults", "priority", "files"]), _JSON)


class Call(NamedTuple):
    method: str
    url: str
    params: dict[str, Any]
    headers: dict[str, str]
    content: bytes | None


@st.composite
def requests(draw: st.DrawFn, api: Api, tokens: list[str]) -> Call:
    method, path, path_params, query_params, has_body = draw(st.sampled_from(api.ops))
    url = path
    for name in path_params:
        value = draw(st.integers(-5, 50).map(str) | _NASTY | st.text(
            string.ascii_letters + string.digits + "-._~%", max_size=70))
        url = url.replace("{" + name + "}", quote(value, safe="%") or "x")
    query: dict[str, Any] = {}
    for name in query_params:
        if draw(st.booleans()):
            query[name] = draw(st.integers(-3, 2000).map(str) | _NASTY | _TEXT)
    headers = {}
    token = draw(st.sampled_from([*tokens, "bogus", None]))
    if token is not None:
        headers["Authorization"] = draw(st.sampled_from(["Bearer ", "bearer ", "Basic ",
                                                         ""])) + token
    content: bytes | None = None
    if has_body or draw(st.integers(0, 9)) == 0:
        kind = draw(st.integers(0, 9))
        if kind == 0:
            content = draw(st.binary(max_size=64))
        else:
            body = draw(_mutations() if kind < 5 else _JSON)
            content = json.dumps(body).encode()
        headers["Content-Type"] = draw(st.sampled_from(
            ["application/json"] * 4 + ["text/plain", "multipart/form-data; boundary=x"]))
    return Call(method, url, query, headers, content)


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceThread,
                                                                          list[str]]]:
    root = tmp_path_factory.mktemp("fuzz")
    sutclasses = root / "s.yaml"
    sutclasses.write_text("- sutclass: demo\n  type: static\n  params:\n    suts:\n"
                          "      - name: demo-01\n        connection: {method: SSH, "
                          "params: {host: demo-01}}\n")
    cfg = Settings(database_url=f"sqlite:///{root / 'scheduler.db'}",
                   storage=root / "storage", sutclasses=sutclasses,
                   resultstore=f"sqlite:///{root / 'results.db'}", max_claim_wait_s=0,
                   max_upload_bytes=4096, reaper_interval_s=0.2)
    with ServiceThread(cfg) as svc:
        assert svc.admin_token
        with httpx.Client(base_url=svc.url + "/api/v1", headers={
                "Authorization": f"Bearer {svc.admin_token}"}) as http:
            tokens = [svc.admin_token] + [
                http.post("/users", json={"name": f"u{caps}", "capabilities": [caps]})
                .json()["token"] for caps in ("exec", "query", "lease")]
            http.post("/workers/register", json={"name": "demo-01", "sutclass": "demo",
                                                 "version": "0", "protocol": 1})
            http.post("/plans", json={"plan": _valid_plan()})
        yield svc, tokens


def _check(resp: httpx.Response) -> None:
    req = resp.request
    where = f"{req.method} {req.url} -> {resp.status_code}: {resp.text[:300]!r}"
    assert resp.status_code < 500, where
    text = resp.text
    assert "Traceback" not in text and 'File "/' not in text, where


@pytest.mark.fuzz
def test_fuzz_api_never_5xx(fuzz_target: tuple[ServiceThread, list[str]],
                            tmp_path: Path) -> None:
    svc, tokens = fuzz_target
    api = Api(httpx.get(svc.url + "/openapi.json", timeout=30).json())
    api.ops += [("GET", "/dashboard", [], ["token"], False),
                ("POST", "/dashboard/login", [], [], True), ("GET", "/", [], [], False)]
    sent = [0]
    with httpx.Client(base_url=svc.url, timeout=30) as http:

        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(requests(api, tokens), min_size=BATCH, max_size=BATCH))
        def batch(calls: list[Call]) -> None:
            for c in calls:
                _check(http.request(c.method, c.url, params=c.params, headers=c.headers,
                                    content=c.content))
                sent[0] += 1

        batch()
    assert sent[0] >= TOTAL_MIN or FUZZ_EXAMPLES * BATCH < TOTAL_MIN, sent[0]


@st.composite
def _uploads(draw: st.DrawFn) -> tuple[str, bytes, str]:
    name = draw(_NASTY | st.text(string.printable, max_size=30))
    return name, draw(st.binary(max_size=5000)), draw(st.sampled_from(
        ["", name, "upload:" + name]))


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(files=st.lists(_uploads(), max_size=3))
def test_fuzz_uploads_never_5xx_nor_escape(fuzz_target: tuple[ServiceThread, list[str]],
                                           files: list[tuple[str, bytes, str]]) -> None:
    svc, tokens = fuzz_target
    plan = _valid_plan()
    plan["files"] = [ref for _, _, ref in files if ref]
    with httpx.Client(base_url=svc.url + "/api/v1", timeout=30,
                      headers={"Authorization": f"Bearer {tokens[0]}"}) as http:
        resp = http.post("/plans/upload", data={"submission": json.dumps({"plan": plan})},
                         files=[("files", (n, c, "application/octet-stream"))
                                for n, c, _ in files])
    assert resp.status_code < 500, resp.text
    assert "Traceback" not in resp.text
    if any(len(c) > 4096 for _, c, _ in files) and resp.status_code == 413:
        assert "4096 bytes" in resp.json()["detail"]
    storage = svc.settings.storage.resolve()
    for p in storage.parent.rglob("*"):  # nothing written outside --storage but the DBs
        assert p.is_relative_to(storage) or p.suffix in (".db", ".db-wal", ".db-shm",
                                                        ".yaml"), p
