"""Benchmark: is the TUI responsive during a fast run, and does it slow the run? (prints only)

Starts `python -m salesmap_tui.sandbox --port 0 --scale N --rate-limit 0` in its own process
(no latency, no faults), then on the same data:

  (a) the engine alone: `api.run_snapshot` with pacing off, no UI -> wall time;
  (b) the app headless (`run_test(size=(120, 36))`), the same run started from the dashboard ->
      wall time until the dashboard shows the result, and the event loop's lag: a task sleeps
      10 ms again and again and records how late it wakes (p50 / p99 / max).

  (c) attach mode: a headless `salesmap-tui snapshot` in its own process, alone -> wall time;
      then the same with the app open and attached to it (following its events file) -> the
      headless run's wall time and the app's event-loop lag while it follows.

Goals: loop lag p99 < 50 ms; TUI wall time <= 1.1x the engine's; in attach mode the headless
run with a TUI watching <= 1.1x the headless run alone, and the watching app's lag p99 < 50 ms.

    python bench/bench_ui.py                       # scale 20,000: about 20-30 s per run here
    python bench/bench_ui.py --scale 30000 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from salesmap_tui.config import Settings
from salesmap_tui.engine import api
from salesmap_tui.engine.events import EngineEvent
from salesmap_tui.tui.app import SalesmapApp

LAG_GOAL_MS = 50.0
RATIO_GOAL = 1.1
TICK_S = 0.010


def start_sandbox(scale: int, seed: int) -> tuple[subprocess.Popen[str], str, str]:
    cmd = [sys.executable, "-m", "salesmap_tui.sandbox", "--port", "0", "--rate-limit", "0",
           "--scale", str(scale), "--seed", str(seed)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    base_url = token = ""
    while not (base_url and token):
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            raise SystemExit(f"sandbox exited before printing its address: {shlex.join(cmd)}")
        if line.startswith("base_url:"):
            base_url = line.split(":", 1)[1].strip()
        elif line.startswith("token:"):
            token = line.split(":", 1)[1].strip()
    # keep draining stdout so the sandbox never blocks on a full pipe
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, base_url, token


def settings_for(root: Path, base_url: str, token: str, concurrency: int | None) -> Settings:
    settings = Settings(
        db_path=root / "salesmap_latest.db",
        log_dir=root / "logs",
        backup_dir=root / "backups",
        token=token,
        base_url=base_url,
        min_interval=0.0,  # pacing off: the fastest run the sandbox allows
        rate_limit_requests=0,
        quiet=True,
    )
    if concurrency is not None:
        settings = settings.replace(concurrency=concurrency)
    return settings


def engine_run(settings: Settings) -> tuple[float, Counter[str], str]:
    counts: Counter[str] = Counter()

    def on_event(event: EngineEvent) -> None:
        counts[type(event).__name__] += 1

    t0 = time.perf_counter()
    result = api.run_snapshot(settings, on_event)
    return time.perf_counter() - t0, counts, result.status


async def sample_lags(lags: list[float], stop: asyncio.Event) -> None:
    """How late a TICK_S sleep wakes, again and again until `stop`: the event loop's lag."""
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(TICK_S)
        lags.append(time.perf_counter() - t0 - TICK_S)


async def tui_run(settings: Settings) -> tuple[float, list[float], int, str]:
    app = SalesmapApp(settings, base_dir=settings.db_path.parent, autostart=False)
    lags: list[float] = []
    messages = 0

    def count_messages(_message: Any) -> None:
        nonlocal messages
        messages += 1

    async with app.run_test(size=(120, 36), message_hook=count_messages) as pilot:
        await pilot.pause()
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_lags(lags, stop))
        t0 = time.perf_counter()
        app.action_start_run()
        while app.last_result is None or app.run_active:
            await asyncio.sleep(0.005)
        await pilot.pause()  # the frame that shows the summary
        wall = time.perf_counter() - t0
        stop.set()
        await sampler
        status = app.last_result.status if app.last_result else "?"
    return wall, lags, messages, status


def headless_cmd(settings: Settings) -> list[str]:
    return [
        sys.executable,
        "-m",
        "salesmap_tui.cli",
        "snapshot",
        "--quiet",
        "--db-path",
        str(settings.db_path),
        "--log-dir",
        str(settings.log_dir),
        "--backup-dir",
        str(settings.backup_dir),
        "--base-url",
        settings.base_url,
        "--min-interval",
        "0",
        "--concurrency",
        str(settings.concurrency or "auto"),
    ]  # fmt: skip  (0 is auto)


def headless_run(settings: Settings) -> tuple[float, int]:
    env = {**os.environ, "SALESMAP_TOKEN": settings.token or ""}
    t0 = time.perf_counter()
    code = subprocess.run(headless_cmd(settings), env=env, check=False).returncode
    return time.perf_counter() - t0, code


