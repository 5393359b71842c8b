"""The web-form pass of a snapshot run, overlapped with the crawl.

The form list is fetched as the crawl starts and every form's submissions are paged alongside
the lists, as chains of their own under the same pacer. Forms named in people records are
started as their pages come in (a form the list does not show, such as a deleted one, is known
before the crawl ends). Each page goes into `webform_history` of the temp DB at once, with its
form's cursor in `_webform_pass` in the same transaction, so a resume continues every form where
it stood and never refetches a finished one.

The people filter needs the complete deals, so it runs once the crawl is done (`finish`): rows
this run added for people without a deal, or for forms the people records do not name, are
removed again, and names come from the same place as before. The outcome — rows, dropped and
skipped counts, errors — is the one the pass had when it ran after the crawl, and `finish` can
be repeated after a kill with the same result. `_webform_pass` is dropped at finalize.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from salesmap_tui.engine import webform
from salesmap_tui.engine.client import SalesmapClient
from salesmap_tui.engine.crashpoints import crashpoint
from salesmap_tui.engine.endpoints import WEBFORM_LIST, webform_submit_spec
from salesmap_tui.engine.errors import ApiError, RunCancelled, TokenRejected, printable
from salesmap_tui.engine.events import EventSink, WebformProgress, WebformResult
from salesmap_tui.engine.runtag import utc_now_iso
from salesmap_tui.engine.writer import WriteThread

STATE_TABLE = "_webform_pass"
STATE_SQL = f"""
CREATE TABLE IF NOT EXISTS {STATE_TABLE} (
    webFormId TEXT PRIMARY KEY, name TEXT, listed INTEGER NOT NULL DEFAULT 0, expected INTEGER,
    cursor TEXT, pages INTEGER NOT NULL DEFAULT 0, dropped INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL, error TEXT
)"""
LIST_ROW = ""  # the form list's own row: no form has an empty id
SUBMISSIONS_PER_PAGE = 50
LIST_PRIORITY = 1e13  # above any chain's remaining pages
# a form the carried-over history shows with at least this many pages of submissions is started
# with the form list, not after its answer: a long form's chain can end the run, and waiting a
# response time for the list would add one turn to it. The list still decides: a form it does
# not show (and no person names) is fetched for nothing and its rows go (`finish`); a deleted
# one answers 400 and is skipped
EARLY_FORM_PAGES = 2
# a form's state: waiting | fetching (not finished yet) | done | skipped (400) | failed
UNFINISHED = ("waiting", "fetching", "failed")


@dataclass
class _Form:
    form_id: str
    name: str
    expected: int | None  # submitCount from the form list
    pages: int = 0

    @property
    def chain_guess(self) -> float:
        """Pages still to come, in the unit the lists use (their rows / page size)."""
        if self.expected is None:
            return 0.0
        return max(0.0, self.expected / SUBMISSIONS_PER_PAGE - self.pages)


class WebformPass:
    """The overlapped web-form pass on a snapshot run's temp DB."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        run_tag: str,
        on_event: EventSink,
        log: Callable[[str], None],
    ) -> None:
        self.conn = conn
        self.run_tag = run_tag
        self.on_event = on_event
        self.log = log
        self.fetched_at = utc_now_iso()
        self._group: asyncio.TaskGroup | None = None
        self._client: SalesmapClient | None = None
        self._started: set[str] = set()
        self._forms: dict[str, _Form] = {}  # the started forms (their guesses are updated)
        self._done = 0
        self._db: WriteThread | None = None
        webform.ensure_table(conn)
        conn.execute(STATE_SQL)

    # --- state -----------------------------------------------------------------------------------
    def use_writer(self, db: WriteThread | None) -> None:
        """During the crawl pages are committed on `db`'s thread; every other statement here
        takes its lock (None: after the crawl, everything runs on the caller's thread)."""
        self._db = db

    def _locked(self) -> contextlib.AbstractContextManager[object]:
        return self._db.lock if self._db is not None else contextlib.nullcontext()

    def _status(self, form_id: str) -> str | None:
        with self._locked():
            row = self.conn.execute(
                f"SELECT status FROM {STATE_TABLE} WHERE webFormId = ?", (form_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def _set(self, form_id: str, status: str, error: str | None = None) -> None:
        with self._locked():
            self.conn.execute(
                f"UPDATE {STATE_TABLE} SET status = ?, error = ? WHERE webFormId = ?",
                (status, error, form_id),
            )

    def _known(self, form_id: str, name: str, listed: bool, expected: int | None) -> None:
        with self._locked():
            self._known_unlocked(form_id, name, listed, expected)

    def _known_unlocked(self, form_id: str, name: str, listed: bool, expected: int | None) -> None:
        self.conn.execute(
            f"INSERT INTO {STATE_TABLE} (webFormId, name, listed, expected, status) "
            "VALUES (?, ?, ?, ?, 'waiting') ON CONFLICT (webFormId) DO UPDATE SET "
            "listed = max(listed, excluded.listed), expected = coalesce(excluded.expected, "
            "expected), name = CASE WHEN excluded.listed THEN excluded.name ELSE name END",
            (form_id, name, int(listed), expected),
        )

    def _progress(self) -> None:
        with self._locked():
            total = int(
                self.conn.execute(
                    f"SELECT COUNT(*) FROM {STATE_TABLE} WHERE webFormId != ?", (LIST_ROW,)
                ).fetchone()[0]
            )
            done, dropped, skipped = self.conn.execute(
                f"SELECT COUNT(*), coalesce(SUM(dropped), 0), "
                f"coalesce(SUM(status = 'skipped'), 0) FROM {STATE_TABLE} "
                "WHERE webFormId != ? AND status IN ('done', 'skipped')",
                (LIST_ROW,),
            ).fetchone()
        # rows are counted once the people filter has run (`finish`)
        self.on_event(WebformProgress(int(done), total, 0, int(dropped), int(skipped)))

    # --- during the crawl -----------------------------------------------------------------------
    async def run(self, client: SalesmapClient, group: asyncio.TaskGroup) -> None:
        """Fetch the form list (unless a resumed run has it) and start every unfinished form."""
        self._client, self._group = client, group
        # forms a resumed run already knows, and those named in people already crawled
        self.discover_from_table()
        with self._locked():
            rows = self.conn.execute(
                f"SELECT webFormId, name, expected, pages FROM {STATE_TABLE} "
                f"WHERE webFormId != ? AND status IN {UNFINISHED}",
                (LIST_ROW,),
            ).fetchall()
        for form_id, name, expected, pages in rows:
            self._start(_Form(str(form_id), str(name or ""), expected, int(pages)))
        if self._status(LIST_ROW) != "done":
            longest = self._start_long_forms()
            await self._fetch_list(client, longest)

    def _start_long_forms(self) -> float | None:
        """Start the forms the history shows as long (EARLY_FORM_PAGES) before the list; the
        longest form's pages by the history (None: no history to go by)."""
        with self._locked():
            rows = self.conn.execute(
                f"SELECT webFormId, COUNT(*) FROM {webform.TABLE} WHERE webFormId IS NOT NULL "
                "GROUP BY webFormId"
            ).fetchall()
        if not rows:
            return None
        for raw_id, count in sorted(rows, key=lambda r: -int(r[1])):
            form_id = webform.as_id(raw_id)
            if count < EARLY_FORM_PAGES * SUBMISSIONS_PER_PAGE:
                break
            if form_id is None or form_id in self._started or self._status(form_id) is not None:
                continue
            self._known(form_id, "", False, None)
            # its submissions the history kept: a guess of its length until the list says
            self._start(_Form(form_id, "", int(count)))
        return max(int(count) for _, count in rows) / SUBMISSIONS_PER_PAGE

    async def _fetch_list(self, client: SalesmapClient, longest: float | None = None) -> None:
        """The form list, then every form it shows. It heads the chains of the forms not
        started yet: at the pacer it ranks as one page more than the longest form the history
        shows (`longest`; with no history, above every chain: a form may be the longest)."""
        with self._locked():
            self.conn.execute(
                f"INSERT OR REPLACE INTO {STATE_TABLE} (webFormId, status, dropped) "
                "VALUES (?, ?, 0)",
                (LIST_ROW, "fetching"),
            )
        listed: list[_Form] = []
        dropped = 0
        priority = LIST_PRIORITY if longest is None else 1.0 + longest
        try:
            async for page in client.iter_pages(WEBFORM_LIST, priority=lambda: priority):
                for item in page.records:
                    form_id = webform.as_id(item.get("id"))
                    if form_id is None:
                        dropped += 1
                        continue
                    count = item.get("submitCount")
                    expected = count if isinstance(count, int) and count >= 0 else None
                    listed.append(_Form(form_id, str(item.get("name") or ""), expected))
        except (TokenRejected, RunCancelled):
            raise
        except Exception as exc:
            # only a pass that needs the list (no people record names forms) fails for it
            self._set(LIST_ROW, "failed", f"web form list: {exc}")
            self.log(f"web form list failed: {exc}")
            return
        with self._locked():
            self.conn.execute("BEGIN")
            for form in listed:
                self._known_unlocked(form.form_id, form.name, True, form.expected)
            self.conn.execute(
                f"UPDATE {STATE_TABLE} SET status = 'done', dropped = ? WHERE webFormId = ?",
                (dropped, LIST_ROW),
            )
            self.conn.execute("COMMIT")
        for form in listed:
            started = self._forms.get(form.form_id)
            if started is not None:
                # started early (or named by a person): the list's count is the better guess
                started.name = form.name
                if form.expected is not None:
                    started.expected = form.expected
            self._start(form)
        self._progress()

    def discover(self, records: list[dict[str, Any]]) -> None:
        """Start the forms a page of people names (called as each people page is committed)."""
        for rec in records:
            for form_id in _named_forms(rec.get(webform.FORMS_KEY)):
                if form_id not in self._started:
                    self._known(form_id, "", False, None)
                    self._start(_Form(form_id, "", None))

    def discover_from_table(self) -> None:
        with self._locked():
            self._discover_from_table()

    def _discover_from_table(self) -> None:
        if not webform.table_exists(self.conn, "people"):
            return
        if webform.FORMS_KEY not in webform.table_columns(self.conn, "people"):
            return
        quoted = '"' + webform.FORMS_KEY + '"'
        with self._locked():
            raws = self.conn.execute(f"SELECT {quoted} FROM people").fetchall()
        for (raw,) in raws:
            for form_id in _named_forms(raw):
                if form_id not in self._started and self._status(form_id) is None:
                    self._known(form_id, "", False, None)

    def _start(self, form: _Form) -> None:
        if form.form_id in self._started or self._group is None or self._client is None:
            return
        status = self._status(form.form_id)
        if status is not None and status not in UNFINISHED:
            self._started.add(form.form_id)
            return
        self._started.add(form.form_id)
        self._forms[form.form_id] = form
        chain = self._chain(self._client, form)
        try:
            self._group.create_task(chain)
        except RuntimeError:
            # the group is shutting down (another chain failed, or a cancel): this form is not
            # started, and its coroutine is closed rather than left never awaited
            chain.close()
            self._started.discard(form.form_id)

    async def _chain(self, client: SalesmapClient, form: _Form) -> None:
        form_id = form.form_id
        with self._locked():
            row = self.conn.execute(
                f"SELECT cursor, pages FROM {STATE_TABLE} WHERE webFormId = ?", (form_id,)
            ).fetchone()
        cursor, form.pages = (row[0], int(row[1])) if row else (None, 0)
        self._set(form_id, "fetching")
        spec = webform_submit_spec(form_id)
        # the page before, being committed while the next one is fetched (at most one)
        pending: asyncio.Task[None] | None = None
        try:
            pages = client.iter_pages(spec, cursor, lambda: form.chain_guess)
            try:
                async for page in pages:
                    if pending is not None:
                        await pending
                    pending = asyncio.create_task(
                        self._commit_async(form, page.records, page.next_cursor)
                    )
                if pending is not None:
                    await pending
            finally:
                # a page whose commit did not finish keeps the cursor before it (fetched again)
                if pending is not None and not pending.done():
                    pending.cancel()
                    with contextlib.suppress(BaseException):
                        await pending
            self._set(form_id, "done")
        except (TokenRejected, RunCancelled):
            raise
        except ApiError as exc:
            if exc.status == 400:
                self._set(form_id, "skipped", str(exc))
                self.log(f"web form {printable(form_id)} skipped: {exc}")
            else:
                self._set(form_id, "failed", f"web form {printable(form_id)}: {exc}")
        except Exception as exc:
            self._set(form_id, "failed", f"web form {printable(form_id)}: {exc}")
        self._progress()

    async def _commit_async(
        self, form: _Form, subs: list[dict[str, Any]], cursor: str | None
    ) -> None:
        if self._db is None:
            self._commit(form, subs, cursor)
        else:
            if self._client is not None:
                await self._client.until_on_wire()  # the form's next request leaves first
            await self._db.run(self._commit, form, subs, cursor)

    def _commit(self, form: _Form, subs: list[dict[str, Any]], cursor: str | None) -> None:
        """One page of submissions and the form's cursor after it, in one transaction."""
        rows = []
        dropped = 0
        for sub in subs:
            if webform.as_id(sub.get("peopleId")) is None:
                dropped += 1
                continue
            rows.append(
                webform.submission_row(form.form_id, "", sub, self.run_tag, self.fetched_at)
            )
        conn = self.conn
        conn.execute("BEGIN")
        try:
            if rows:
                conn.executemany(webform.INSERT_SQL, rows)
            # the last page (no cursor after it) finishes the form in the same transaction: a
            # kill before a separate 'done' left the cursor before that page, and a resume
            # fetched it again and counted its dropped submissions twice
            conn.execute(
                f"UPDATE {STATE_TABLE} SET cursor = coalesce(?, cursor), pages = pages + 1, "
                "dropped = dropped + ?, status = CASE WHEN ? THEN 'done' ELSE status END "
                "WHERE webFormId = ?",
                (cursor, dropped, cursor is None, form.form_id),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        form.pages += 1
        crashpoint("webform_page")

    # --- after the crawl ------------------------------------------------------------------------
    async def finish(self, client: SalesmapClient) -> WebformResult:
        """Apply the people filter (`deal.peopleId`) to what the crawl fetched; the outcome.

        Repeatable: a second call (a resume after a kill) finds the same rows and counts.
        """
        conn = self.conn
        allowed = webform.allowed_people(conn)
        plan = webform.forms_from_people(conn, allowed)
        if plan is None:
            if self._status(LIST_ROW) != "done":
                await self._fetch_list(client)
            row = conn.execute(
                f"SELECT status, error, dropped FROM {STATE_TABLE} WHERE webFormId = ?",
                (LIST_ROW,),
            ).fetchone()
            if row is None or row[0] != "done":
                raise ApiError(row[1] if row and row[1] else "the web form list was not fetched")
            plan = webform.FormPlan(from_people=False, dropped_entries=int(row[2]))
            for form_id, name in conn.execute(
                f"SELECT webFormId, name FROM {STATE_TABLE} WHERE listed = 1 AND webFormId != ?",
                (LIST_ROW,),
            ).fetchall():
                plan.forms[str(form_id)] = str(name or "")
        await self._fetch_missing(client, plan)
        states = {
            str(f): (str(s), e, int(d or 0))
            for f, s, e, d in conn.execute(
                f"SELECT webFormId, status, error, dropped FROM {STATE_TABLE} WHERE webFormId != ?",
                (LIST_ROW,),
            )
        }
        dropped = plan.dropped_entries
        skipped = 0
        errors: list[str] = []
        for form_id in plan.forms:
            status, error, form_dropped = states.get(form_id, ("failed", None, 0))
            dropped += form_dropped
            if status == "skipped":
                skipped += 1
            elif status != "done":
                errors.append(error or f"web form {printable(form_id)}: not fetched")
        conn.execute("BEGIN")
        try:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS _wf_allowed (id TEXT PRIMARY KEY)")
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS _wf_plan (id TEXT PRIMARY KEY, name TEXT)"
            )
            conn.execute("DELETE FROM _wf_allowed")
            conn.execute("DELETE FROM _wf_plan")
            conn.executemany("INSERT INTO _wf_allowed VALUES (?)", ((p,) for p in allowed))
            conn.executemany("INSERT INTO _wf_plan VALUES (?, ?)", plan.forms.items())
            table = webform.TABLE
            conn.execute(
                f"DELETE FROM {table} WHERE run_tag = ? AND (webFormId NOT IN "
                "(SELECT id FROM _wf_plan) OR peopleId NOT IN (SELECT id FROM _wf_allowed))",
                (self.run_tag,),
            )
            conn.execute(
                f"UPDATE {table} SET webFormName = (SELECT name FROM _wf_plan "
                "WHERE id = webFormId) WHERE run_tag = ?",
                (self.run_tag,),
            )
            new_rows = int(
                conn.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE run_tag = ?", (self.run_tag,)
                ).fetchone()[0]
            )
            conn.execute("DROP TABLE _wf_allowed")
            conn.execute("DROP TABLE _wf_plan")
            crashpoint("webform_commit")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        fetched = len(states)
        unused = fetched - sum(1 for f in states if f in plan.forms)
        if unused:
            self.log(f"web forms: {unused} fetched but named by no person with a deal: unused")
        result = WebformResult(
            status="failed" if errors else "done",
            forms=len(plan.forms),
            new_rows=new_rows,
            dropped=dropped,
            skipped_forms=skipped,
            error=webform.summarize_failures(errors),
            errors=tuple(errors),
        )
        self.on_event(WebformProgress(len(plan.forms), len(plan.forms), new_rows, dropped, skipped))
        return result

    async def _fetch_missing(self, client: SalesmapClient, plan: webform.FormPlan) -> None:
        """Forms of the plan no chain fetched (none, normally: people pages start them)."""
        missing = [f for f in plan.forms if self._status(f) in (None, "waiting")]
        if not missing:
            return
        self.log(f"web forms: {len(missing)} forms fetched after the crawl")
        for form_id in missing:
            self._known(form_id, plan.forms[form_id], False, None)
        try:
            async with asyncio.TaskGroup() as group:
                self._client, self._group = client, group
                self._started.difference_update(missing)
                for form_id in missing:
                    self._start(_Form(form_id, plan.forms[form_id], None))
        except BaseExceptionGroup as eg:
            raise eg.exceptions[0] from None


def drop_state(conn: sqlite3.Connection) -> None:
    """Remove the pass's bookkeeping from the temp DB (finalize: it is no table of the snapshot)."""
    conn.execute(f"DROP TABLE IF EXISTS {STATE_TABLE}")


def _named_forms(raw: Any) -> list[str]:
    entries = raw
    if isinstance(raw, str):
        try:
            entries = json.loads(raw)
        except ValueError:
            return []
    if not isinstance(entries, list):
        return []
    out = []
    for entry in entries:
        form_id = webform.as_id(entry.get("id")) if isinstance(entry, dict) else None
        if form_id is not None:
            out.append(form_id)
    return out
