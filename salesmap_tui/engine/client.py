"""SalesmapClient: httpx requests through the global pacer, classified and retried with tenacity.

Every answer (or transport error) goes through `classify`, the one response → action table.
The token lives only in the request header: every message built here is run through a scrubber
and never quotes httpx exceptions' request objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from salesmap_tui.config import TOKEN_ENV, Settings, is_loopback_host
from salesmap_tui.engine.endpoints import (
    EndpointSpec,
    MalformedEnvelope,
    Page,
    error_reason,
    extract_page,
    parse_envelope,
)
from salesmap_tui.engine.errors import (
    ApiError,
    MaxRetriesExceeded,
    MissingToken,
    TokenRejected,
    UsageError,
    printable,
)
from salesmap_tui.engine.events import EventSink, RequestRetried, WorkspacePaused
from salesmap_tui.engine.pacer import Pacer, cancellable_sleep, check_cancel

ActionKind = Literal["ok", "retry", "rate_limited", "fail_auth", "fail"]
HintSource = Literal["Retry-After header", "body hint"]
WaitReason = Literal["Retry-After header", "body hint", "backoff"]
Priority = Callable[[], float]  # a request's rank at the pacer, higher first

# "8.316초 후 재시도해주세요." → 8.316
_BODY_HINT = re.compile(r"(\d+(?:\.\d+)?)\s*초")
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*$")
CANCEL_POLL_S = 0.1  # how often a request in flight looks at the cancel event
MAX_MESSAGE = 500  # characters of any message built from a server's answer
# a request holding its headers for its slot sleeps until this much before it, then spins: the
# event loop's sleeps end up to a millisecond or two late (epoll rounds its timeout up to the
# next millisecond), and a late send pushes every next slot back by as much
SEND_SPIN_S = 0.002
# 429s on requests that were already in flight when another 429 paused the workspace spend no
# attempt; past this many per request they do (a bound, so no request can loop for ever)
FREE_429_PER_ATTEMPT = 4


@dataclass(frozen=True)
class Action:
    """What to do with one attempt's outcome."""

    kind: ActionKind
    message: str  # short, token-free cause: "503 Service Unavailable", "timeout (ReadTimeout)"
    status: int | None = None
    reason: str | None = None  # the server's own reason text, when it gave one
    wait_hint: float | None = None  # seconds the server asked for (429 only), not yet capped
    hint_source: HintSource | None = None
    data: Any = None  # envelope["data"] when kind == "ok"


def _status_text(response: httpx.Response) -> str:
    phrase = httpx.codes.get_reason_phrase(response.status_code) or response.reason_phrase
    return f"{response.status_code} {phrase}".strip()


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP date); None if unusable."""
    if not value:
        return None
    match = _SECONDS.match(value)
    if match:
        return float(match.group(1))
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    delta = (when - now).total_seconds()
    return delta if delta >= 0 else None


def parse_body_hint(reason: str | None) -> float | None:
    """Seconds from the body's `N초` hint (decimal allowed), None if there is none."""
    if not reason:
        return None
    match = _BODY_HINT.search(reason)
    return float(match.group(1)) if match else None


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _connect_cause(exc: httpx.ConnectError) -> str:
    """DNS, refused, TLS or other: each needs a different fix, so the message tells them apart."""
    import socket
    import ssl

    chain = _causes(exc)
    text = " ".join(str(e) for e in chain).lower()
    if any(isinstance(e, socket.gaierror) for e in chain) or any(
        hint in text
        for hint in (
            "name or service not known",
            "nodename nor servname",
            "name resolution",
            "getaddrinfo failed",
            "no address associated",
        )
    ):
        return "DNS lookup failed: the host name does not resolve"
    if any(isinstance(e, ssl.SSLError) for e in chain) or "ssl" in text or "certificate" in text:
        return "TLS handshake failed (certificate or TLS settings)"
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in text:
        return "connection refused: nothing listens at that host and port"
    if "unreachable" in text:
        return "network unreachable"
    return "connection failed"


def describe_transport_error(exc: httpx.HTTPError) -> str:
    """One line for a transport error, without the request (its headers hold the token)."""
    return _transport_message(exc)


def _transport_message(exc: httpx.HTTPError) -> str:
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout ({name})"
    if isinstance(exc, httpx.ConnectError):
        return f"{_connect_cause(exc)} ({name})"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return f"connection dropped ({name})"
    return f"network error ({name})"