async def attached_run(settings: Settings) -> tuple[float, list[float], int, str]:
    """The app open while a headless run goes in another process; it attaches and follows."""
    app = SalesmapApp(settings, base_dir=settings.db_path.parent, autostart=False)
    lags: list[float] = []
    env = {**os.environ, "SALESMAP_TOKEN": settings.token or ""}
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_lags(lags, stop))
        t0 = time.perf_counter()
        proc = subprocess.Popen(headless_cmd(settings), env=env)
        while proc.poll() is None:
            await asyncio.sleep(0.005)
        wall = time.perf_counter() - t0
        dash = app.dashboard
        for _ in range(2000):  # the last events reach the screen
            if dash.watch_ended is not None:
                break
            await asyncio.sleep(0.005)
        stop.set()
        await sampler
        seen = dash.result.status if dash.result else "no result seen"
        attached = dash.holder is not None
    return wall, lags, proc.returncode, seen if attached else "never attached"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=20_000, help="records per endpoint")
    parser.add_argument("--seed", type=int, default=3, help="sandbox seed")
    parser.add_argument("--rounds", type=int, default=1, help="engine/TUI pairs to run")
    parser.add_argument("--concurrency", type=int, default=None, help="engine concurrency")
    parser.add_argument("--no-attach", action="store_true", help="skip the attach-mode runs")
    args = parser.parse_args()
    rerun = shlex.join([sys.executable, *sys.argv])

    proc, base_url, token = start_sandbox(args.scale, args.seed)
    try:
        engine_walls: list[float] = []
        tui_walls: list[float] = []
        all_lags: list[float] = []
        with tempfile.TemporaryDirectory(prefix="bench_ui_") as tmp:
            for n in range(args.rounds):
                root = Path(tmp) / f"engine{n}"
                root.mkdir()
                wall, counts, status = engine_run(
                    settings_for(root, base_url, token, args.concurrency)
                )
                engine_walls.append(wall)
                events = sum(counts.values())
                print(
                    f"engine  round {n + 1}: {wall:6.2f} s  status {status}  {events:,} events "
                    f"({events / wall:,.0f}/s; progress {counts['EndpointProgress']:,})"
                )
                root = Path(tmp) / f"tui{n}"
                root.mkdir()
                settings = settings_for(root, base_url, token, args.concurrency)
                wall, lags, messages, status = asyncio.run(tui_run(settings))
                tui_walls.append(wall)
                all_lags.extend(lags)
                print(
                    f"TUI     round {n + 1}: {wall:6.2f} s  status {status}  {messages:,} messages "
                    f"handled  lag p50 {pct(lags, 0.5) * 1000:.1f} ms  p99 "
                    f"{pct(lags, 0.99) * 1000:.1f} ms  max {max(lags) * 1000:.1f} ms"
                )
            headless_walls: list[float] = []
            attached_walls: list[float] = []
            attach_lags: list[float] = []
            if not args.no_attach:
                for n in range(args.rounds):
                    root = Path(tmp) / f"headless{n}"
                    root.mkdir()
                    settings = settings_for(root, base_url, token, args.concurrency)
                    wall, code = headless_run(settings)
                    headless_walls.append(wall)
                    print(f"headless round {n + 1}: {wall:6.2f} s  exit {code}")
                    root = Path(tmp) / f"attached{n}"
                    root.mkdir()
                    settings = settings_for(root, base_url, token, args.concurrency)
                    wall, lags, code, seen = asyncio.run(attached_run(settings))
                    attached_walls.append(wall)
                    attach_lags.extend(lags)
                    print(
                        f"attached round {n + 1}: {wall:6.2f} s  exit {code}  TUI saw {seen}  lag "
                        f"p50 {pct(lags, 0.5) * 1000:.1f} ms  p99 {pct(lags, 0.99) * 1000:.1f} ms"
                        f"  max {max(lags) * 1000:.1f} ms"
                    )
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    p50, p99, worst = (pct(all_lags, 0.5) * 1000, pct(all_lags, 0.99) * 1000, max(all_lags) * 1000)
    engine_s = statistics.median(engine_walls)
    tui_s = statistics.median(tui_walls)
    ratio = tui_s / engine_s
    print()
    print(f"scale {args.scale:,} records per endpoint, pacing off, sandbox without latency")
    print(
        f"event-loop lag ({len(all_lags):,} samples of a {TICK_S * 1000:.0f} ms sleep): "
        f"p50 {p50:.1f} ms · p99 {p99:.1f} ms · max {worst:.1f} ms  "
        f"(goal p99 < {LAG_GOAL_MS:.0f} ms: {'met' if p99 < LAG_GOAL_MS else 'MISSED'})"
    )
    print(
        f"wall time: engine {engine_s:.2f} s · TUI {tui_s:.2f} s · ratio {ratio:.3f}x  "
        f"(goal <= {RATIO_GOAL}x: {'met' if ratio <= RATIO_GOAL else 'MISSED'})"
    )
    if attach_lags:
        a99 = pct(attach_lags, 0.99) * 1000
        h_s, a_s = statistics.median(headless_walls), statistics.median(attached_walls)
        print(
            f"attach mode: lag p50 {pct(attach_lags, 0.5) * 1000:.1f} ms · p99 {a99:.1f} ms · "
            f"max {max(attach_lags) * 1000:.1f} ms (goal p99 < {LAG_GOAL_MS:.0f} ms: "
            f"{'met' if a99 < LAG_GOAL_MS else 'MISSED'}); headless alone {h_s:.2f} s · watched "
            f"{a_s:.2f} s · ratio {a_s / h_s:.3f}x (goal <= {RATIO_GOAL}x: "
            f"{'met' if a_s / h_s <= RATIO_GOAL else 'MISSED'})"
        )
    print(f"rerun: {rerun}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
