"""The sandbox's ASGI app (Starlette): the /v2 API, its rate limiter, faults and counters.

Rate limiting: a sliding window of the requests *admitted* per token; a request the limiter
rejects with 429 does not count against the window (as real limiters usually do), while requests
answered by an injected fault do count (the server did take them). 401s never count.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import hmac
import itertools
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from salesmap_tui.sandbox.config import SandboxConfig
from salesmap_tui.sandbox.data import (
    ENDPOINTS,
    MISSING,
    Dataset,
    InvalidCursor,
    UnknownForm,
    h,
    tag,
)
from salesmap_tui.sandbox.faults import Fault, parse_faults

__all__ = ["SandboxState", "build_app"]

REASON_NO_HEADER = "헤더에서 Authorization을 찾을 수 없습니다."
REASON_BAD_TOKEN = "유효하지 않은 토큰입니다."
REASON_NO_FORM = "웹 폼을 찾을 수 없습니다."
REASON_BAD_CURSOR = "유효하지 않은 커서입니다."
HTML_PAGE = (
    "<!DOCTYPE html><html lang='ko'><head><meta charset='utf-8'><title>세일즈맵</title></head>"
    "<body><div id='root'></div><script src='/static/app.js'></script></body></html>"
)
BAD_GATEWAY = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
    "</center><hr><center>nginx</center></body></html>"
)
_NUMERIC_KEYS = ("금액", "직원 수", "매출(억)", "성사 확률(%)", "점수")
_ABORT_MSG = "ASGI callable returned without completing response."
_ENTRY: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("entry", default=None)


class _QuietAbort(logging.Filter):
    """Hide uvicorn's error line for the connections the `reset` fault drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _ABORT_MSG


logging.getLogger("uvicorn.error").addFilter(_QuietAbort())


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str, reason: str) -> Response:
    return _json({"success": False, "message": message, "reason": reason}, status)


class _ResetResponse(Response):
    """Send the headers and half the body, then drop the connection."""

    def __init__(self, body: bytes) -> None:
        super().__init__(body, media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2],
                    "more_body": True})  # fmt: skip
        # Returning without the rest makes uvicorn close the transport mid-body.


