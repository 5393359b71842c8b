"""The sandbox over real HTTP on loopback: envelope, paging, auth, limiter, faults, controls."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from salesmap_tui.sandbox import ENDPOINTS, Dataset, SandboxConfig, SandboxServer
from salesmap_tui.sandbox.data import PAGINATED

HINT = re.compile(r"^\d+\.\d{3}초 후 재시도해주세요\.$")


@pytest.fixture(scope="module")
def srv() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(seed=1, scale=120, rate_limit=0)) as server:
        yield server


@pytest.fixture
def client(srv: SandboxServer) -> Iterator[httpx.Client]:
    srv.set_faults("")
    headers = {"Authorization": f"Bearer {srv.token}"}
    with httpx.Client(base_url=srv.base_url, headers=headers, timeout=10) as c:
        yield c


def fresh(**kw: Any) -> SandboxServer:
    kw.setdefault("scale", 60)
    kw.setdefault("rate_limit", 0)
    return SandboxServer(SandboxConfig(**kw))


def auth_client(server: SandboxServer, timeout: float = 10) -> httpx.Client:
    headers = {"Authorization": f"Bearer {server.token}"}
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=timeout)


def walk(c: httpx.Client, path: str, key: str) -> tuple[list[dict[str, Any]], str, int]:
    """Page to the end the way a client must; returns (items, how it ended, pages)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        r = c.get(path, params={"cursor": cursor} if cursor else None)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["success"] is True
        data = body["data"]
        page = data[key]
        pages += 1
        items += page
        if not page:
            return items, "empty", pages
        if "nextCursor" not in data:
            return items, "missing", pages
        if data["nextCursor"] is None:
            return items, "null", pages
        assert data["nextCursor"] != cursor
        cursor = data["nextCursor"]


def test_every_endpoint_envelope_and_list_key(client: httpx.Client) -> None:
    for name, spec in ENDPOINTS.items():
        if name == "webFormSubmit":
            continue
        r = client.get(spec.path)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json")
        body = r.json()
        assert body["success"] is True and spec.list_key in body["data"]
        if name in ("user", "team", "webForm"):
            assert "nextCursor" not in body["data"]


def test_pages_to_the_end_in_every_form(srv: SandboxServer, client: httpx.Client) -> None:
    d = Dataset(1, 120)
    forms = set()
    for ep in PAGINATED:
        items, form, _ = walk(client, f"/{ep}", ENDPOINTS[ep].list_key)
        assert items == list(d.iter_records(ep))
        assert form == d.end_form(ep)
        forms.add(form)
    assert forms == {"null", "missing", "empty"}


def test_lead_page_size_and_exclusive_cursor(client: httpx.Client) -> None:
    d = Dataset(1, 120)
    data = client.get("/lead").json()["data"]
    assert len(data["leadList"]) == 10 and data["nextCursor"] == data["leadList"][-1]["id"]
    cursor = d.record("people", 7)["id"]
    page = client.get("/people", params={"cursor": cursor}).json()["data"]["peopleList"]
    assert page[0] == d.record("people", 8) and len(page) == 50
    memo = client.get("/memo").json()["data"]["memoList"][0]
    assert memo["cursorId"] == memo["id"]


def test_user_team_webform_single_page(client: httpx.Client) -> None:
    d = Dataset(1, 120)
    first = client.get("/user").json()["data"]["userList"]
    assert first == list(d.iter_records("user"))
    again = client.get("/user", params={"cursor": "no-such-cursor"}).json()["data"]["userList"]
    assert again == first
    assert client.get("/team").json()["data"]["teamList"] == list(d.iter_records("team"))
    assert client.get("/webForm").json()["data"]["webFormList"] == d.forms()


