"""Kill anywhere: SIGKILL a real `salesmap-tui snapshot` process at chosen points, then resume.

Each case starts from the same workspace (a live DB from the sandbox's day 1 whose
webform_history is keyed the way the previous version wrote it, one real backup) and snapshots
day 2, so every case also crosses the migration of that table (crash points `webform_migrate*`).
A case is a list of kills, one per successive process (the first fresh, the others `--resume`),
then a last `--resume` that must finish. A kill is

- `NAME:N` — the engine's crash point NAME reached for the Nth time (`SALESMAP_TUI_KILL_AT`),
- `any:N` — the Nth crash point of any name,
- `@T` — a SIGKILL from outside after T seconds (a truly arbitrary instant; timing-dependent).

A case may also start with `--swap=in-place` (every run of the case swaps in place, through
SQLite's backup API); without it the runs use the default (`auto`, here a rename).

After every kill: the live DB, as any read-write SQLite client opens it (which rolls back a hot
journal a kill mid in-place swap left), passes `PRAGMA integrity_check` and holds exactly the
old or the new snapshot; no `-wal`/`-shm` is beside it, and the old backup is byte-identical.
After the last run: exit 0, the live DB equals an uninterrupted run's with no journal beside it,
no duplicate ids, every run tag's last history record is terminal, and every checkpoint of a
finished run is marked done.

Random cases derive from a case seed printed with any failure, so it can be replayed:
`python -m tests.reliability.killharness --case-seed N`. Run `--points 200 --seed S` for a tally.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salesmap_tui.engine.crashpoints import KILL_ENV, TRACE_ENV
from salesmap_tui.sandbox import SandboxConfig, SandboxServer

from ..conftest import workspace_options
from ..legacy_webform import downgrade

SNAPSHOT_TABLES = ("organization", "people", "deal", "lead", "memo", "user", "team")
TERMINAL = frozenset({"done", "failed", "interrupted", "fallback"})
DB_NAME = "salesmap_latest.db"
RUN_TIMEOUT_S = 120.0
IN_PLACE = "--swap=in-place"

Dump = dict[str, Any]


@dataclass(frozen=True)
class HarnessConfig:
    seed: int = 7  # sandbox data seed
    scale: int = 60
    forms: int = 3
    checkpoint_interval: int = 2
    concurrency: int = 1  # 1: the order of crash points is deterministic, so `any:N` replays


@dataclass
class CaseResult:
    label: str
    kills: list[str]
    killed: int = 0  # kills that happened (a point past the run's end is never reached)
    failures: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)  # orphan files after the last run


# --- workspace ----------------------------------------------------------------------------------


def dump_db(db: Path) -> Dump:
    """The snapshot tables as {table: sorted rows as JSON} plus the web-form rows (no run tags)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        out: Dump = {}
        for table in SNAPSHOT_TABLES:
            cur = conn.execute(f'SELECT * FROM "{table}"')
            names = [d[0] for d in cur.description]
            rows = sorted(
                json.dumps(
                    {n: v for n, v in zip(names, row, strict=True) if v is not None},
                    sort_keys=True,
                    ensure_ascii=False,
                )
                for row in cur
            )
            out[table] = rows
        out["webform_history"] = sorted(
            json.dumps(list(row), ensure_ascii=False)
            for row in conn.execute(
                "SELECT webFormId, webFormName, peopleId, organizationId, dealId, leadId, "
                "createdAt, contents, payload, payload_hash FROM webform_history"
            )
        )
        return out
    finally:
        conn.close()


