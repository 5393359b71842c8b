"""The crawl alone (issue 13): its schedule, its checkpoint cadence and its commit rule, with a
host that records what the run would see and a scripted transport standing in for Salesmap."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import httpx

from salesmap_tui.config import Settings
from salesmap_tui.engine.checkpoint import EndpointCheckpoint
from salesmap_tui.engine.client import SalesmapClient
from salesmap_tui.engine.endpoints import DEAL, LEAD, ORGANIZATION, USER, EndpointSpec
from salesmap_tui.engine.events import EngineEvent
from salesmap_tui.engine.pacer import Pacer
from salesmap_tui.engine.runs.crawl import Endpoint, crawl
from salesmap_tui.engine.writer import TableWriter, prepare_connection

PAGE = 3  # records per page


class Server:
    """Pages of `sizes[name]` records, PAGE a page; `broken` endpoints answer 404."""

    def __init__(self, sizes: dict[str, int], broken: tuple[str, ...] = ()) -> None:
        self.sizes = sizes
        self.broken = broken
        self.asked: list[tuple[str, str | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("/", 1)[-1]
        cursor = request.url.params.get("cursor")
        self.asked.append((name, cursor))
        if name in self.broken:
            return httpx.Response(404, json={"success": False, "message": "Not Found"})
        start = int(cursor or 0)
        end = min(start + PAGE, self.sizes[name])
        data: dict[str, Any] = {
            f"{name}List": [{"id": f"{name}-{i}", "name": f"이름 {i}"} for i in range(start, end)]
        }
        if end < self.sizes[name] and name != USER.name:
            data["nextCursor"] = str(end)
        return httpx.Response(200, json={"success": True, "data": data})


class Host:
    """What the crawl reports to its run; every checkpoint is checked against the tables."""

    def __init__(self, db: Path, endpoints: dict[str, Endpoint]) -> None:
        self.settings = Settings(token="t", base_url="https://api.test/v2", checkpoint_interval=2)
        self.cancel = threading.Event()
        self.endpoints = endpoints
        self.db = db
        self.states: list[tuple[str, str]] = []
        self.saves: list[dict[str, tuple[int, int, str | None]]] = []

    def progress(self, ep: Endpoint, state: Any) -> None:
        self.states.append((ep.spec.name, str(state)))

    def warn(self, message: str) -> None:
        self.states.append(("warning", message))

    def write_log(self, message: str) -> None:
        pass

    def save_checkpoint(self, phase: str | None = None) -> None:
        saved = {
            n: (e.state.pages, e.state.rows, e.state.cursor) for n, e in self.endpoints.items()
        }
        for name, (_pages, rows, cursor) in saved.items():
            # the resume invariant: a checkpoint names only committed pages, read back from the
            # file by another connection (what a killed run leaves)
            other = sqlite3.connect(self.db)
            try:
                have = other.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]
            except sqlite3.OperationalError:
                have = 0
            finally:
                other.close()
            assert have >= rows, (name, have, rows)
            if cursor is not None:
                assert have >= int(cursor), (name, have, cursor)
        self.saves.append(saved)


def crawl_once(
    tmp_path: Path,
    sizes: dict[str, int],
    *,
    expected: dict[str, int] | None = None,
    done: tuple[str, ...] = (),
    broken: tuple[str, ...] = (),
) -> tuple[Host, Server]:
    path = tmp_path / "temp.db"
    conn = prepare_connection(path)
    specs: list[EndpointSpec] = [s for s in (ORGANIZATION, DEAL, LEAD, USER) if s.name in sizes]
    endpoints = {
        s.name: Endpoint(
            s,
            EndpointCheckpoint(done=s.name in done),
            (expected or {}).get(s.name),
            TableWriter(conn, s.name, keep_payload=False, source=f"GET {s.path}"),
        )
        for s in specs
    }
    host = Host(path, endpoints)
    server = Server(sizes, broken)
    events: list[EngineEvent] = []

    async def go() -> None:
        client = SalesmapClient(
            host.settings.replace(max_retries=0),
            Pacer(0.0, 0, 0.0),
            events.append,
            host.cancel,
            transport=httpx.MockTransport(server),
        )
        async with client:
            await crawl(host, client)

    asyncio.run(go())
    conn.close()
    return host, server


def test_every_chain_is_crawled_to_its_end_once(tmp_path: Path) -> None:
    sizes = {"organization": 7, "deal": 5, "lead": 2, "user": 2}
    host, server = crawl_once(tmp_path, sizes)
    for name, n in sizes.items():
        ep = host.endpoints[name]
        assert ep.state.done and ep.error is None
        assert ep.state.rows == n
        pages = [c for asked, c in server.asked if asked == name]
        assert len(pages) == len(set(pages)) == ep.state.pages  # no page asked twice
    assert ("user", "done") in host.states and host.states[-1][1] == "done"


def test_the_longest_remaining_chain_asks_first(tmp_path: Path) -> None:
    """With a previous manifest, the endpoint with the most pages left goes first; without
    one, leads (the longest chain in real workspaces)."""
    sizes = {"organization": 9, "deal": 3, "lead": 3}
    _, server = crawl_once(
        tmp_path / "a", sizes, expected={"organization": 900, "deal": 30, "lead": 30}
    )
    assert server.asked[0][0] == "organization"
    _, server = crawl_once(tmp_path / "b", sizes)
    assert server.asked[0][0] == "lead"


def test_checkpoints_come_every_n_pages_and_at_each_end(tmp_path: Path) -> None:
    host, _ = crawl_once(tmp_path, {"organization": 15})  # 5 pages, checkpoint_interval 2
    pages = [s["organization"][0] for s in host.saves]
    # after pages 2 and 4 (the cadence), and when the endpoint is done (page 5)
    assert pages == [2, 4, 5]
    assert host.saves[-1]["organization"] == (5, 15, "12")


def test_done_endpoints_are_not_asked_and_a_failed_one_does_not_stop_the_others(
    tmp_path: Path,
) -> None:
    host, server = crawl_once(
        tmp_path, {"organization": 4, "deal": 4, "lead": 4}, done=("deal",), broken=("lead",)
    )
    assert not [a for a in server.asked if a[0] == "deal"]
    assert ("deal", "done") in host.states
    lead = host.endpoints["lead"]
    assert lead.error is not None and lead.error.startswith("lead: ") and not lead.state.done
    assert ("lead", "failed") in host.states
    assert host.endpoints["organization"].state.done