class _TruncatedResponse(Response):
    """Status 200 with a Content-Length that matches a body cut in half."""

    def __init__(self, body: bytes) -> None:
        super().__init__(body[: len(body) // 2], media_type="application/json")


class SandboxState:
    """Everything the app mutates: day, faults, token, limiter, counters and the request log."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.token_valid = True
        self.latency_ms = float(config.latency_ms)
        self.jitter_ms = float(config.jitter_ms)
        self.dataset = self._dataset(config.day)
        self.other_per_window = config.other_per_window
        self.faults_spec = ""
        self.faults: tuple[Fault, ...] = ()
        self.set_faults(config.faults)
        self._window: deque[float] = deque()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self._reset_counters()

    # --- controls (thread-safe) -----------------------------------------------------------------
    def _reset_counters(self) -> None:
        self.total = 0
        self.by_kind: dict[str, dict[str, int]] = {}
        self.by_status: dict[str, int] = {}
        self.fault_counts: dict[str, int] = {}
        self.rate_limited = 0
        self.other_admitted = 0
        self.other_rejected = 0
        self.pages_total = 0
        # t, wall, kind, path, cursor, status, fault, done (when the answer left, after latency)
        self.log: deque[list[Any]] = deque(maxlen=max(1, self.config.log_size))

    def reset_stats(self) -> None:
        """Clear counters, the request log and the rate-limit window."""
        with self.lock:
            self._reset_counters()
            self._window.clear()

    def _dataset(self, day: int) -> Dataset:
        c = self.config
        return Dataset(c.seed, c.scale, day, c.forms, dict(c.counts), c.submissions)

    def set_day(self, day: int) -> None:
        dataset = self._dataset(day)
        with self.lock:
            self.dataset = dataset

    def set_other_client(self, per_window: int) -> None:
        """Another client on the same token spends `per_window` requests per window."""
        with self.lock:
            self.other_per_window = max(0, per_window)

    async def other_client(self) -> None:
        """The other client: one request every window / N seconds, through the same limiter.

        Its requests are counted (`other_admitted`, `other_rejected`), not logged: the request
        log stays the engine's own. Rejected ones are not retried (the next tick comes soon).
        """
        next_at = time.monotonic()
        while True:
            n = self.other_per_window
            if n <= 0:
                await asyncio.sleep(0.05)
                next_at = time.monotonic()
                continue
            next_at += self.config.rate_window_s / n
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if self._admit(time.monotonic(), other=True) is None:
                self.other_admitted += 1
            else:
                self.other_rejected += 1

    def set_faults(self, spec: str) -> None:
        """Replace the fault spec; attempt counters and schema page counts start over."""
        faults = parse_faults(spec)
        with self.lock:
            self.faults = faults
            self.faults_spec = spec
            self.attempts: dict[str, int] = {}
            self.pages_since: dict[str, int] = {}
            self.pages_since_total = 0

    def set_latency(self, ms: float, jitter_ms: float = 0.0) -> None:
        with self.lock:
            self.latency_ms = float(ms)
            self.jitter_ms = float(jitter_ms)

    def set_token_valid(self, valid: bool) -> None:
        with self.lock:
            self.token_valid = valid

    def request_stop(self) -> None:
        """Wake every hanging request (called from any thread)."""
        loop, ev = self.loop, self.stopping
        if loop is not None and ev is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(ev.set)

    # --- counters -------------------------------------------------------------------------------
    def _count(
        self, mono: float, wall: float, kind: str, path: str, cursor: str | None, status: int,
        fault: str = "",
    ) -> None:  # fmt: skip
        with self.lock:
            self.total += 1
            s = str(status)
            per = self.by_kind.setdefault(kind, {})
            per[s] = per.get(s, 0) + 1
            self.by_status[s] = self.by_status.get(s, 0) + 1
            if fault:
                self.fault_counts[fault] = self.fault_counts.get(fault, 0) + 1
            entry: list[Any] = [mono, wall, kind, path, cursor, status, fault, None]
            self.log.append(entry)
        _ENTRY.set(entry)

    def request_log(self) -> list[dict[str, Any]]:
        """The kept request log, oldest first."""
        with self.lock:
            entries = list(self.log)
        keys = ("t", "wall", "kind", "path", "cursor", "status", "fault", "done")
        return [dict(zip(keys, e, strict=True)) for e in entries]

    def stats(self) -> dict[str, Any]:
        """Counters plus pacing figures over the kept log (all arrivals, 429s included)."""
        with self.lock:
            times = [e[0] for e in self.log]
            out: dict[str, Any] = {
                "requests": self.total,
                "by_kind": {k: dict(v) for k, v in self.by_kind.items()},
                "by_status": dict(self.by_status),
                "faults": dict(self.fault_counts),
                "rate_limited": self.rate_limited,
                "other_admitted": self.other_admitted,
                "other_rejected": self.other_rejected,
                "other_per_window": self.other_per_window,
                "pages_served": self.pages_total,
                "day": self.dataset.day,
                "scale": self.config.scale,
                "seed": self.config.seed,
                "token_valid": self.token_valid,
                "faults_spec": self.faults_spec,
                "latency_ms": self.latency_ms,
                "jitter_ms": self.jitter_ms,
                "log_size": len(self.log),
            }
        window = self.config.rate_window_s
        out["window_s"] = window
        out["min_gap_s"] = min((b - a for a, b in itertools.pairwise(times)), default=None)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] >= window:
                lo += 1
            best = max(best, hi - lo + 1)
        out["max_in_window"] = best
        out["first_arrival"] = times[0] if times else None
        out["last_arrival"] = times[-1] if times else None
        return out

    # --- the limiter ----------------------------------------------------------------------------
    def _admit(self, now: float, *, other: bool = False) -> float | None:
        """None if admitted, else the seconds until the window frees a slot."""
        limit = self.config.rate_limit
        if limit <= 0:
            return None
        window = self.config.rate_window_s
        with self.lock:
            w = self._window
            while w and w[0] <= now - window:
                w.popleft()
            if len(w) >= limit:
                if not other:
                    self.rate_limited += 1
                return max(0.0, w[0] + window - now)
            w.append(now)
            return None


def _route(path: str) -> tuple[str, str | None]:
    """(endpoint name or "unknown", form id for submissions)."""
    if not path.startswith("/v2/"):
        return "unknown", None
    parts = path[4:].rstrip("/").split("/")
    if len(parts) == 1 and parts[0] in ENDPOINTS and parts[0] != "webFormSubmit":
        return parts[0], None
    if len(parts) == 3 and parts[0] == "webForm" and parts[2] == "submit" and parts[1]:
        return "webFormSubmit", parts[1]
    return "unknown", None


def _schema_changed(rec: dict[str, Any]) -> dict[str, Any]:
    out = dict(rec)
    out["스키마 변경 필드"] = "v2"
    for key in _NUMERIC_KEYS:
        if out.get(key) is not None:
            out[key] = str(out[key])
    return out


def _underscore_id(rec: dict[str, Any]) -> dict[str, Any]:
    out = {"_id": rec.get("id")}
    out.update((k, v) for k, v in rec.items() if k != "id")
    return out


class SandboxApp:
    """The request handlers around one SandboxState."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def api(self, request: Request) -> Response:
        _ENTRY.set(None)
        response = await self._api(request)
        entry = _ENTRY.get()
        if entry is not None:
            entry[7] = time.monotonic()  # the answer leaves now (the latency has passed)
        return response

    async def _api(self, request: Request) -> Response:
        mono, wall = time.monotonic(), time.time()
        # when its bytes came in (the server's protocol notes it), not when this task ran
        arrived = request.scope.get("state", {}).get("sandbox_arrived")
        if isinstance(arrived, float) and arrived <= mono:
            wall -= mono - arrived
            mono = arrived
        st = self.state
        path = request.url.path
        cursor = request.query_params.get("cursor")
        kind, form_id = _route(path)
        if kind == "unknown":
            st._count(mono, wall, kind, path, cursor, 200)
            return HTMLResponse(HTML_PAGE)
        auth = request.headers.get("authorization")
        if not auth:
            st._count(mono, wall, kind, path, cursor, 401)
            return _error(401, "Unauthorized", REASON_NO_HEADER)
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != st.config.token or not st.token_valid:
            st._count(mono, wall, kind, path, cursor, 401)
            return _error(401, "Unauthorized", REASON_BAD_TOKEN)
        wait = st._admit(mono)
        if wait is not None:
            st._count(mono, wall, kind, path, cursor, 429)
            headers = None
            if st.config.retry_after_header:
                headers = {"Retry-After": str(max(1, math.ceil(wait * st.config.hint_scale)))}
            return await self._delayed(
                _json(self._too_many(wait * st.config.hint_scale), 429, headers), path, cursor, -1
            )
        key = f"{path}?{cursor or ''}"
        with st.lock:
            attempt = st.attempts.get(key, 0)
            st.attempts[key] = attempt + 1
            faults = st.faults
            dataset = st.dataset
        seed = st.config.seed
        loop_fault = False
        schema_fault = False
        underscore_id = False
        for f in faults:
            if not f.applies_to(kind):
                continue
            with st.lock:
                served = st.pages_since.get(f.path, 0) if f.path else st.pages_since_total
            if f.name == "schema":
                schema_fault = schema_fault or served >= f.after
                continue
            if served < f.after or not f.fires(seed, key, attempt):
                continue
            if f.name == "loop":
                loop_fault = loop_fault or cursor is not None
                continue
            if f.name == "underscore_id":
                underscore_id = True
                continue
            return await self._fault(f, mono, wall, kind, path, cursor, attempt, dataset, form_id)
        try:
            # off the event loop: arrivals are stamped (and the limiter asked) on time while
            # pages are generated for other requests
            response = await asyncio.to_thread(
                self._render, dataset, kind, form_id, cursor, loop_fault, schema_fault,
                underscore_id,
            )  # fmt: skip
        except UnknownForm:
            st._count(mono, wall, kind, path, cursor, 400)
            return await self._delayed(
                _error(400, "Bad Request", REASON_NO_FORM), path, cursor, attempt
            )
        except InvalidCursor:
            st._count(mono, wall, kind, path, cursor, 400)
            return await self._delayed(
                _error(400, "Bad Request", REASON_BAD_CURSOR), path, cursor, attempt
            )
        with st.lock:
            st.pages_total += 1
            st.pages_since_total += 1
            st.pages_since[kind] = st.pages_since.get(kind, 0) + 1
        fault_names = " ".join(
            name
            for name, on in (
                ("loop", loop_fault),
                ("schema", schema_fault),
                ("underscore_id", underscore_id),
            )
            if on
        )
        st._count(mono, wall, kind, path, cursor, 200, fault_names.strip())
        return await self._delayed(response, path, cursor, attempt)

    def _render(
        self,
        dataset: Dataset,
        kind: str,
        form_id: str | None,
        cursor: str | None,
        loop_fault: bool,
        schema_fault: bool,
        underscore_id: bool,
    ) -> Response:
        body = self._page(dataset, kind, form_id, cursor, loop_fault, schema_fault)
        if underscore_id:
            items = body["data"][ENDPOINTS[kind].list_key]
            body["data"][ENDPOINTS[kind].list_key] = [_underscore_id(r) for r in items]
        return _json(body)

    @staticmethod
    def _too_many(seconds: float) -> dict[str, Any]:
        return {
            "success": False,
            "message": "Too Many Requests",
            "reason": f"{seconds:.3f}초 후 재시도해주세요.",
        }

    def _page(
        self,
        dataset: Dataset,
        kind: str,
        form_id: str | None,
        cursor: str | None,
        loop_fault: bool,
        schema_fault: bool,
    ) -> dict[str, Any]:
        if kind == "webFormSubmit":
            assert form_id is not None
            dataset.form_index(form_id)  # unknown form: 400 even with a bad cursor
            items, nxt = dataset.submission_page(form_id, cursor)
        elif ENDPOINTS[kind].paginated:
            items, nxt = dataset.page(kind, cursor)
        else:
            items, nxt = dataset.page(kind, None)  # one page; any cursor answers the first page
        if schema_fault:
            items = [_schema_changed(r) for r in items]
        data: dict[str, Any] = {ENDPOINTS[kind].list_key: items}
        if loop_fault:
            nxt = cursor
        if nxt is not MISSING:
            data["nextCursor"] = nxt
        return {"success": True, "data": data}

    async def _fault(
        self,
        f: Fault,
        mono: float,
        wall: float,
        kind: str,
        path: str,
        cursor: str | None,
        attempt: int,
        dataset: Dataset,
        form_id: str | None,
    ) -> Response:
        st = self.state
        name = f.name
        if name == "hang":
            st._count(mono, wall, kind, path, cursor, 0, name)
            await self._hang()
            return _error(503, "Service Unavailable", "sandbox stopping")
        if name in ("429", "retry_after"):
            headers: dict[str, str] = {}
            if f.value is not None:
                headers["Retry-After"] = f.value
            elif f.date is not None:
                headers["Retry-After"] = email.utils.formatdate(time.time() + f.date, usegmt=True)
            st._count(mono, wall, kind, path, cursor, 429, name)
            body = self._too_many(f.hint * st.config.hint_scale)
            return await self._delayed(_json(body, 429, headers), path, cursor, attempt)
        if name == "500":
            resp = _error(500, "Internal Server Error", "일시적인 오류가 발생했습니다.")
        elif name == "502":
            resp = HTMLResponse(BAD_GATEWAY, status_code=502)
        elif name == "503":
            resp = _error(503, "Service Unavailable", "잠시 후 다시 시도해주세요.")
        elif name == "html":
            resp = HTMLResponse(HTML_PAGE)
        elif name == "nolist":
            resp = _json({"success": True, "data": {}})
        elif name == "nulldata":
            resp = _json({"success": True, "data": None})
        elif name == "notlist":
            resp = _json({"success": True, "data": {ENDPOINTS[kind].list_key: {}}})
        else:  # reset / truncate: a real page, badly delivered
            try:
                body = self._page(dataset, kind, form_id, cursor, False, False)
            except (UnknownForm, InvalidCursor):
                body = {"success": False, "message": "Bad Request", "reason": REASON_BAD_CURSOR}
            raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            resp = _ResetResponse(raw) if name == "reset" else _TruncatedResponse(raw)
        st._count(mono, wall, kind, path, cursor, resp.status_code, name)
        return await self._delayed(resp, path, cursor, attempt)

    async def _hang(self) -> None:
        ev = self.state.stopping
        if ev is None:
            await asyncio.sleep(3600)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ev.wait(), 3600)

    async def _delayed(self, resp: Response, path: str, cursor: str | None, n: int) -> Response:
        st = self.state
        delay = st.latency_ms
        if st.jitter_ms:
            x = h(st.config.seed, tag("jitter"), tag(f"{path}?{cursor or ''}"), n)
            delay += st.jitter_ms * ((x >> 11) / float(1 << 53))
        # the latency is the whole answer's: counted from the request's arrival, so the time
        # the sandbox spent making the page is part of it (as a real server's would be)
        entry = _ENTRY.get()
        spent = time.monotonic() - entry[0] if entry is not None else 0.0
        if delay / 1000 > spent:
            await asyncio.sleep(delay / 1000 - spent)
        return resp

    # --- /_sandbox controls ---------------------------------------------------------------------
    async def stats(self, request: Request) -> Response:
        return _json(self.state.stats())

    async def log(self, request: Request) -> Response:
        entries = self.state.request_log()
        since = int(request.query_params.get("since", "0"))
        return _json({"entries": entries[since:], "next": len(entries)})

    async def reset(self, request: Request) -> Response:
        self.state.reset_stats()
        return _json({"ok": True})

    async def day(self, request: Request) -> Response:
        try:
            n = int(request.query_params.get("n", ""))
            self.state.set_day(n)
        except ValueError as exc:
            return _json({"ok": False, "error": f"bad day: {exc}"}, 400)
        return _json({"ok": True, "day": n})

    async def set_faults(self, request: Request) -> Response:
        spec = (await request.body()).decode().strip()
        try:
            self.state.set_faults(spec)
        except ValueError as exc:
            return _json({"ok": False, "error": str(exc)}, 400)
        return _json({"ok": True, "faults": spec})

    async def revoke(self, request: Request) -> Response:
        self.state.set_token_valid(False)
        return _json({"ok": True, "token_valid": False})

    async def restore(self, request: Request) -> Response:
        self.state.set_token_valid(True)
        return _json({"ok": True, "token_valid": True})

    async def other(self, request: Request) -> Response:
        try:
            n = int(request.query_params.get("per_window", "0"))
        except ValueError as exc:
            return _json({"ok": False, "error": str(exc)}, 400)
        self.state.set_other_client(n)
        return _json({"ok": True, "other_per_window": n})

    async def latency(self, request: Request) -> Response:
        try:
            ms = float(request.query_params.get("ms", "0"))
            jitter = float(request.query_params.get("jitter", "0"))
        except ValueError as exc:
            return _json({"ok": False, "error": str(exc)}, 400)
        self.state.set_latency(ms, jitter)
        return _json({"ok": True, "latency_ms": ms, "jitter_ms": jitter})


Handler = Callable[[Request], Awaitable[Response]]


def _control_guard(state: SandboxState) -> Callable[[Handler], Handler]:
    """The /_sandbox/* controls answer only to the sandbox's own token (`Bearer T`).

    They change what the API serves (faults, the day, the token's validity): nobody else who can
    reach the port may. A revoked token still opens them, so `restore` can undo `revoke`.
    """
    expected = state.config.token.encode()

    def guard(handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            ok = scheme.lower() == "bearer" and hmac.compare_digest(
                token.strip().encode(), expected
            )
            if not ok:
                return _error(401, "Unauthorized", "the sandbox controls need its token")
            return await handler(request)

        return guarded

    return guard


def build_app(state: SandboxState) -> Starlette:
    """The Starlette app serving `state`."""
    handlers = SandboxApp(state)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.loop = asyncio.get_running_loop()
        state.stopping = asyncio.Event()
        other = asyncio.create_task(state.other_client())
        yield
        other.cancel()
        state.stopping.set()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    guard = _control_guard(state)
    routes = [
        Route("/_sandbox/stats", guard(handlers.stats), methods=["GET"]),
        Route("/_sandbox/log", guard(handlers.log), methods=["GET"]),
        Route("/_sandbox/reset", guard(handlers.reset), methods=["POST"]),
        Route("/_sandbox/day", guard(handlers.day), methods=["POST"]),
        Route("/_sandbox/faults", guard(handlers.set_faults), methods=["POST"]),
        Route("/_sandbox/revoke", guard(handlers.revoke), methods=["POST"]),
        Route("/_sandbox/restore", guard(handlers.restore), methods=["POST"]),
        Route("/_sandbox/latency", guard(handlers.latency), methods=["POST"]),
        Route("/_sandbox/other", guard(handlers.other), methods=["POST"]),
        Route("/{path:path}", handlers.api, methods=methods),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