def integrity(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
        return "; ".join(str(r[0]) for r in rows)
    finally:
        conn.close()


def duplicate_ids(db: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        bad = []
        for table in SNAPSHOT_TABLES:
            n, distinct = conn.execute(
                f'SELECT COUNT(*), COUNT(DISTINCT id) FROM "{table}"'
            ).fetchone()
            if n != distinct:
                bad.append(f"{table}: {n} rows, {distinct} distinct ids")
        return bad
    finally:
        conn.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli_args(root: Path, server: SandboxServer, cfg: HarnessConfig) -> list[str]:
    return [
        "snapshot",
        *workspace_options(root, server, DB_NAME),
        "--max-wait",
        "0.05",
        "--checkpoint-interval",
        str(cfg.checkpoint_interval),
        "--concurrency",
        str(cfg.concurrency),
        "--quiet",
    ]


def spawn(
    args: list[str], token: str, env_extra: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in (KILL_ENV, TRACE_ENV)}
    env["SALESMAP_TOKEN"] = token
    env.update(env_extra or {})
    return subprocess.Popen(
        [sys.executable, "-m", "salesmap_tui.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = RUN_TIMEOUT_S) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        return -999, f"timed out after {timeout} s\n{err}"
    return proc.returncode, err


@dataclass
class Workspace:
    """The shared state of a harness session: the sandbox, the template, the references."""

    server: SandboxServer
    cfg: HarnessConfig
    template: Path  # live DB (day 1) + backups/ with one backup
    old: Dump
    new: Dump
    trace: list[str]  # crash points an uninterrupted run passes, in order
    clean_s: float  # how long an uninterrupted run takes (for `@T` kills)
    trace_in_place: list[str] = field(default_factory=list)  # the same with --swap in-place

    def point_counts(self, in_place: bool = False) -> Counter[str]:
        return Counter(self.trace_in_place if in_place else self.trace)


def build_workspace(root: Path, server: SandboxServer, cfg: HarnessConfig) -> Workspace:
    """Day 1 into the template (twice, so a real backup exists), then day 2 uninterrupted."""
    server.set_day(1)
    template = root / "template"
    template.mkdir()
    for _ in range(2):
        code, err = finish(spawn(cli_args(template, server, cfg), server.token))
        if code != 0:
            raise RuntimeError(f"template run failed ({code}): {err}")
    shutil.rmtree(template / "logs")
    downgrade(template / DB_NAME)  # a live DB made by the previous version: migrated by day 2
    old = dump_db(template / DB_NAME)
    server.set_day(2)
    ref = root / "reference"
    copy_template(template, ref)
    trace_file = root / "trace.txt"
    t0 = time.monotonic()
    code, err = finish(
        spawn(cli_args(ref, server, cfg), server.token, {TRACE_ENV: str(trace_file)})
    )
    clean_s = time.monotonic() - t0
    if code != 0:
        raise RuntimeError(f"reference run failed ({code}): {err}")
    new = dump_db(ref / DB_NAME)
    if new == old:
        raise RuntimeError("day 2 equals day 1: the harness could not tell old from new")
    trace = trace_file.read_text().split()
    ref2 = root / "reference-in-place"
    copy_template(template, ref2)
    trace2 = root / "trace-in-place.txt"
    code, err = finish(
        spawn(
            [*cli_args(ref2, server, cfg), IN_PLACE],
            server.token,
            {TRACE_ENV: str(trace2)},
        )
    )
    if code != 0 or dump_db(ref2 / DB_NAME) != new:
        raise RuntimeError(f"in-place reference run differs or failed ({code}): {err}")
    return Workspace(server, cfg, template, old, new, trace, clean_s, trace2.read_text().split())


def copy_template(template: Path, dest: Path) -> None:
    shutil.copytree(template, dest)


# --- cases --------------------------------------------------------------------------------------


def named_cases(ws: Workspace) -> list[list[str]]:
    """Every named point at its first occurrence, and at its last where it recurs; the points
    only an in-place swap passes, with `--swap=in-place`."""
    counts = ws.point_counts()
    cases: list[list[str]] = []
    for name in dict.fromkeys(ws.trace):  # first-seen order
        cases.append([f"{name}:1"])
        if counts[name] > 1:
            cases.append([f"{name}:{counts[name]}"])
    in_place = ws.point_counts(in_place=True)
    for name in dict.fromkeys(ws.trace_in_place):
        if name in counts:
            continue
        cases.append([IN_PLACE, f"{name}:1"])
        if in_place[name] > 1:
            cases.append([IN_PLACE, f"{name}:{in_place[name]}"])
    return cases


def random_case(ws: Workspace, case_seed: int) -> list[str]:
    """1–3 kills (named, `any:N` or a timed instant), all from `case_seed`; half the cases
    swap in place."""
    rng = random.Random(case_seed)
    in_place = bool(ws.trace_in_place) and rng.random() < 0.5
    counts = ws.point_counts(in_place)
    trace = ws.trace_in_place if in_place else ws.trace
    names = sorted(counts)
    kills = [IN_PLACE] if in_place else []
    for _ in range(rng.choice((1, 1, 2, 3))):
        kind = rng.random()
        if kind < 0.4:
            kills.append(f"any:{rng.randint(1, len(trace))}")
        elif kind < 0.8:
            name = rng.choice(names)
            kills.append(f"{name}:{rng.randint(1, counts[name])}")
        else:
            kills.append(f"@{rng.uniform(0.0, ws.clean_s):.3f}")
    return kills


def run_case(ws: Workspace, root: Path, label: str, kills: list[str]) -> CaseResult:
    result = CaseResult(label=label, kills=list(kills))
    copy_template(ws.template, root)
    server, cfg = ws.server, ws.cfg
    db = root / DB_NAME
    backups = {p.name: sha256(p) for p in (root / "backups").iterdir()}
    args = cli_args(root, server, cfg)
    if kills and kills[0] == IN_PLACE:
        args.append(IN_PLACE)
        kills = kills[1:]
    for i, kill in enumerate(kills):
        step_args = [*args, "--resume"] if i else args
        if kill.startswith("@"):
            proc = spawn(step_args, server.token)
            try:
                proc.wait(float(kill[1:]))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
            code, err = finish(proc)
        else:
            code, err = finish(spawn(step_args, server.token, {KILL_ENV: kill}))
        if code == -signal.SIGKILL:
            result.killed += 1
        elif code not in (0, 4):
            result.failures.append(f"run {i + 1} ({kill}) exited {code}: {err.strip()[-500:]}")
            return result
        where = f"after kill {i + 1} ({kill})"
        result.failures.extend(check_live(ws, root, db, backups, where))
        if result.failures:
            return result
    code, err = finish(spawn([*args, "--resume"], server.token))
    if code != 0:
        result.failures.append(f"final --resume exited {code}: {err.strip()[-500:]}")
        return result
    result.failures.extend(check_final(ws, root, db, backups))
    result.leftovers = leftovers(root)
    return result


def open_as_reader(db: Path) -> None:
    """What any read-write SQLite client does first: a hot journal is rolled back."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    finally:
        conn.close()


def check_live(
    ws: Workspace, root: Path, db: Path, backups: dict[str, str], where: str, final: bool = False
) -> list[str]:
    problems = []
    journal = db.with_name(db.name + "-journal")
    if journal.exists() and db.is_file():
        if final:
            problems.append(f"{where}: {journal.name} next to the live DB")
        # a kill mid in-place swap: SQLite's own recovery must give the old snapshot back
        open_as_reader(db)
    for suffix in ("-wal", "-shm"):
        side = db.with_name(db.name + suffix)
        if side.exists():
            problems.append(f"{where}: {side.name} next to the live DB")
    if not db.is_file():
        return [*problems, f"{where}: the live DB is gone"]
    ok = integrity(db)
    if ok != "ok":
        return [*problems, f"{where}: integrity_check: {ok}"]
    dump = dump_db(db)
    if dump != ws.old and dump != ws.new:
        problems.append(f"{where}: the live DB is neither the old nor the new snapshot")
    for name, digest in backups.items():
        path = root / "backups" / name
        if not path.is_file() or sha256(path) != digest:
            problems.append(f"{where}: backup {name} changed or vanished")
    return problems


def check_final(ws: Workspace, root: Path, db: Path, backups: dict[str, str]) -> list[str]:
    problems = check_live(ws, root, db, backups, "after the last run", final=True)
    if problems:
        return problems
    if dump_db(db) != ws.new:
        problems.append("after the last run: the live DB is not the new snapshot")
    problems.extend(f"duplicate ids: {d}" for d in duplicate_ids(db))
    history = root / "logs" / "run_history.jsonl"
    last: dict[str, dict[str, Any]] = {}
    for n, line in enumerate(history.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            problems.append(f"history line {n} is not JSON: {line[:80]!r}")
            continue
        last[rec["run_tag"]] = rec
    for tag, rec in last.items():
        if rec.get("status") not in TERMINAL:
            problems.append(f"history: run {tag} left {rec.get('status')!r}")
    if not any(r.get("status") == "done" and r.get("replaced") for r in last.values()):
        problems.append("history: no run recorded as done and replaced")
    for cp in (root / "logs" / "checkpoints").glob("checkpoint_*.json"):
        data = json.loads(cp.read_text())
        if not data.get("done") and not Path(data["temp_db_path"]).exists():
            problems.append(f"{cp.name}: unfinished, and its temp DB is gone")
    return problems


def leftovers(root: Path) -> list[str]:
    """Files a killed run left that nothing will clean up (reported, not failed)."""
    found = [p.name for p in root.glob(f"{DB_NAME}.*.tmp*")]
    found += [p.name for p in (root / "backups").glob("*.tmp")]
    found += [p.name for p in (root / "logs" / "checkpoints").glob("*.tmp")]
    return sorted(found)


# --- driving ------------------------------------------------------------------------------------


@dataclass
class Tally:
    cases: int = 0
    kills: int = 0
    failed: list[CaseResult] = field(default_factory=list)
    leftovers: Counter[str] = field(default_factory=Counter)
    points: Counter[str] = field(default_factory=Counter)
    swaps_in_place: int = 0  # cases whose runs swapped in place

    def add(self, r: CaseResult) -> None:
        self.cases += 1
        self.kills += r.killed
        if r.failures:
            self.failed.append(r)
        for name in r.leftovers:
            self.leftovers[_leftover_kind(name)] += 1
        for kill in r.kills:
            if kill == IN_PLACE:
                self.swaps_in_place += 1
                continue
            self.points[kill.rsplit(":", 1)[0] if not kill.startswith("@") else "@timed"] += 1

    def report(self) -> str:
        lines = [
            f"cases: {self.cases}, kill points survived: {self.kills - _kills(self.failed)}"
            f" of {self.kills} kills, failed cases: {len(self.failed)}"
            f" ({self.swaps_in_place} cases swapped in place)"
        ]
        for r in self.failed:
            lines.append(f"FAIL {r.label} kills={r.kills}")
            lines.extend(f"    {f}" for f in r.failures)
        if self.leftovers:
            lines.append(
                "leftover files (not failures): "
                + ", ".join(f"{k} x{n}" for k, n in sorted(self.leftovers.items()))
            )
        return "\n".join(lines)


def _kills(results: Iterable[CaseResult]) -> int:
    return sum(r.killed for r in results)


def _leftover_kind(name: str) -> str:
    if name.startswith(DB_NAME):
        return "temp DB" if name.endswith(".tmp") else "temp DB sidecar"
    if name.endswith(".json.tmp"):
        return "checkpoint .json.tmp"
    return "backup .tmp"


def run_cases(
    ws: Workspace, root: Path, cases: list[tuple[str, list[str]]], workers: int = 4
) -> Tally:
    tally = Tally()
    lock = threading.Lock()

    def one(i: int, label: str, kills: list[str]) -> None:
        r = run_case(ws, root / f"case{i:04d}", label, kills)
        with lock:
            tally.add(r)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(one, i, label, kills) for i, (label, kills) in enumerate(cases)]
        for f in futures:
            f.result()
    return tally


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.reliability.killharness")
    p.add_argument("--points", type=int, default=200, help="random cases to run (200)")
    p.add_argument("--seed", type=int, default=None, help="master seed (default: random, printed)")
    p.add_argument("--case-seed", type=int, action="append", help="replay one random case")
    p.add_argument("--kills", action="append", help="replay an explicit case, e.g. swap:1,any:40")
    p.add_argument("--named", action="store_true", help="also run every named point")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--scale", type=int, default=HarnessConfig.scale)
    p.add_argument("--concurrency", type=int, default=HarnessConfig.concurrency)
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    a = p.parse_args(argv)
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1_000_000)
    cfg = dataclasses.replace(HarnessConfig(), scale=a.scale, concurrency=a.concurrency)
    root = Path(tempfile.mkdtemp(prefix="killharness-"))
    sandbox = SandboxConfig(seed=cfg.seed, scale=cfg.scale, forms=cfg.forms, rate_limit=0)
    try:
        with SandboxServer(sandbox) as server:
            ws = build_workspace(root, server, cfg)
            print(
                f"seed {seed}; scale {cfg.scale}, concurrency {cfg.concurrency}; an uninterrupted "
                f"run passes {len(ws.trace)} crash points ({len(set(ws.trace))} names) "
                f"in {ws.clean_s:.2f} s; with --swap in-place {len(ws.trace_in_place)} points",
                flush=True,
            )
            cases: list[tuple[str, list[str]]] = []
            if a.named:
                cases += [(f"named {k[0]}", k) for k in named_cases(ws)]
            for spec in a.kills or []:
                cases.append((f"--kills {spec}", spec.split(",")))
            if a.case_seed:
                case_seeds = list(a.case_seed)
            elif a.kills:
                case_seeds = []
            else:
                master = random.Random(seed)
                case_seeds = [master.randrange(1 << 31) for _ in range(a.points)]
            cases += [(f"--case-seed {cs}", random_case(ws, cs)) for cs in case_seeds]
            t0 = time.monotonic()
            tally = run_cases(ws, root / "cases", cases, a.workers)
            print(tally.report())
            print(f"{time.monotonic() - t0:.1f} s; points tried: {dict(tally.points)}")
            return 1 if tally.failed else 0
    finally:
        if a.keep:
            print(f"work directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