def test_submissions_paged_and_unknown_form(client: httpx.Client) -> None:
    d = Dataset(1, 120)
    counts = {f["id"]: f["submitCount"] for f in d.forms()}
    big = max(counts, key=lambda k: counts[k])
    assert counts[big] > 50
    items, form, pages = walk(client, f"/webForm/{big}/submit", "webFormSubmitList")
    assert items == list(d.iter_submissions(big)) and pages >= 2
    assert form == d.end_form("webFormSubmit")
    empty = next(k for k, v in counts.items() if v == 0)
    r = client.get(f"/webForm/{empty}/submit")
    assert r.status_code == 200 and r.json()["data"]["webFormSubmitList"] == []
    for fid in [*d.deleted_form_ids(), "nope"]:
        r = client.get(f"/webForm/{fid}/submit")
        assert r.status_code == 400
        assert r.json() == {
            "success": False,
            "message": "Bad Request",
            "reason": "웹 폼을 찾을 수 없습니다.",
        }


def test_invalid_cursor_is_400(client: httpx.Client) -> None:
    r = client.get("/deal", params={"cursor": "garbage"})
    assert r.status_code == 400 and r.json()["success"] is False and r.json()["reason"]


def test_auth_failures(srv: SandboxServer) -> None:
    r = httpx.get(f"{srv.base_url}/people")
    assert r.status_code == 401
    assert r.json() == {
        "success": False,
        "message": "Unauthorized",
        "reason": "헤더에서 Authorization을 찾을 수 없습니다.",
    }
    r = httpx.get(f"{srv.base_url}/people", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    assert r.json() == {
        "success": False,
        "message": "Unauthorized",
        "reason": "유효하지 않은 토큰입니다.",
    }


def test_revoke_mid_run(srv: SandboxServer, client: httpx.Client) -> None:
    assert client.get("/people").status_code == 200
    srv.revoke_token()
    try:
        r = client.get("/people")
        assert r.status_code == 401 and r.json()["reason"] == "유효하지 않은 토큰입니다."
    finally:
        srv.restore_token()
    assert client.get("/people").status_code == 200


def test_unknown_paths_answer_html_200(srv: SandboxServer, client: httpx.Client) -> None:
    for url in (f"{srv.base_url}/nothing", f"{srv.root_url}/elsewhere", f"{srv.base_url}/deal/x"):
        r = client.get(url)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        with pytest.raises(json.JSONDecodeError):
            r.json()


def test_rate_limit_body_without_header() -> None:
    with (
        fresh(rate_limit=20, rate_window_s=5.0, hint_scale=0.01) as server,
        auth_client(server) as c,
    ):
        statuses = [c.get("/user") for _ in range(25)]
        limited = [r for r in statuses if r.status_code == 429]
        assert len(limited) == 5
        for r in limited:
            body = r.json()
            assert body["success"] is False and body["message"] == "Too Many Requests"
            assert HINT.match(body["reason"])
            assert "retry-after" not in r.headers
        assert server.stats()["rate_limited"] == 5


def test_rate_limit_with_retry_after_switch() -> None:
    with (
        fresh(rate_limit=3, rate_window_s=5.0, retry_after_header=True) as server,
        auth_client(server) as c,
    ):
        last = [c.get("/team") for _ in range(4)][-1]
        assert last.status_code == 429
        assert int(last.headers["retry-after"]) >= 1
        assert HINT.match(last.json()["reason"])


def test_fault_burst_fails_exact_attempts(srv: SandboxServer, client: httpx.Client) -> None:
    srv.set_faults("500:1:burst=2")
    for path in ("/people", "/deal"):
        codes = [client.get(path).status_code for _ in range(4)]
        assert codes == [500, 500, 200, 200]
    srv.set_faults("503:1:burst=99")
    assert {client.get("/memo").status_code for _ in range(5)} == {503}
    srv.set_faults("502:1")
    r = client.get("/lead")
    assert r.status_code == 502 and "Bad Gateway" in r.text


def test_fault_path_restriction(srv: SandboxServer, client: httpx.Client) -> None:
    srv.set_faults("500:1:path=deal")
    assert client.get("/deal").status_code == 500
    assert client.get("/people").status_code == 200


def test_fault_429_variants(srv: SandboxServer, client: httpx.Client) -> None:
    srv.set_faults("429:1:hint=3")
    r = client.get("/people")
    assert r.status_code == 429 and r.json()["reason"] == "3.000초 후 재시도해주세요."
    assert "retry-after" not in r.headers
    srv.set_faults("retry_after:1:value=2")
    assert client.get("/people").headers["retry-after"] == "2"
    srv.set_faults("retry_after:1:value=99999")
    assert client.get("/people").headers["retry-after"] == "99999"
    srv.set_faults("retry_after:1:date=3")
    r = client.get("/people")
    assert r.status_code == 429 and r.headers["retry-after"].endswith("GMT")


def test_fault_hang_times_out_client(srv: SandboxServer) -> None:
    srv.set_faults("hang:1:path=team")
    try:
        with auth_client(srv, timeout=0.3) as c, pytest.raises(httpx.ReadTimeout):
            c.get("/team")
    finally:
        srv.set_faults("")


def test_fault_reset_truncate_html(srv: SandboxServer, client: httpx.Client) -> None:
    srv.set_faults("reset:1")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get("/people")
    srv.set_faults("truncate:1")
    r = client.get("/people")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        r.json()
    srv.set_faults("html:1")
    r = client.get("/people")
    assert r.status_code == 200 and r.text.startswith("<!DOCTYPE html>")
    srv.set_faults("")
    assert client.get("/people").status_code == 200


def test_fault_schema_change_after_pages(srv: SandboxServer, client: httpx.Client) -> None:
    srv.set_faults("schema:after=2:path=deal")
    pages = []
    cursor = None
    for _ in range(3):
        data = client.get("/deal", params={"cursor": cursor} if cursor else None).json()["data"]
        pages.append(data["dealList"])
        cursor = data["nextCursor"]
    assert all("스키마 변경 필드" not in r for p in pages[:2] for r in p)
    assert all(r["스키마 변경 필드"] == "v2" for r in pages[2])
    amounts = [r["금액"] for r in pages[2] if r["금액"] is not None]
    assert amounts and all(isinstance(a, str) for a in amounts)


def test_fault_loop_repeats_cursor(srv: SandboxServer, client: httpx.Client) -> None:
    srv.set_faults("loop:1:path=deal")
    first = client.get("/deal").json()["data"]
    cursor = first["nextCursor"]
    assert cursor
    second = client.get("/deal", params={"cursor": cursor}).json()["data"]
    assert second["nextCursor"] == cursor
    people = client.get("/people").json()["data"]
    nxt = client.get("/people", params={"cursor": people["nextCursor"]}).json()["data"]
    assert nxt.get("nextCursor") != people["nextCursor"]


def statuses_for(server: SandboxServer, keys: list[str | None]) -> dict[str | None, int]:
    with auth_client(server) as c:
        return {k: c.get("/people", params={"cursor": k} if k else None).status_code for k in keys}


def test_faults_deterministic_regardless_of_order() -> None:
    d = Dataset(5, 60)
    keys: list[str | None] = [None, *(d.record("people", i)["id"] for i in range(59))]
    with fresh(seed=5, faults="500:0.4") as a:
        forward = statuses_for(a, keys)
    with fresh(seed=5, faults="500:0.4") as b:
        backward = statuses_for(b, list(reversed(keys)))
    with fresh(seed=6, faults="500:0.4") as c:
        other = statuses_for(c, keys)
    assert forward == backward
    assert 5 < list(forward.values()).count(500) < 55
    assert forward != other


def test_same_seed_same_bytes_other_seed_differs() -> None:
    with fresh(seed=3) as a, fresh(seed=3) as b, fresh(seed=4) as c:
        bodies = []
        for server in (a, b, c):
            with auth_client(server) as cl:
                bodies.append([cl.get(f"/{ep}").content for ep in PAGINATED])
        assert bodies[0] == bodies[1]
        assert bodies[0] != bodies[2]


def test_day_two_over_http(client: httpx.Client, srv: SandboxServer) -> None:
    day1, _, _ = walk(client, "/organization", "organizationList")
    fid = Dataset(1, 120).forms()[0]["id"]
    subs1, _, _ = walk(client, f"/webForm/{fid}/submit", "webFormSubmitList")
    r = httpx.post(f"{srv.root_url}/_sandbox/day", params={"n": 2}, headers=control(srv))
    assert r.status_code == 200
    try:
        day2, _, _ = walk(client, "/organization", "organizationList")
        subs2, _, _ = walk(client, f"/webForm/{fid}/submit", "webFormSubmitList")
    finally:
        srv.set_day(1)
    assert len(day2) == len(day1) + 6
    assert [r["id"] for r in day2[: len(day1)]] == [r["id"] for r in day1]
    assert len(subs2) > len(subs1)


def control(srv: SandboxServer) -> dict[str, str]:
    """The /_sandbox controls need the sandbox's own token."""
    return {"Authorization": f"Bearer {srv.token}"}


def test_controls_refuse_requests_without_the_token(srv: SandboxServer) -> None:
    root = srv.root_url
    for bad in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": srv.token}):
        assert httpx.post(f"{root}/_sandbox/revoke", headers=bad).status_code == 401
        assert (
            httpx.post(f"{root}/_sandbox/faults", content="500:1", headers=bad).status_code == 401
        )
        assert httpx.get(f"{root}/_sandbox/log", headers=bad).status_code == 401
    with auth_client(srv) as c:
        assert c.get("/user").status_code == 200


def test_http_controls(srv: SandboxServer, client: httpx.Client) -> None:
    root = srv.root_url
    ctl = httpx.Client(headers=control(srv))
    assert ctl.post(f"{root}/_sandbox/reset").json()["ok"]
    client.get("/people")
    client.get("/nope")
    stats = ctl.get(f"{root}/_sandbox/stats").json()
    assert stats["by_kind"]["people"]["200"] == 1 and stats["by_kind"]["unknown"]["200"] == 1
    assert stats["requests"] == 2 and stats["max_in_window"] == 2 and stats["min_gap_s"] >= 0
    assert ctl.post(f"{root}/_sandbox/faults", content="500:1:path=user").json()["ok"]
    assert client.get("/user").status_code == 500
    assert ctl.post(f"{root}/_sandbox/faults", content="bogus").status_code == 400
    assert ctl.post(f"{root}/_sandbox/faults", content="").json()["ok"]
    assert client.get("/user").status_code == 200
    assert ctl.post(f"{root}/_sandbox/revoke").json()["token_valid"] is False
    assert client.get("/user").status_code == 401
    assert ctl.post(f"{root}/_sandbox/restore").json()["token_valid"] is True
    assert ctl.post(f"{root}/_sandbox/latency", params={"ms": 1, "jitter": 2}).json()["ok"]
    assert client.get("/user").status_code == 200
    srv.set_latency(0, 0)
    log = ctl.get(f"{root}/_sandbox/log").json()["entries"]
    assert {e["status"] for e in log} >= {200, 500, 401}
    assert all({"t", "wall", "path", "cursor", "status"} <= set(e) for e in log)


def test_request_log_keeps_cursor(srv: SandboxServer, client: httpx.Client) -> None:
    srv.reset_stats()
    data = client.get("/people").json()["data"]
    client.get("/people", params={"cursor": data["nextCursor"]})
    log = srv.request_log()
    assert [e["cursor"] for e in log] == [None, data["nextCursor"]]
    assert log[0]["t"] <= log[1]["t"]


def test_large_dataset_fully_paged() -> None:
    with fresh(scale=20_000) as server, auth_client(server) as c:
        items, _, pages = walk(c, "/people", "peopleList")
    ids = [r["id"] for r in items]
    assert len(ids) == 20_000 and len(set(ids)) == 20_000
    assert pages >= 400
