"""Crawl scheduling: every cursor chain at once under one pacer, pages committed as they come.

A page is written and committed before the checkpoint may move past it; the run that owns the
crawl (`SnapshotRun`) supplies the settings, the endpoints' states and the reporting callbacks.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from salesmap_tui.config import Settings
from salesmap_tui.engine.checkpoint import EndpointCheckpoint
from salesmap_tui.engine.client import SalesmapClient
from salesmap_tui.engine.crashpoints import crashpoint
from salesmap_tui.engine.endpoints import LEAD, PEOPLE, EndpointSpec
from salesmap_tui.engine.errors import RunCancelled, SalesmapTuiError, TokenRejected
from salesmap_tui.engine.runs.webform_pass import WebformPass
from salesmap_tui.engine.writer import TableWriter

PAGE_SIZE_GUESS = {LEAD.name: 10}


@dataclass
class Endpoint:
    """One snapshot endpoint during a run: its spec, checkpointed state and table writer."""

    spec: EndpointSpec
    state: EndpointCheckpoint
    expected: int | None
    writer: TableWriter | None = None
    error: str | None = None
    pages_since_checkpoint: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def chain_guess(self) -> float:
        per_page = PAGE_SIZE_GUESS.get(self.spec.name, 50)
        if self.expected is None:
            return 1e12 if self.spec.name == LEAD.name else 1e11  # unknown: leads first
        return max(0, self.expected - self.state.rows) / per_page


class CrawlHost(Protocol):
    """What the crawl needs from the run that owns it."""

    settings: Settings
    cancel: threading.Event
    endpoints: dict[str, Endpoint]

    def progress(self, ep: Endpoint, state: Any) -> None: ...

    def warn(self, message: str) -> None: ...

    def write_log(self, message: str) -> None: ...

    def save_checkpoint(self, phase: str | None = None) -> None: ...


async def crawl(host: CrawlHost, client: SalesmapClient, forms: WebformPass | None = None) -> None:
    """Every chain at once: the lists, /user, /team and, with `forms`, the form list and each
    form's submissions. The pacer hands out send slots (longest remaining chain first) and caps
    requests in flight; an endpoint's failure is recorded on it (`error`)."""
    todo = [ep for ep in host.endpoints.values() if not ep.state.done]
    for ep in host.endpoints.values():
        host.progress(ep, "done" if ep.state.done else "waiting")
    todo.sort(key=lambda ep: ep.chain_guess, reverse=True)
    try:
        async with asyncio.TaskGroup() as group:
            if forms is not None:
                group.create_task(forms.run(client, group))
            for ep in todo:
                group.create_task(crawl_endpoint(host, client, ep, forms))
    except BaseExceptionGroup as eg:
        raise eg.exceptions[0] from None


async def crawl_endpoint(
    host: CrawlHost, client: SalesmapClient, ep: Endpoint, forms: WebformPass | None = None
) -> None:
    assert ep.writer is not None
    ep.started = time.monotonic()
    host.progress(ep, "fetching")
    try:
        if not ep.spec.paginated:
            page = await client.fetch_page(ep.spec, None, lambda: ep.chain_guess)
            if page.next_cursor:
                host.warn(
                    f"/{ep.spec.name} answered with a nextCursor; only its first page is "
                    "read (as the seed does)"
                )
            commit_page(host, ep, page.records, None)
        else:
            # the longest remaining chain goes first at the pacer, too
            chain = client.iter_pages(ep.spec, ep.state.cursor, lambda: ep.chain_guess)
            async for page in chain:
                if host.cancel.is_set():
                    raise RunCancelled("cancelled")
                commit_page(host, ep, page.records, page.next_cursor)
                if forms is not None and ep.spec.name == PEOPLE.name:
                    forms.discover(page.records)  # their forms start now, not after the crawl
        ep.state.done = True
        host.progress(ep, "done")
        host.write_log(f"{ep.spec.name}: done, {ep.state.pages} pages, {ep.state.rows} rows")
        host.save_checkpoint()
    except (RunCancelled, TokenRejected):
        raise
    except SalesmapTuiError as exc:
        ep.error = f"{ep.spec.name}: {exc}"
        host.write_log(f"{ep.spec.name} failed: {exc}")
        host.progress(ep, "failed")


def commit_page(
    host: CrawlHost, ep: Endpoint, records: list[dict[str, Any]], cursor: str | None
) -> None:
    assert ep.writer is not None
    stats = ep.writer.write_page(records)
    crashpoint(f"page:{ep.spec.name}")
    if stats.new_columns and ep.state.pages:
        host.write_log(f"{ep.spec.name}: new columns {', '.join(stats.new_columns)}")
    # the page is committed: only now may the checkpoint move past it
    ep.state.pages += 1
    ep.state.rows += stats.rows
    if cursor:
        ep.state.cursor = cursor
    host.progress(ep, "fetching")
    ep.pages_since_checkpoint += 1
    if ep.pages_since_checkpoint >= host.settings.checkpoint_interval:
        ep.pages_since_checkpoint = 0
        host.save_checkpoint()