def classify(outcome: httpx.Response | httpx.HTTPError, now: datetime) -> Action:
    """THE response → action table.

    | outcome                                   | action                                  |
    |-------------------------------------------|-----------------------------------------|
    | 2xx, envelope with success: true          | ok                                      |
    | 2xx, not JSON / not the envelope          | retry (backoff)                         |
    | 2xx, envelope without its page (list key) | retry (backoff; checked in fetch_page)  |
    | 2xx, envelope with success: false         | fail (ApiError)                         |
    | 401                                       | fail_auth (TokenRejected, no retry)     |
    | 429                                       | rate_limited (Retry-After, body N초, backoff) |
    | 408, 5xx                                  | retry (backoff)                         |
    | other 4xx (400, 403, 404, ...), 1xx, 3xx  | fail (ApiError, no retry)               |
    | timeout, connection / protocol error      | retry (backoff)                         |
    | unsupported protocol (bad base URL)       | fail                                    |
    """
    if isinstance(outcome, httpx.HTTPError):
        if isinstance(outcome, httpx.UnsupportedProtocol):
            return Action("fail", f"unsupported URL scheme ({type(outcome).__name__})")
        return Action("retry", _transport_message(outcome))

    response = outcome
    status = response.status_code
    content = response.content
    if 200 <= status < 300:
        try:
            data = parse_envelope(status, content, response.headers.get("content-type"))
        except MalformedEnvelope as exc:
            return Action("retry", str(exc), status=status)
        except ApiError as exc:
            return Action("fail", str(exc), status=status, reason=exc.reason)
        return Action("ok", _status_text(response), status=status, data=data)

    reason = error_reason(content)
    text = _status_text(response)
    # `message` is often just the reason phrase again: don't repeat it
    repeats = reason is not None and text.lower().endswith(reason.strip().lower())
    message = f"{text} ({reason})" if reason and not repeats else text
    if status == 401:
        return Action("fail_auth", message, status=status, reason=reason)
    if status == 429:
        hint = parse_retry_after(response.headers.get("retry-after"), now)
        if hint is not None:
            return Action("rate_limited", message, status, reason, hint, "Retry-After header")
        hint = parse_body_hint(reason)
        if hint is not None:
            return Action("rate_limited", message, status, reason, hint, "body hint")
        return Action("rate_limited", message, status=status, reason=reason)
    if status == 408 or status >= 500:
        return Action("retry", message, status=status, reason=reason)
    return Action("fail", message, status=status, reason=reason)


def compute_wait(action: Action, attempt: int, settings: Settings) -> tuple[float, WaitReason]:
    """The wait before the next attempt after `attempt` (1-based) failed, capped at max_wait."""
    cap = max(0.0, settings.max_wait)
    if action.wait_hint is not None and action.hint_source is not None:
        return min(action.wait_hint, cap), action.hint_source
    base = settings.backoff_429 if action.kind == "rate_limited" else settings.backoff_base
    # The exponent is bounded so a large max_retries cannot overflow a float.
    return min(max(0.0, base) * 2.0 ** min(attempt - 1, 60), cap), "backoff"


def use_env_proxy(base_url: str) -> bool:
    """Whether the client may take a proxy (and CA settings) from the environment.

    Loopback never goes through a proxy: a plain-http sandbox URL would hand the token to it in
    clear. Other hosts are https only, so a proxy from `HTTPS_PROXY`/`ALL_PROXY` (minus
    `NO_PROXY`) only tunnels TLS with CONNECT: what users behind a corporate proxy need. Plain
    http to another host is refused outright, proxy or not.
    """
    parts = urlsplit(base_url)
    if is_loopback_host(parts.hostname or ""):
        return False
    if parts.scheme != "https":
        raise UsageError(
            f"refusing plain http:// to {parts.hostname}: the API token would travel in clear "
            "(through any proxy on the way too); use https://"
        )
    return True


class _Regrant(Exception):
    """Internal: a workspace pause began while a granted request held its headers back for
    its slot; it goes back to the pacer (spending no attempt) instead of leaving inside it."""


class _Retryable(Exception):
    """Internal: an attempt to retry; carries the classified outcome and its grant time."""

    def __init__(self, action: Action, granted_at: float) -> None:
        super().__init__(action.message)
        self.action = action
        self.granted_at = granted_at


