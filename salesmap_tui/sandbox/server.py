"""SandboxServer: the sandbox app served by uvicorn on a background thread."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from salesmap_tui.sandbox.app import SandboxState, build_app
from salesmap_tui.sandbox.config import SandboxConfig

__all__ = ["ARRIVED_KEY", "SandboxServer"]

ARRIVED_KEY = "sandbox_arrived"


class _StampingH11(H11Protocol):
    """uvicorn's h11 protocol, noting when a request's bytes came in.

    The request log's arrival times are taken here rather than in the handler: a handler runs
    as a task of its own, queued behind whatever the server is busy with, and a request that
    comes on a keep-alive connection before the previous answer's cycle has closed is parsed
    only then. Pacing measured from either would show gaps the client never made.
    """

    _data_at: float | None = None

    def data_received(self, data: bytes) -> None:
        self._data_at = time.monotonic()
        super().data_received(data)

    def handle_events(self) -> None:
        before = getattr(self, "scope", None)
        super().handle_events()
        scope = getattr(self, "scope", None)
        if scope is not None and scope is not before and self._data_at is not None:
            scope.setdefault("state", {}).setdefault(ARRIVED_KEY, self._data_at)


class SandboxServer:
    """A running local Salesmap-compatible API; `with SandboxServer(cfg) as srv:` listens at once.

    The socket is bound in `start()` (in the caller's thread), so a busy port raises OSError
    there, and `port=0` picks a free port that `srv.port` reports.
    """

    def __init__(
        self, config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or SandboxConfig()
        self.host = host
        self.port = port
        self.state = SandboxState(self.config)
        self.app = build_app(self.state)
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"SandboxServer(base_url={self.base_url!r}, seed={self.config.seed})"

    @property
    def token(self) -> str:
        return self.config.token

    @property
    def root_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v2"

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> SandboxServer:
        """Bind, start uvicorn on a thread and return once it accepts connections."""
        if self._thread is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
        # proto says TCP, and without it Nagle + delayed ACK add ~40 ms to keep-alive requests.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(1024)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            http=_StampingH11,
            ws="none",
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="salesmap-sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving (hanging requests are released) and wait for the thread."""
        self.state.request_stop()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- runtime controls -----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters per path kind and status, fault counts, min gap and max per window."""
        return self.state.stats()

    def request_log(self) -> list[dict[str, Any]]:
        """The kept request log: t (monotonic), wall, kind, path, cursor, status, fault.

        Status 0 marks a `hang` (no response was sent); `fault` names the injected fault.
        """
        return self.state.request_log()

    def reset_stats(self) -> None:
        self.state.reset_stats()

    def set_day(self, n: int) -> None:
        self.state.set_day(n)

    def set_faults(self, spec: str) -> None:
        self.state.set_faults(spec)

    def revoke_token(self) -> None:
        self.state.set_token_valid(False)

    def restore_token(self) -> None:
        self.state.set_token_valid(True)

    def set_latency(self, ms: float, jitter_ms: float = 0.0) -> None:
        self.state.set_latency(ms, jitter_ms)
