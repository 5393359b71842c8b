"""SalesmapClient against httpx.MockTransport: every row of the response → action table."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from salesmap_tui.config import Settings
from salesmap_tui.engine.client import (
    Action,
    SalesmapClient,
    classify,
    compute_wait,
    parse_retry_after,
)
from salesmap_tui.engine.endpoints import DEAL, LEAD, TEAM, USER, WEBFORM_LIST, webform_submit_spec
from salesmap_tui.engine.errors import (
    ApiError,
    MaxRetriesExceeded,
    MissingToken,
    RunCancelled,
    TokenRejected,
)
from salesmap_tui.engine.events import EngineEvent, RequestRetried
from salesmap_tui.engine.pacer import Pacer

TOKEN = "tok-SECRET-5f1e9a"
NOW = datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)
Reply = httpx.Response | Exception


def settings(**changes: Any) -> Settings:
    base = Settings(
        token=TOKEN,
        base_url="https://api.test/v2",
        min_interval=0.0,
        max_wait=120.0,
        backoff_429=10.0,
        backoff_base=1.0,
        max_retries=3,
        request_timeout=5.0,
    )
    return base.replace(**changes)


def ok(data: Any) -> httpx.Response:
    return httpx.Response(200, json={"success": True, "data": data})


def err(status: int, reason: Any = None, message: str = "Error", **headers: str) -> httpx.Response:
    body: dict[str, Any] = {"success": False, "message": message}
    if reason is not None:
        body["reason"] = reason
    return httpx.Response(status, json=body, headers=headers)


def deal_page(ids: list[str], cursor: Any = None, key: str = "nextCursor") -> httpx.Response:
    data: dict[str, Any] = {"dealList": [{"id": i} for i in ids]}
    if cursor is not ...:
        data[key] = cursor
    return ok(data)


class Harness:
    """A scripted transport, a recording sleep and event sink, and the client under test."""

    def __init__(self, replies: list[Reply], **changes: Any) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []
        self.waits: list[float] = []
        self.events: list[EngineEvent] = []
        self.cancel = threading.Event()
        self.settings = settings(**changes)
        self.pacer = Pacer(0.0, 0, 0.0)
        self.on_sleep: Callable[[float], None] | None = None

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert self.replies, f"unexpected extra request {request.url}"
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)

    def client(self, *, default_sleep: bool = False) -> SalesmapClient:
        return SalesmapClient(
            self.settings,
            self.pacer,
            self.events.append,
            self.cancel,
            transport=httpx.MockTransport(self.handler),
            sleep=None if default_sleep else self.sleep,
            clock_now=lambda: NOW,
        )

    async def get(self, path: str = "/deal", endpoint: str = "deal") -> Any:
        async with self.client() as c:
            return await c.get_data(path, None, endpoint)

    @property
    def retried(self) -> list[RequestRetried]:
        return [e for e in self.events if isinstance(e, RequestRetried)]

    def cursors(self) -> list[str | None]:
        return [r.url.params.get("cursor") for r in self.requests]


# --- ok -------------------------------------------------------------------------------------------
async def test_ok_returns_data_with_bearer_header() -> None:
    h = Harness([ok({"dealList": []})])
    assert await h.get() == {"dealList": []}
    assert len(h.requests) == 1
    req = h.requests[0]
    assert str(req.url) == "https://api.test/v2/deal"
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert h.waits == [] and h.events == []
    assert h.pacer.total == 1


# --- 429 ------------------------------------------------------------------------------------------
async def test_429_body_hint_decimal_seconds() -> None:
    h = Harness([err(429, "8.316초 후 재시도해주세요.", "Too Many Requests"), ok({"x": 1})])
    assert await h.get() == {"x": 1}
    assert h.waits == [8.316]
    assert len(h.requests) == 2
    assert h.retried == [
        RequestRetried(
            endpoint="deal",
            attempt=1,
            max_attempts=4,
            status=429,
            error="429 Too Many Requests (8.316초 후 재시도해주세요.)",
            wait_s=8.316,
            reason="body hint",
        )
    ]


async def test_429_retry_after_seconds_wins_over_body_hint() -> None:
    h = Harness([err(429, "8.316초 후 재시도해주세요.", **{"Retry-After": "7"}), ok(1)])
    assert await h.get() == 1
    assert h.waits == [7.0]
    assert h.retried[0].reason == "Retry-After header"


async def test_429_retry_after_http_date() -> None:
    h = Harness([err(429, **{"Retry-After": "Wed, 01 Jan 2025 00:00:12 GMT"}), ok(1)])
    assert await h.get() == 1
    assert h.waits == [12.0]
    assert h.retried[0].reason == "Retry-After header"


@pytest.mark.parametrize(
    ("headers", "reason", "expected", "source"),
    [
        ({"Retry-After": "99999"}, None, 30.0, "Retry-After header"),
        ({}, "86400초 후 재시도해주세요.", 30.0, "body hint"),
        ({"Retry-After": "soon"}, "3.5초 후 재시도해주세요.", 3.5, "body hint"),
        ({"Retry-After": "-5"}, "2초", 2.0, "body hint"),
        # an HTTP date in the past is negative: fall back
        ({"Retry-After": "Tue, 31 Dec 2024 23:59:00 GMT"}, None, 10.0, "backoff"),
        ({"Retry-After": ""}, "try again later", 10.0, "backoff"),
    ],
)
async def test_429_hint_caps_and_fallbacks(
    headers: dict[str, str], reason: str | None, expected: float, source: str
) -> None:
    h = Harness([err(429, reason, **headers), ok(1)], max_wait=30.0)
    assert await h.get() == 1
    assert h.waits == [expected]
    assert h.retried[0].reason == source


async def test_429_without_hint_backs_off_10_20_40_then_gives_up() -> None:
    h = Harness([err(429, message="Too Many Requests") for _ in range(4)])
    with pytest.raises(MaxRetriesExceeded) as info:
        await h.get()
    assert h.waits == [10.0, 20.0, 40.0]
    assert len(h.requests) == 4
    assert h.pacer.total == 4  # every attempt went through the pacer
    assert info.value.attempts == 4 and info.value.last_status == 429
    assert str(info.value).startswith("max_retries_exceeded: GET /deal after 4 attempts: 429")
    assert [e.attempt for e in h.retried] == [1, 2, 3]
    assert {e.reason for e in h.retried} == {"backoff"}


async def test_backoff_is_capped_by_max_wait() -> None:
    h = Harness([err(429) for _ in range(4)], max_wait=15.0)
    with pytest.raises(MaxRetriesExceeded):
        await h.get()
    assert h.waits == [10.0, 15.0, 15.0]


# --- 5xx, 408 -------------------------------------------------------------------------------------
async def test_503_backs_off_1_2_4_then_max_retries_exceeded() -> None:
    h = Harness([httpx.Response(503) for _ in range(4)])
    with pytest.raises(MaxRetriesExceeded) as info:
        await h.get()
    assert str(info.value) == (
        "max_retries_exceeded: GET /deal after 4 attempts: 503 Service Unavailable"
    )
    assert info.value.attempts == 4 and info.value.last_status == 503
    assert len(h.requests) == 4
    assert h.waits == [1.0, 2.0, 4.0]
    assert [(e.attempt, e.status, e.wait_s, e.reason) for e in h.retried] == [
        (1, 503, 1.0, "backoff"),
        (2, 503, 2.0, "backoff"),
        (3, 503, 4.0, "backoff"),
    ]
    assert all(e.max_attempts == 4 and e.endpoint == "deal" for e in h.retried)


@pytest.mark.parametrize("status", [408, 500, 502, 504])
async def test_transient_statuses_are_retried(status: int) -> None:
    h = Harness([httpx.Response(status, text="<html>oops</html>"), ok("fine")])
    assert await h.get() == "fine"
    assert h.waits == [1.0]
    assert h.retried[0].status == status


async def test_max_retries_setting_bounds_attempts() -> None:
    h = Harness([httpx.Response(500) for _ in range(2)], max_retries=1)
    with pytest.raises(MaxRetriesExceeded) as info:
        await h.get()
    assert info.value.attempts == 2 and len(h.requests) == 2
    assert h.retried[0].max_attempts == 2


async def test_mixed_failures_then_success() -> None:
    h = Harness([httpx.Response(502), err(429, "1.5초"), httpx.ReadTimeout("slow"), ok(7)])
    assert await h.get() == 7
    assert h.waits == [1.0, 1.5, 4.0]
    assert [e.status for e in h.retried] == [502, 429, None]


# --- never retried --------------------------------------------------------------------------------
async def test_401_stops_at_once() -> None:
    h = Harness([err(401, "유효하지 않은 토큰입니다.", "Unauthorized")])
    with pytest.raises(TokenRejected) as info:
        await h.get()
    assert str(info.value) == (
        "token rejected by the API (401: 유효하지 않은 토큰입니다.); check SALESMAP_TOKEN"
    )
    assert info.value.exit_code == 2
    assert len(h.requests) == 1 and h.waits == [] and h.events == []


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (400, "웹 폼을 찾을 수 없습니다."),
        (403, "플랜에서 지원하지 않습니다."),
        (404, None),
        (405, None),
    ],
)
async def test_4xx_fail_without_retry(status: int, reason: str | None) -> None:
    h = Harness([err(status, reason)])
    with pytest.raises(ApiError) as info:
        await h.get("/webForm/abc/submit", "webform_submit")
    assert info.value.status == status
    assert info.value.reason == (reason or "Error")  # no reason: the envelope's message
    if reason:
        assert reason in str(info.value)
    assert str(status) in str(info.value)
    assert len(h.requests) == 1 and h.waits == []


async def test_reason_list_and_other_error_shapes() -> None:
    h = Harness([err(400, ["이름은 필수입니다.", "금액은 숫자입니다."])])
    with pytest.raises(ApiError) as info:
        await h.get()
    assert info.value.reason == "이름은 필수입니다.; 금액은 숫자입니다."

    h = Harness([httpx.Response(403, json={"message": "Forbidden plan"})])
    with pytest.raises(ApiError) as info:
        await h.get()
    assert info.value.reason == "Forbidden plan"

    h = Harness([httpx.Response(404, json={"error": "no such path"})])
    with pytest.raises(ApiError) as info:
        await h.get()
    assert info.value.reason == "no such path"


async def test_reason_equal_to_the_phrase_is_not_repeated() -> None:
    h = Harness([err(404, message="Not Found")])
    with pytest.raises(ApiError) as info:
        await h.get()
    assert str(info.value) == "GET /deal failed: 404 Not Found"


async def test_404_html_is_api_error() -> None:
    h = Harness([httpx.Response(404, text="<html>Not Found</html>")])
    with pytest.raises(ApiError) as info:
        await h.get()
    assert info.value.status == 404 and info.value.reason is None
    assert len(h.requests) == 1


async def test_200_with_error_envelope_is_not_retried() -> None:
    h = Harness([httpx.Response(200, json={"success": False, "reason": "bad cursor"})])
    with pytest.raises(ApiError) as info:
        await h.get()
    assert info.value.reason == "bad cursor"
    assert len(h.requests) == 1


# --- bad bodies on 200 ----------------------------------------------------------------------------
def _html() -> httpx.Response:
    return httpx.Response(
        200, text="<!DOCTYPE html><html>app</html>", headers={"content-type": "text/html"}
    )


async def test_html_200_is_retried_then_a_clear_error() -> None:
    h = Harness([_html() for _ in range(4)])
    with pytest.raises(MaxRetriesExceeded) as info:
        await h.get()
    msg = str(info.value)
    assert msg.startswith("max_retries_exceeded: GET /deal after 4 attempts: the API answered 200")
    assert "HTML" in msg and "/v2" in msg
    assert info.value.last_status == 200
    assert h.waits == [1.0, 2.0, 4.0]
    assert len(h.requests) == 4


@pytest.mark.parametrize(
    "bad",
    [
        b'{"success": true, "data": {"dealList": [{"id": "a"',  # truncated
        b"[1, 2, 3]",  # JSON, not the envelope
        b'{"success": true}',  # envelope without data
        b"",  # empty
    ],
)
async def test_bad_200_bodies_are_retried(bad: bytes) -> None:
    h = Harness([httpx.Response(200, content=bad), ok({"dealList": []})])
    assert await h.get() == {"dealList": []}
    assert h.waits == [1.0]
    assert h.retried[0].status == 200
    assert "the API answered 200" in h.retried[0].error


# --- transport errors -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "label"),
    [
        (httpx.ReadTimeout("read timed out"), "timeout"),
        (httpx.ConnectTimeout("connect timed out"), "timeout"),
        (httpx.ConnectError("connection refused"), "connection refused"),
        (httpx.ConnectError("all attempts failed"), "connection failed"),
        (httpx.RemoteProtocolError("peer closed connection"), "connection dropped"),
        (httpx.ReadError("connection reset mid-body"), "connection dropped"),
    ],
)
async def test_transport_errors_are_retried(exc: Exception, label: str) -> None:
    h = Harness([exc, exc, ok(3)])
    assert await h.get() == 3
    assert h.waits == [1.0, 2.0]
    assert [e.status for e in h.retried] == [None, None]
    assert h.retried[0].error.startswith(label)


async def test_timeouts_exhaust_retries() -> None:
    h = Harness([httpx.ReadTimeout("t") for _ in range(4)])
    with pytest.raises(MaxRetriesExceeded) as info:
        await h.get()
    assert info.value.last_status is None
    assert str(info.value).endswith("timeout (ReadTimeout)")


# --- cancel ---------------------------------------------------------------------------------------
async def test_cancel_during_real_wait_raises_quickly() -> None:
    h = Harness([httpx.Response(503), ok(1)], backoff_base=50.0)
    timer = threading.Timer(0.05, h.cancel.set)
    async with h.client(default_sleep=True) as c:
        timer.start()
        try:
            with pytest.raises(RunCancelled):
                # the timeout only bounds a broken test; a working cancel returns in ~0.1 s
                await asyncio.wait_for(c.get_data("/deal", None, "deal"), timeout=5)
        finally:
            timer.cancel()
    assert len(h.requests) == 1
    assert [e.wait_s for e in h.retried] == [50.0]  # the event came before the wait


async def test_cancel_set_during_injected_sleep() -> None:
    h = Harness([httpx.Response(503), ok(1)])
    h.on_sleep = lambda _s: h.cancel.set()
    with pytest.raises(RunCancelled):
        await h.get()
    assert len(h.requests) == 1


async def test_cancel_before_any_request() -> None:
    h = Harness([ok(1)])
    h.cancel.set()
    with pytest.raises(RunCancelled):
        await h.get()
    assert h.requests == []


# --- pagination -----------------------------------------------------------------------------------
async def _collect(h: Harness, spec: Any = DEAL, start: str | None = None) -> list[list[str]]:
    async with h.client() as c:
        return [[r["id"] for r in p.records] async for p in c.iter_pages(spec, start)]


async def test_pages_end_on_null_cursor() -> None:
    h = Harness([deal_page(["a", "b"], "b"), deal_page(["c"], None)])
    assert await _collect(h) == [["a", "b"], ["c"]]
    assert h.cursors() == [None, "b"]


async def test_pages_end_on_missing_cursor_key() -> None:
    h = Harness([deal_page(["a"], "a"), deal_page(["b"], ...)])
    assert await _collect(h) == [["a"], ["b"]]


async def test_pages_end_on_trailing_empty_page() -> None:
    h = Harness([deal_page(["a"], "a"), deal_page([], "zzz")])
    assert await _collect(h) == [["a"], []]
    assert h.cursors() == [None, "a"]


async def test_pages_follow_the_doc_typo_key() -> None:
    h = Harness([deal_page(["a"], "a", key="nextCurosr"), deal_page(["b"], None)])
    assert await _collect(h) == [["a"], ["b"]]
    assert h.cursors() == [None, "a"]


async def test_short_page_with_cursor_continues() -> None:
    h = Harness([deal_page(["a"], "a"), deal_page(["b"], "b"), deal_page(["c"], "")])
    assert await _collect(h) == [["a"], ["b"], ["c"]]
    assert h.cursors() == [None, "a", "b"]


async def test_start_cursor_and_int_cursor() -> None:
    h = Harness([deal_page(["a"], 42), deal_page(["b"], None)])
    assert await _collect(h, start="s0") == [["a"], ["b"]]
    assert h.cursors() == ["s0", "42"]


async def test_repeated_cursor_is_a_loop() -> None:
    h = Harness([deal_page(["a"], "a"), deal_page(["b"], "a")])
    with pytest.raises(ApiError, match=r"cursor loop on /deal: nextCursor 'a' repeated"):
        await _collect(h)
    assert len(h.requests) == 2


async def test_cursor_equal_to_start_cursor_is_a_loop() -> None:
    h = Harness([deal_page(["x"], "s0")])
    with pytest.raises(ApiError, match="cursor loop"):
        await _collect(h, start="s0")


async def test_cursor_cycle_is_a_loop() -> None:
    h = Harness([deal_page(["a"], "A"), deal_page(["b"], "B"), deal_page(["c"], "A")])
    with pytest.raises(ApiError, match="cursor loop"):
        await _collect(h)


@pytest.mark.parametrize("spec", [USER, TEAM])
async def test_unpaginated_spec_is_one_call_and_shows_the_cursor(spec: Any) -> None:
    data = {spec.list_key: [{"id": "u1"}], "nextCursor": "u1"}
    h = Harness([ok(data)])
    async with h.client() as c:
        pages = [p async for p in c.iter_pages(spec)]
    assert len(h.requests) == 1
    assert len(pages) == 1 and pages[0].next_cursor == "u1"
    assert h.requests[0].url.path == f"/v2/{spec.name}"


async def test_webform_list_follows_a_cursor_if_one_appears() -> None:
    h = Harness(
        [
            ok({"webFormList": [{"id": "f1"}], "nextCursor": "f1"}),
            ok({"webFormList": [{"id": "f2"}]}),
        ]
    )
    assert await _collect(h, WEBFORM_LIST) == [["f1"], ["f2"]]


async def test_webform_submit_path_and_empty_list() -> None:
    spec = webform_submit_spec("f/1 x")
    h = Harness([ok({"webFormSubmitList": []})])
    assert await _collect(h, spec) == [[]]
    assert h.requests[0].url.raw_path == b"/v2/webForm/f%2F1%20x/submit"


async def test_lead_fetch_page() -> None:
    h = Harness([ok({"leadList": [{"id": "l1"}], "nextCursor": "l1"})])
    async with h.client() as c:
        page = await c.fetch_page(LEAD, "l0")
    assert page.next_cursor == "l1" and page.records == [{"id": "l1"}]
    assert h.cursors() == ["l0"]
    assert c.requests_sent == 1


# --- strict answers (issue 9) ---------------------------------------------------------------------
BAD_ANSWERS = [
    pytest.param({}, "a success without dealList", id="no-list-key"),
    pytest.param(None, "data is null", id="data-null"),
    pytest.param({"dealList": {"id": "a"}}, "dealList is dict, not a list", id="not-a-list"),
    pytest.param({"dealList": None, "nextCursor": None}, "dealList is null", id="list-null"),
]


@pytest.mark.parametrize(("data", "fragment"), BAD_ANSWERS)
async def test_bad_answer_on_a_later_page_is_retried_then_fails(data: Any, fragment: str) -> None:
    # a success without its list used to end the list: 300 -> 250 rows, exit 0
    h = Harness([deal_page(["a"], "a"), *([ok(data)] * 4)])
    got: list[list[str]] = []
    with pytest.raises(MaxRetriesExceeded) as info:
        async with h.client() as c:
            async for page in c.iter_pages(DEAL):
                got.append([r["id"] for r in page.records])
    assert got == [["a"]]
    assert h.cursors() == [None, "a", "a", "a", "a"]  # MAX_RETRIES=3: 4 attempts in all
    assert str(info.value).startswith("max_retries_exceeded: GET /deal after 4 attempts: ")
    assert fragment in str(info.value)
    assert [e.attempt for e in h.retried] == [1, 2, 3]
    assert h.waits == [1.0, 2.0, 4.0]  # the 5xx backoff


@pytest.mark.parametrize(("data", "fragment"), BAD_ANSWERS)
async def test_bad_answer_on_the_first_page_then_a_good_one(data: Any, fragment: str) -> None:
    h = Harness([ok(data), ok(data), deal_page(["a", "b"], None)])
    assert await _collect(h) == [["a", "b"]]
    assert h.cursors() == [None, None, None]
    assert len(h.retried) == 2 and fragment in h.retried[0].error


@pytest.mark.parametrize("spec", [USER, TEAM])
async def test_user_and_team_without_their_list_fail(spec: Any) -> None:
    h = Harness([ok({"nextCursor": None})] * 4)
    with pytest.raises(MaxRetriesExceeded, match=f"without {spec.list_key}"):
        async with h.client() as c:
            await c.fetch_page(spec, None)
    assert len(h.requests) == 4


# --- token hygiene --------------------------------------------------------------------------------
async def test_token_never_leaks() -> None:
    echo = f"Bearer {TOKEN} is not valid"
    cases: list[list[Reply]] = [
        [err(401, echo)],
        [err(400, [echo, TOKEN])],
        [httpx.Response(503, json={"message": echo}) for _ in range(4)],
        [err(429, f"{TOKEN} 1초") for _ in range(4)],
        [httpx.ConnectError(f"failed with {TOKEN}") for _ in range(4)],
        [httpx.Response(200, text=f"<html>{TOKEN}</html>") for _ in range(4)],
        [deal_page(["a"], TOKEN), deal_page(["b"], TOKEN)],
    ]
    texts: list[str] = []
    for replies in cases:
        h = Harness(replies)
        async with h.client() as c:
            texts += [str(c), repr(c)]
            with pytest.raises(Exception) as info:
                [p async for p in c.iter_pages(DEAL)]
        assert isinstance(info.value, ApiError | TokenRejected | MaxRetriesExceeded)
        texts += [str(info.value), repr(info.value), repr(info.value.args)]
        texts += [str(e) for e in h.events] + [repr(e) for e in h.events]
        texts += [repr(getattr(info.value, "reason", None))]
    assert texts and not [t for t in texts if TOKEN in t]


async def test_long_reason_is_shortened_after_scrubbing() -> None:
    # the token straddles the cut: shortening first would leak its first half
    reason = "x" * 480 + TOKEN + "y" * 5000
    h = Harness([err(400, reason)])
    with pytest.raises(ApiError) as info:
        await h.get()
    assert info.value.reason is not None and len(info.value.reason) <= 500
    assert len(str(info.value)) <= 500
    assert TOKEN[:8] not in str(info.value) and TOKEN[:8] not in info.value.reason
    assert "***" in info.value.reason


def test_missing_token() -> None:
    with pytest.raises(MissingToken, match="SALESMAP_TOKEN"):
        SalesmapClient(settings(token=None), Pacer(0, 0, 0), lambda e: None, threading.Event())


# --- the pure pieces ------------------------------------------------------------------------------
def test_classify_table_rows() -> None:
    def kind(resp: httpx.Response | httpx.HTTPError) -> str:
        return classify(resp, NOW).kind

    assert kind(ok(1)) == "ok"
    assert kind(_html()) == "retry"
    assert kind(err(401)) == "fail_auth"
    assert kind(err(429)) == "rate_limited"
    assert kind(err(408)) == "retry"
    assert kind(err(500)) == "retry"
    assert kind(err(400)) == "fail"
    assert kind(err(403)) == "fail"
    assert kind(httpx.Response(302, headers={"location": "https://elsewhere"})) == "fail"
    assert kind(httpx.ReadTimeout("x")) == "retry"
    assert kind(httpx.UnsupportedProtocol("ftp")) == "fail"


def test_compute_wait_and_retry_after() -> None:
    s = settings(max_wait=60.0)
    assert compute_wait(Action("retry", "x"), 1, s) == (1.0, "backoff")
    assert compute_wait(Action("retry", "x"), 4, s) == (8.0, "backoff")
    assert compute_wait(Action("rate_limited", "x"), 3, s) == (40.0, "backoff")
    assert compute_wait(Action("rate_limited", "x"), 200, s) == (60.0, "backoff")
    hinted = Action("rate_limited", "x", 429, None, 1e9, "body hint")
    assert compute_wait(hinted, 1, s) == (60.0, "body hint")
    assert parse_retry_after("3.5", NOW) == 3.5
    assert parse_retry_after("garbage", NOW) is None
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after("Wed, 01 Jan 2025 00:01:00 GMT", NOW) == 60.0