class SalesmapClient:
    """GET requests against the Salesmap v2 API, paced, classified and retried."""

    def __init__(
        self,
        settings: Settings,
        pacer: Pacer,
        on_event: EventSink,
        cancel: threading.Event,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock_now: Callable[[], datetime] | None = None,
    ) -> None:
        if not settings.token:
            raise MissingToken(f"no API token: set {TOKEN_ENV} in the environment")
        self._settings = settings
        self._token = settings.token
        self._pacer = pacer
        self._on_event = on_event
        self._cancel = cancel
        self._injected_sleep = sleep
        self._clock_now = clock_now or (lambda: datetime.now(UTC))
        self._max_attempts = max(0, settings.max_retries) + 1
        self.requests_sent = 0
        # httpcore's transport reports when headers are written; others (mocks) never do
        self._traced = transport is None or isinstance(transport, httpx.AsyncHTTPTransport)
        self._http = httpx.AsyncClient(
            base_url=settings.base_url,
            headers={
                "Authorization": f"Bearer {settings.token}",
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(settings.request_timeout),
            transport=transport,
            trust_env=use_env_proxy(settings.base_url),
            # A redirect is answered as an error instead of carrying the token elsewhere.
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"SalesmapClient(base_url={self._settings.base_url!r})"

    async def __aenter__(self) -> SalesmapClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- internals --------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        """Token out first, then shorten: a cut could otherwise leave part of the token.

        Control characters from the server are shown as `\\xNN` text: these messages reach
        terminals (CLI lines, the TUI, `cat` of a log), where an escape sequence would act.
        """
        text = printable(text.replace(self._token, "***"))
        return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"

    async def _sleep(self, seconds: float) -> None:
        if self._injected_sleep is None:
            await cancellable_sleep(seconds, self._cancel)
            return
        check_cancel(self._cancel)
        await self._injected_sleep(seconds)
        check_cancel(self._cancel)

    async def _unless_cancelled(self, request: Awaitable[httpx.Response]) -> httpx.Response:
        """Await `request`, abandoning it within 0.1 s of the cancel event being set: Ctrl+C or
        SIGTERM during a request that hangs must not wait for --request-timeout."""
        task = asyncio.ensure_future(request)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=CANCEL_POLL_S)
                if done:
                    return task.result()
                check_cancel(self._cancel)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def _attempt(
        self,
        path: str,
        params: dict[str, str] | None,
        priority: Priority | None,
        endpoint: str,
        parse: Callable[[Any], Any] | None = None,
    ) -> Any:
        # with pacing on, the trace hook below tells the pacer when the request is on the wire
        confirm = self._traced and not self._pacer.off
        if priority is None:
            granted = await self._pacer.acquire(self._cancel, confirm=confirm)
        else:
            # a chain is one path: the lists' and each form's submissions
            granted = await self._pacer.acquire(
                self._cancel, priority=priority(), key=path, confirm=confirm
            )
        self.requests_sent += 1
        ready = time.monotonic()

        async def trace(event: str, info: dict[str, Any]) -> None:
            if event.endswith(".send_request_headers.started"):
                # granted a moment ahead of its slot (the pacer's lead): the headers wait for
                # the slot itself, so the request leaves on it rather than a little after
                self._pacer.note_prep(time.monotonic() - ready)
                while True:
                    delay = self._pacer.send_delay(granted)
                    if delay is None:
                        raise _Regrant  # a 429 paused the workspace meanwhile
                    if delay <= 0:
                        break
                    if delay > SEND_SPIN_S:
                        await asyncio.sleep(delay - SEND_SPIN_S)
                        continue
                    until = time.monotonic() + delay
                    while time.monotonic() < until:
                        pass  # at most SEND_SPIN_S: the loop could not wake any closer
                    break
            elif event.endswith(".send_request_headers.complete"):
                # once its headers are written (a new connection, a busy loop can delay that),
                # the pacer knows when it left
                self._pacer.mark_sent(granted)

        outcome: httpx.Response | httpx.HTTPError
        sent = max(ready, granted)
        latency: float | None = None
        try:
            outcome = await self._unless_cancelled(
                self._http.get(
                    path, params=params, extensions=None if self._pacer.off else {"trace": trace}
                )
            )
            latency = time.monotonic() - sent
        except httpx.HTTPError as exc:
            outcome = exc
        except _Regrant:
            self.requests_sent -= 1  # it never left
            self._pacer.release(None, granted)
            raise
        except BaseException:
            self._pacer.release(None, granted)
            raise
        action = classify(outcome, self._clock_now())
        if action.kind == "fail_auth":
            self._pacer.halt()  # the token is refused: no other request of the run may leave
        # no longer in flight: a retry's wait never holds a slot another request could use
        self._pacer.release(latency, granted)
        if action.kind == "ok":
            if parse is None:
                return action.data
            try:
                return parse(action.data)
            except MalformedEnvelope as exc:
                # a success without its list is a bad answer: retried like a 5xx (one attempt)
                raise _Retryable(Action("retry", str(exc), status=action.status), granted) from None
        if action.kind in ("retry", "rate_limited"):
            raise _Retryable(action, granted)
        if action.kind == "fail_auth":
            raise TokenRejected(
                self._scrub(
                    f"token rejected by the API (401: {action.reason or 'Unauthorized'}); "
                    f"check {TOKEN_ENV}"
                )
            )
        raise ApiError(
            self._scrub(f"GET {path} failed: {action.message}"),
            status=action.status,
            reason=self._scrub(action.reason) if action.reason else None,
        )

    # --- public -----------------------------------------------------------------------------------
    async def get_data(
        self,
        path: str,
        params: dict[str, str] | None,
        endpoint: str,
        priority: Priority | None = None,
        parse: Callable[[Any], Any] | None = None,
    ) -> Any:
        """GET `path` (relative to the base URL) and return the envelope's `data`.

        `parse` (given `data`) turns it into the caller's value inside the attempt: a
        `MalformedEnvelope` it raises is retried like a 5xx, on the same attempt budget.

        `priority` (asked at every attempt) ranks this request at the pacer: a cursor chain
        passes its remaining length so the longest chain is served first.

        Raises TokenRejected (401), ApiError (other 4xx, error envelopes), MaxRetriesExceeded,
        RunCancelled.
        """
        settings = self._settings
        attempt = 0  # attempts that count against max_retries
        free = 0  # 429s this request was not to blame for
        while True:
            try:
                return await self._attempt(path, params, priority, endpoint, parse)
            except _Regrant:
                continue  # held back by a pause that began after its grant: no attempt spent
            except _Retryable as exc:
                action = exc.action
                wait_s, reason = compute_wait(action, attempt + 1, settings)
                if action.kind == "rate_limited":
                    # the workspace is over its budget: the pacer holds every request
                    blamed = self._pacer.rate_limited(wait_s, exc.granted_at)
                    if not blamed and free < FREE_429_PER_ATTEMPT * self._max_attempts:
                        free += 1  # in flight when another 429 came: it waits at the pacer
                        continue
                    if blamed and not self._pacer.off:
                        self._on_event(WorkspacePaused(endpoint, wait_s, reason, 429))
                attempt += 1
                if attempt >= self._max_attempts:
                    raise MaxRetriesExceeded(
                        self._scrub(
                            f"max_retries_exceeded: GET {path} after {self._max_attempts} "
                            f"attempts: {action.message}"
                        ),
                        attempts=self._max_attempts,
                        last_status=action.status,
                    ) from None
                self._on_event(
                    RequestRetried(
                        endpoint=endpoint,
                        attempt=attempt,
                        max_attempts=self._max_attempts,
                        status=action.status,
                        error=self._scrub(action.message),
                        wait_s=wait_s,
                        reason=reason,
                    )
                )
                # the retry's own wait: nothing is held meanwhile (the pacer's slot and the
                # in-flight place were given back when the answer came)
                await self._sleep(wait_s)

    async def until_on_wire(self, timeout: float = 0.05) -> None:
        """Return once the request granted last is on the wire (at most `timeout`)."""
        await self._pacer.until_on_wire(timeout)

    async def fetch_page(
        self, spec: EndpointSpec, cursor: str | None, priority: Priority | None = None
    ) -> Page:
        """One page of `spec` starting after `cursor` (None: the first page).

        A success without the page (no list key, `data: null`, a list that is not a list) is
        retried, then raises MaxRetriesExceeded: never read as the end of the list.
        """
        params = {"cursor": cursor} if cursor else None

        def parse(data: Any) -> Page:
            return extract_page(data, spec)

        page: Page = await self.get_data(spec.path, params, spec.name, priority, parse)
        if priority is not None and not spec.paginated:
            self._pacer.end_chain(spec.path)  # one call: the chain is done
        return page

    def iter_pages(
        self,
        spec: EndpointSpec,
        start_cursor: str | None = None,
        priority: Priority | None = None,
    ) -> AsyncIterator[Page]:
        """Pages of `spec` from `start_cursor` until the list ends.

        Ends on a falsy next cursor or an empty page; a repeated cursor raises ApiError before the
        page carrying it is yielded. A non-paginated spec is one call: its Page still shows any
        nextCursor, for the caller to warn about. `priority`: see `get_data`.
        """
        return self._pages(spec, start_cursor, priority)

    async def _pages(
        self, spec: EndpointSpec, start_cursor: str | None, priority: Priority | None
    ) -> AsyncIterator[Page]:
        cursor = start_cursor
        seen: set[str] = {cursor} if cursor else set()
        while True:
            check_cancel(self._cancel)
            page = await self.fetch_page(spec, cursor, priority)
            nxt = page.next_cursor
            if not spec.paginated or not page.records or not nxt:
                if priority is not None:
                    self._pacer.end_chain(spec.path)  # its last request: stop ranking it
                yield page
                return
            if nxt in seen:
                raise ApiError(
                    self._scrub(
                        f"cursor loop on {spec.path}: nextCursor {nxt!r} repeated "
                        f"(requested with cursor {cursor!r})"
                    )
                )
            seen.add(nxt)
            yield page
            cursor = nxt
