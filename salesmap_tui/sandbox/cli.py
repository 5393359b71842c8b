"""The `salesmap-tui sandbox` command: serve the local API until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import signal
import sys
import threading
from types import FrameType

from salesmap_tui.sandbox.config import SandboxConfig
from salesmap_tui.sandbox.data import PAGINATED
from salesmap_tui.sandbox.faults import FAULT_NAMES, FaultSpecError, parse_faults

__all__ = ["FAULTS_HELP", "add_arguments", "run"]

FAULTS_HELP = (
    "fault spec: comma-separated items NAME[:RATE][:OPT=VAL...], RATE a probability (default 1). "
    f"Names: {', '.join(FAULT_NAMES)}. Options: burst=K (a chosen page fails its first K "
    "attempts, then succeeds), path=ENDPOINT (only that endpoint), hint=S (429 body wait), "
    "value=N / date=N (Retry-After in seconds / as an HTTP date N s ahead; 429, retry_after), "
    "after=N (schema: change after N pages). Example: "
    "'500:0.1,503:0.05:burst=2,429:0.05,hang:0.02,reset:0.02,truncate:0.02,html:0.02,"
    "schema:after=3,loop:1:path=deal,retry_after:1:value=2'. Decisions hash (seed, fault, "
    "path+cursor, attempt), so the same flags give the same run."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox options to `parser`."""
    d = SandboxConfig()
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (127.0.0.1); another than loopback needs --allow-remote",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="let --host be a non-loopback address (anyone who can reach it sees the fake data; "
        "the /_sandbox controls still need the token)",
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="port to listen on; 0 picks a free one (8765)"
    )
    parser.add_argument(
        "--token", default=d.token, help=f"the Bearer token the API accepts ({d.token})"
    )
    parser.add_argument("--seed", type=int, default=d.seed, help="data, fault and jitter seed (1)")
    parser.add_argument(
        "--scale", type=int, default=d.scale, help=f"records per list endpoint on day 1 ({d.scale})"
    )
    parser.add_argument(
        "--day",
        type=int,
        default=d.day,
        help="data day: each later day keeps earlier ids, changes ~5%% and adds records (1)",
    )
    parser.add_argument(
        "--forms", type=int, default=d.forms, help=f"number of web forms ({d.forms})"
    )
    parser.add_argument(
        "--counts",
        default="",
        metavar="LIST=N,...",
        help="day-1 records of some lists instead of --scale, e.g. deal=2000,lead=400",
    )
    parser.add_argument(
        "--submissions",
        type=int,
        default=None,
        metavar="N",
        help="day-1 submissions of every web form (default: seeded from --scale)",
    )
    parser.add_argument(
        "--other-client",
        type=int,
        default=0,
        metavar="N",
        help="another client on the same token spends N requests per rate window (0)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="how long every API answer takes from its request's arrival, the sandbox's own "
        "work included (0)",
    )
    parser.add_argument(
        "--jitter-ms", type=float, default=0.0, help="extra seeded random delay, 0..N ms (0)"
    )
    parser.add_argument("--faults", default="", metavar="SPEC", help=FAULTS_HELP)
    parser.add_argument(
        "--retry-after-header",
        action="store_true",
        help="also send a Retry-After header on rate-limit 429s (the real API does not)",
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=d.rate_limit,
        help=f"requests per window per token; 0 disables the limiter ({d.rate_limit})",
    )
    parser.add_argument(
        "--rate-window",
        type=float,
        default=d.rate_window_s,
        metavar="S",
        help=f"rate-limit sliding window in seconds ({d.rate_window_s:g})",
    )
    parser.add_argument(
        "--hint-scale",
        type=float,
        default=d.hint_scale,
        metavar="F",
        help="multiplies the wait hint in 429 bodies, to shrink waits in tests (1)",
    )


def parse_counts(spec: str) -> tuple[tuple[str, int], ...]:
    """`deal=2000,lead=400` → (("deal", 2000), ("lead", 400)); ValueError names a bad item."""
    out = []
    for item in (x.strip() for x in spec.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep or name not in PAGINATED or not value.isdigit():
            raise ValueError(f"{item!r} (want LIST=N with LIST one of {', '.join(PAGINATED)})")
        out.append((name, int(value)))
    return tuple(out)


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop, 2 on bad options or a busy port."""
    try:
        parse_faults(args.faults)
    except FaultSpecError as exc:
        print(f"sandbox: bad --faults: {exc}", file=sys.stderr)
        return 2
    if not is_loopback_host(args.host):
        if not args.allow_remote:
            print(
                f"sandbox: refusing --host {args.host}: not a loopback address; the sandbox is "
                "for this machine (pass --allow-remote to serve it to others)",
                file=sys.stderr,
            )
            return 2
        print(
            f"sandbox: warning: serving on {args.host}, reachable from other machines "
            "(--allow-remote); its controls need the token",
            file=sys.stderr,
        )
    if args.scale < 0 or args.day < 1 or args.forms < 0:
        print("sandbox: --scale and --forms must be >= 0, --day >= 1", file=sys.stderr)
        return 2
    try:
        counts = parse_counts(args.counts)
    except ValueError as exc:
        print(f"sandbox: bad --counts: {exc}", file=sys.stderr)
        return 2
    if (args.submissions is not None and args.submissions < 0) or args.other_client < 0:
        print("sandbox: --submissions and --other-client must be >= 0", file=sys.stderr)
        return 2
    config = SandboxConfig(
        seed=args.seed,
        scale=args.scale,
        token=args.token,
        day=args.day,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        rate_limit=args.rate_limit,
        rate_window_s=args.rate_window,
        retry_after_header=args.retry_after_header,
        hint_scale=args.hint_scale,
        faults=args.faults,
        forms=args.forms,
        counts=counts,
        submissions=args.submissions,
        other_per_window=args.other_client,
    )
    from salesmap_tui.sandbox.server import SandboxServer  # uvicorn: only when serving

    # pages are generated on worker threads; hand the GIL back to the event loop often, so
    # an arrival is stamped within a millisecond or so even while pages are being built
    sys.setswitchinterval(0.001)

    server = SandboxServer(config, host=args.host, port=args.port)
    try:
        server.start()
    except OSError as exc:
        why = "port already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        print(f"sandbox: cannot listen on {args.host}:{args.port}: {why}", file=sys.stderr)
        return 2
    print(f"base_url: {server.base_url}", flush=True)
    print(f"token: {server.token}", flush=True)
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
