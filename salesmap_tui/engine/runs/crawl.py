"""Crawl scheduling: every cursor chain at once under one pacer, pages committed as they come.

A page is written and committed before the checkpoint may move past it; the run that owns the
crawl (`SnapshotRun`) supplies the settings, the endpoints' states and the reporting callbacks.
Pages are written on one writer thread (`WriteThread`) while the chain's next request is
already on its way: a chain's turn is its response time, not its response time plus a write,
and a write never holds the event loop when another request's slot comes.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from salesmap_tui.engine.writer import TableWriter, WriteStats, WriteThread

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
    db = WriteThread()
    if forms is not None:
        forms.use_writer(db)
    try:
        async with asyncio.TaskGroup() as group:
            if forms is not None:
                group.create_task(forms.run(client, group))
            for ep in todo:
                group.create_task(crawl_endpoint(host, client, ep, forms, db))
    except BaseExceptionGroup as eg:
        raise eg.exceptions[0] from None
    finally:
        db.close()  # the write in progress ends before the connection can be closed
        if forms is not None:
            forms.use_writer(None)


async def crawl_endpoint(
    host: CrawlHost,
    client: SalesmapClient,
    ep: Endpoint,
    forms: WebformPass | None = None,
    db: WriteThread | None = None,
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
            await commit_page(host, ep, page.records, None, db, client)
        else:
            # the longest remaining chain goes first at the pacer, too
            chain = client.iter_pages(ep.spec, ep.state.cursor, lambda: ep.chain_guess)
            # the page before, being committed while the next one is fetched (at most one)
            pending: asyncio.Task[None] | None = None
            try:
                async for page in chain:
                    if host.cancel.is_set():
                        raise RunCancelled("cancelled")
                    if pending is not None:
                        await pending  # committed long since, normally; its failure is ours
                    pending = asyncio.create_task(
                        _commit_and_discover(
                            host, ep, page.records, page.next_cursor, forms, db, client
                        )
                    )
                if pending is not None:
                    await pending
            finally:
                # a page whose commit did not finish is not checkpointed: a resume fetches it
                # again (pages are upserted by id)
                if pending is not None and not pending.done():
                    pending.cancel()
                    with contextlib.suppress(BaseException):
                        await pending
        ep.state.done = True
        host.progress(ep, "done")
        host.write_log(f"{ep.spec.name}: done, {ep.state.pages} pages, {ep.state.rows} rows")
        _save_checkpoint(host, db)
    except (RunCancelled, TokenRejected):
        raise
    except SalesmapTuiError as exc:
        ep.error = f"{ep.spec.name}: {exc}"
        host.write_log(f"{ep.spec.name} failed: {exc}")
        host.progress(ep, "failed")


async def _commit_and_discover(
    host: CrawlHost,
    ep: Endpoint,
    records: list[dict[str, Any]],
    cursor: str | None,
    forms: WebformPass | None,
    db: WriteThread | None,
    client: SalesmapClient,
) -> None:
    await commit_page(host, ep, records, cursor, db, client)
    if forms is not None and ep.spec.name == PEOPLE.name:
        forms.discover(records)  # their forms start now, not after the crawl


def _write(ep: Endpoint, records: list[dict[str, Any]]) -> WriteStats:
    assert ep.writer is not None
    stats = ep.writer.write_page(records)
    crashpoint(f"page:{ep.spec.name}")
    return stats


def _save_checkpoint(host: CrawlHost, db: WriteThread | None) -> None:
    # it counts rows on the connection: never inside a page's transaction on the writer thread
    with db.lock if db is not None else contextlib.nullcontext():
        host.save_checkpoint()


async def commit_page(
    host: CrawlHost,
    ep: Endpoint,
    records: list[dict[str, Any]],
    cursor: str | None,
    db: WriteThread | None = None,
    client: SalesmapClient | None = None,
) -> None:
    """Write and commit one page (on `db`'s thread when given), then move the endpoint's state
    past it; a checkpoint is due every `checkpoint_interval` pages."""
    if db is None:
        stats = _write(ep, records)
    else:
        if client is not None:
            # the chain's next request (granted as this page came in) leaves first: turning
            # records into rows holds the GIL, which would delay it by a few milliseconds
            await client.until_on_wire()
        stats = await db.run(_write, ep, records)
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
        _save_checkpoint(host, db)
