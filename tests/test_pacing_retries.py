"""The pacer's two rules hold for every attempt the transport sees, retries included.

SalesmapClient over httpx.MockTransport on a virtual clock: several endpoints are paged
concurrently while the server answers 503 and 429 now and then; the request times the transport
records must keep `min_interval` apart and never put more than `max_requests` in one window.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from typing import Any

import httpx
import pytest

from salesmap_tui.config import Settings
from salesmap_tui.engine.client import SalesmapClient
from salesmap_tui.engine.endpoints import EndpointSpec
from salesmap_tui.engine.events import RequestRetried
from salesmap_tui.engine.pacer import Pacer
from tests.test_pacer import EPS, VirtualTime

ENDPOINTS = tuple(EndpointSpec(f"ep{i}", f"/ep{i}", "itemList", True) for i in range(5))
HINT_429 = "0.250초 후 재시도해주세요."
PAGES = {"/ep0": 120, "/ep1": 60, "/ep2": 60, "/ep3": 40, "/ep4": 20}


def _roll(key: str) -> float:
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class FlakyServer:
    """Pages of 3 items; the first attempt at a page fails with 503 or 429 now and then."""

    def __init__(self, vt: VirtualTime, fail_p: float, with_429: bool = True) -> None:
        self.vt = vt
        self.fail_p = fail_p
        self.with_429 = with_429
        self.times: list[float] = []
        self.attempts: dict[str, int] = {}
        self.statuses: list[int] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.times.append(self.vt.now)
        path = request.url.path.removeprefix("/v2")
        cursor = request.url.params.get("cursor")
        key = f"{path}?{cursor}"
        attempt = self.attempts.get(key, 0)
        self.attempts[key] = attempt + 1
        roll = _roll(f"{key}#{attempt}")
        if attempt < 2 and roll < self.fail_p:
            status = 429 if self.with_429 and roll < self.fail_p / 2 else 503
            self.statuses.append(status)
            body: dict[str, Any] = {
                "success": False,
                "message": "Too Many Requests" if status == 429 else "Service Unavailable",
                "reason": HINT_429 if status == 429 else "잠시 후 다시 시도해주세요.",
            }
            return httpx.Response(status, content=json.dumps(body).encode())
        self.statuses.append(200)
        page = 0 if cursor is None else int(cursor.rsplit("-", 1)[1]) + 1
        items = [{"id": f"{path}-{page}-{i}"} for i in range(3)]
        nxt = f"{path}-{page}" if page + 1 < PAGES[path] else None
        data = {"success": True, "data": {"itemList": items, "nextCursor": nxt}}
        return httpx.Response(200, content=json.dumps(data).encode())


def _check_rules(times: list[float], min_interval: float, max_requests: int, window: float) -> None:
    assert times == sorted(times)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= min_interval - EPS
    for i in range(len(times) - max_requests):
        assert times[i + max_requests] - times[i] >= window - EPS


async def _crawl(
    vt: VirtualTime, server: FlakyServer, pacer: Pacer, settings: Settings
) -> tuple[dict[str, int], list[Any]]:
    events: list[Any] = []
    client = SalesmapClient(
        settings,
        pacer,
        events.append,
        threading.Event(),
        transport=httpx.MockTransport(server.handler),
        sleep=vt.sleep,
    )
    pages: dict[str, int] = {}

    async def one(spec: EndpointSpec) -> None:
        async for _ in client.iter_pages(spec):
            pages[spec.path] = pages.get(spec.path, 0) + 1

    try:
        await vt.run([one(spec) for spec in ENDPOINTS])
    finally:
        await client.aclose()
    return pages, events


@pytest.mark.parametrize(
    ("min_interval", "max_requests", "window"),
    [
        (0.12, 100, 10.0),  # the product's rules: the interval binds
        (0.02, 20, 1.0),  # a tight window: the window binds, retries land inside it
    ],
)
async def test_rules_hold_with_retries_over_a_long_run(
    min_interval: float, max_requests: int, window: float
) -> None:
    vt = VirtualTime()
    server = FlakyServer(vt, fail_p=0.2)
    pacer = Pacer(min_interval, max_requests, window, clock=vt.clock, sleep=vt.sleep)
    settings = Settings(
        token="t0ken", base_url="http://127.0.0.1:9/v2", min_interval=min_interval, max_wait=5.0
    )
    pages, events = await _crawl(vt, server, pacer, settings)

    assert pages == PAGES  # every page arrived despite the failures
    retried = [e for e in events if isinstance(e, RequestRetried)]
    assert {429, 503} <= set(server.statuses)
    assert len(retried) == server.statuses.count(429) + server.statuses.count(503) > 40
    # every attempt, retries included, took a pacer slot
    assert pacer.total == len(server.times) == sum(PAGES.values()) + len(retried)
    assert len(server.times) >= 1000 * min_interval  # a long run: hundreds of attempts
    _check_rules(server.times, min_interval, max_requests, window)


async def test_retry_waits_do_not_hold_a_slot_from_others() -> None:
    """While one endpoint backs off (5xx), the others keep the pacer busy at its full rate.

    (A 429 is different on purpose: it pauses the whole workspace, see test_workspace_pause.py.)
    """
    vt = VirtualTime()
    server = FlakyServer(vt, fail_p=0.2, with_429=False)
    pacer = Pacer(0.12, 100, 10.0, clock=vt.clock, sleep=vt.sleep)
    settings = Settings(token="t0ken", base_url="http://127.0.0.1:9/v2", max_wait=5.0)
    await _crawl(vt, server, pacer, settings)
    times = server.times
    busy = times[: len(times) // 2]  # all five endpoints are still paging here
    # the spacing rule is met with little slack: backoffs are filled by the other endpoints
    assert busy[-1] - busy[0] <= (len(busy) - 1) * 0.12 * 1.05
