"""Deterministic TUI test inputs: a frozen clock, settings in a temp dir, recorded events."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from textual.widgets import Static

from salesmap_tui.config import Settings
from salesmap_tui.engine.events import (
    BackupMade,
    CheckpointSaved,
    EndpointProgress,
    EngineEvent,
    EngineWarning,
    PhaseChanged,
    RequestRetried,
    RequestStats,
    RunFinished,
    RunResult,
    RunStarted,
    WebformResult,
)
from salesmap_tui.tui.app import SalesmapApp

FIXED_NOW = datetime(2025, 3, 14, 9, 30, 0, tzinfo=UTC)
TAG = "20250314T092000Z-1a2b"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = FIXED_NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def tmp_settings(root: Path, **changes: object) -> Settings:
    settings = Settings(
        db_path=root / "salesmap_latest.db",
        log_dir=root / "logs",
        backup_dir=root / "backups",
        token="test-token-never-shown",
        base_url="http://127.0.0.1:9/v2",
        min_interval=0.0,
        max_wait=0.2,
        backoff_429=0.05,
        backoff_base=0.01,
    )
    return settings.replace(**changes)


def make_app(root: Path, clock: FakeClock | None = None, **changes: object) -> SalesmapApp:
    app = SalesmapApp(
        tmp_settings(root, **changes),
        clock=clock or FakeClock(),
        base_dir=root,
        state_path=root / "user-config" / "tui-state.json",  # never the real user's
    )
    app.animation_level = "none"
    # draw after every burst of events, not on a wall-clock interval: deterministic screens
    app.ui_refresh_s = 0.0
    return app


def recorded_run(root: Path) -> Iterator[tuple[float, EngineEvent]]:
    """A mid-run moment of a full snapshot: (seconds to advance the clock, event)."""
    db = root / "salesmap_latest.db"
    yield (
        0,
        RunStarted(
            run_tag=TAG,
            kind="snapshot",
            resumed=False,
            db_path=str(db),
            temp_db_path=str(root / f"salesmap_latest.db.{TAG}.tmp"),
            log_path=str(root / "logs" / f"snapshot_{TAG}.log"),
            base_url="http://127.0.0.1:8765/v2",
            endpoints=("organization", "people", "deal", "lead", "memo", "user", "team"),
            expected_rows={"organization": 600, "people": 1200, "deal": 900, "lead": 300},
            started_at="2025-03-14T09:20:00.000Z",
        ),
    )
    yield 0, PhaseChanged("backup", "gzip of the live DB")
    yield 1, BackupMade(str(root / "backups" / f"salesmap_latest_{TAG}.db.gz"), 1_234_567)
    yield 0, PhaseChanged("crawl")
    for endpoint in ("organization", "people", "deal", "lead", "memo"):
        yield 0, EndpointProgress(endpoint, "fetching", 0, 0)
    yield 0, EndpointProgress("user", "fetching", 0, 0)
    yield 0, EndpointProgress("team", "waiting", 0, 0)
    yield 4, EndpointProgress("user", "done", 1, 12)
    yield 0, EndpointProgress("team", "done", 1, 4)
    yield 0, RequestRetried("people", 1, 4, 429, "429 Too Many Requests", 8.3, "Retry-After header")
    yield 0, RequestRetried("memo", 2, 4, 503, "503 [bold]Service Unavailable[/]", 2.0, "backoff")
    yield 0, RequestRetried("deal", 1, 4, None, "timeout", 1.0, "backoff")
    yield 0, EngineWarning("people: 3 rows in checkpoint but 0 in table; continuing")
    yield 6, EndpointProgress("organization", "done", 12, 600, 600)
    yield 0, EndpointProgress("people", "backoff", 10, 500, 1200, "c-500", 8.3)
    yield 0, EndpointProgress("deal", "fetching", 8, 400, 900, "c-400")
    yield 0, EndpointProgress("lead", "fetching", 15, 150, 300, "c-150")
    yield 0, EndpointProgress("memo", "fetching", 20, 1000, None, "c-1000")
    yield 0, RequestStats(410, 81, 10.0, 100, 10.0)
    yield (
        0,
        CheckpointSaved(
            path=str(root / "logs" / "checkpoints" / f"checkpoint_{TAG}.json"),
            run_tag=TAG,
            saved_at="2025-03-14T09:20:09.000Z",
            phase="crawl",
            endpoints={
                "organization": {"pages": 12, "rows": 600, "cursor": None, "done": True},
                "people": {"pages": 10, "rows": 500, "cursor": "c-500", "done": False},
                "deal": {"pages": 8, "rows": 400, "cursor": "c-400", "done": False},
                "lead": {"pages": 15, "rows": 150, "cursor": "c-150", "done": False},
                "memo": {"pages": 20, "rows": 1000, "cursor": "c-1000", "done": False},
                "user": {"pages": 1, "rows": 12, "cursor": None, "done": True},
                "team": {"pages": 1, "rows": 4, "cursor": None, "done": True},
            },
        ),
    )


def finished_result(root: Path, status: str = "done") -> RunResult:
    return RunResult(
        run_tag=TAG,
        kind="snapshot",
        status=status,  # type: ignore[arg-type]
        exit_code={"done": 0, "interrupted": 130, "fallback": 3}.get(status, 1),
        started_at="2025-03-14T09:20:00.000Z",
        finished_at="2025-03-14T09:22:05.000Z",
        duration_s=125.0,
        db_path=str(root / "salesmap_latest.db"),
        final_db_path=str(root / "salesmap_latest.db"),
        temp_db_path=None,
        backup_path=str(root / "backups" / f"salesmap_latest_{TAG}.db.gz"),
        log_path=str(root / "logs" / f"snapshot_{TAG}.log"),
        replaced=status == "done",
        fallback_path=str(root / f"salesmap_latest_{TAG}.db") if status == "fallback" else None,
        tables={
            "organization": {"rows": 600, "cols": 31},
            "people": {"rows": 1200, "cols": 44},
            "deal": {"rows": 900, "cols": 120},
            "lead": {"rows": 300, "cols": 52},
            "memo": {"rows": 2400, "cols": 18},
            "user": {"rows": 12, "cols": 7},
            "team": {"rows": 4, "cols": 4},
        },
        errors=(),
        webform=WebformResult("done", forms=6, new_rows=42, dropped=1, skipped_forms=1),
        message="Snapshot done: salesmap_latest.db replaced; the previous one is in backups/.",
    )


def finished(root: Path, status: str = "done") -> RunFinished:
    return RunFinished(finished_result(root, status))


def rendered(widget: Static, width: int = 120) -> str:
    """The plain text a Static shows (its Text or Table rendered without styles)."""
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


# --- a fixed workspace on disk, for the list screens' snapshots ---------------------------------
FIXED_EPOCH = FIXED_NOW.timestamp()
TAGS = (
    "20250310T020000Z-aa01",
    "20250311T020000Z-bb02",
    "20250312T020000Z-cc03",
    "20250313T020000Z-dd04",
)
FORM_NAMES = ("상담 신청", "데모 요청", "뉴스레터")
MARKUP_ERROR = "memo: 400 [bold]잘못된 요청[/bold] [link=https://evil.example]click[/link]"


def _record(root: Path, tag: str, status: str, scale: int, **extra: object) -> dict[str, object]:
    day = tag[6:8]
    rec: dict[str, object] = {
        "run_tag": tag,
        "kind": "snapshot",
        "status": status,
        "started_at": f"2025-03-{day}T02:00:00.000Z",
        "finished_at": f"2025-03-{day}T02:{scale // 100:02d}:30.000Z",
        "duration_s": 60.0 * (scale // 100) + 30,
        "db_path": str(root / "salesmap_latest.db"),
        "final_db_path": str(root / "salesmap_latest.db"),
        "temp_db_path": None,
        "backup_path": str(root / "backups" / f"salesmap_latest_{tag}.db.gz"),
        "log_path": str(root / "logs" / f"snapshot_{tag}.log"),
        "replaced": status == "done",
        "fallback_path": None,
        "tables": {
            "organization": {"rows": scale, "cols": 30},
            "people": {"rows": scale * 2, "cols": 41},
            "deal": {"rows": scale + scale // 2, "cols": 118},
            "lead": {"rows": scale // 2, "cols": 50},
            "memo": {"rows": scale * 3, "cols": 18},
            "user": {"rows": 12, "cols": 7},
            "team": {"rows": 4, "cols": 4},
        },
        "error_count": 0,
        "errors": [],
        "webform": {
            "status": "done",
            "forms": 6,
            "new_rows": scale // 10,
            "dropped": 0,
            "skipped_forms": 1,
            "error": None,
        },
    }
    rec.update(extra)
    return rec


def write_history(root: Path) -> Path:
    """Runs over four days: an interrupted-then-done tag, a fallback, a failure with markup in
    its error, a web-form pass, and one line of garbage."""
    import json

    lines = [
        _record(root, TAGS[0], "done", 500),
        _record(root, TAGS[1], "interrupted", 200, replaced=False, tables={}),
        _record(root, TAGS[1], "done", 520),
        "{this line is not json",
        _record(
            root,
            TAGS[2],
            "fallback",
            540,
            replaced=False,
            fallback_path=str(root / f"salesmap_latest_{TAGS[2]}.db"),
        ),
        {
            "run_tag": "20250313T010000Z-wf01",
            "kind": "webform",
            "status": "done",
            "started_at": "2025-03-13T01:00:00.000Z",
            "finished_at": "2025-03-13T01:00:12.000Z",
            "duration_s": 12.0,
            "db_path": str(root / "salesmap_latest.db"),
            "final_db_path": str(root / "salesmap_latest.db"),
            "errors": [],
            "error_count": 0,
            "webform": {
                "status": "done",
                "forms": 6,
                "new_rows": 17,
                "dropped": 2,
                "skipped_forms": 1,
                "error": None,
            },
        },
        _record(
            root,
            TAGS[3],
            "failed",
            100,
            replaced=False,
            error_count=1,
            errors=[MARKUP_ERROR],
            backup_path=None,
            webform=None,
        ),
    ]
    path = root / "logs" / "run_history.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(
        line if isinstance(line, str) else json.dumps(line, ensure_ascii=False) for line in lines
    )
    path.write_text(text + "\n", encoding="utf-8")
    return path


def write_checkpoints(root: Path, db_name: str = "salesmap_latest.db") -> None:
    """One resumable checkpoint (with its temp DB) and one unreadable file."""
    import json
    import os

    from salesmap_tui.engine.checkpoint import (
        Checkpoint,
        EndpointCheckpoint,
        checkpoint_to_dict,
        workspace_of,
    )

    settings = tmp_settings(root, db_path=root / db_name)
    tag = TAGS[3]
    temp = settings.temp_db_path(tag)
    temp.write_bytes(b"\0" * 3 * 1024 * 1024)  # only its size is shown
    cp = Checkpoint(
        run_tag=tag,
        temp_db_path=str(temp),
        db_path=str(settings.db_path),
        settings=settings.public_dict(),
        backup_path=str(settings.backup_path(tag)),
        workspace=workspace_of(settings.base_url, settings.token or ""),  # this app's
        phase="crawl",
        started_at="2025-03-14T09:00:00.000Z",
        saved_at="2025-03-14T09:12:00.000Z",
        endpoints={
            "organization": EndpointCheckpoint(None, 12, 600, True),
            "people": EndpointCheckpoint("3f2a9c1e-people-cursor", 10, 500, False),
            "deal": EndpointCheckpoint("9b1d-deal", 4, 200, False),
            "lead": EndpointCheckpoint(None, 0, 0, False),
            "memo": EndpointCheckpoint("c-1000", 20, 1000, False),
            "user": EndpointCheckpoint(None, 1, 12, True),
            "team": EndpointCheckpoint(None, 1, 4, True),
        },
    )
    directory = settings.checkpoint_dir
    directory.mkdir(parents=True, exist_ok=True)
    good = directory / f"checkpoint_{tag}.json"
    good.write_text(json.dumps(checkpoint_to_dict(cp), ensure_ascii=False), encoding="utf-8")
    bad = directory / "checkpoint_20250312T020000Z-cc03.json"
    bad.write_text("{truncated", encoding="utf-8")
    os.utime(good, (FIXED_EPOCH - 18 * 60, FIXED_EPOCH - 18 * 60))
    os.utime(bad, (FIXED_EPOCH - 86400, FIXED_EPOCH - 86400))


def write_backups(root: Path, db_name: str = "salesmap_latest.db") -> None:
    """Three gzip backups with fixed bytes and times (gzip's own header time pinned too).

    The two older ones are real snapshots (run_info + manifest) of the run before the one that
    made the backup; the newest is gzip but not SQLite (a damaged backup: refused, unreadable).
    """
    import gzip
    import os
    import sqlite3
    import tempfile

    directory = root / "backups"
    directory.mkdir(parents=True, exist_ok=True)
    stem = Path(db_name).stem
    held = ("20250309T020000Z-zz00", *TAGS)
    for index, tag in enumerate(TAGS[:3]):
        path = directory / f"{stem}_{tag}.db.gz"
        if index == 2:
            data = b"SQLite format 3\0" + bytes(4096 * (index + 1))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                db = Path(tmp) / "backup.db"
                conn = sqlite3.connect(db)
                conn.execute(
                    "CREATE TABLE run_info (run_tag TEXT PRIMARY KEY, started_at TEXT, "
                    "finished_at TEXT, status TEXT, base_url TEXT, tool_version TEXT)"
                )
                day = 9 + index
                conn.execute(
                    "INSERT INTO run_info VALUES (?, ?, ?, 'done', NULL, NULL)",
                    (held[index], f"2025-03-{day:02d}T02:00:00Z", f"2025-03-{day:02d}T02:05:30Z"),
                )
                conn.execute("CREATE TABLE manifest (table_name TEXT PRIMARY KEY, rows INTEGER)")
                conn.executemany(
                    "INSERT INTO manifest VALUES (?, ?)",
                    [
                        ("organization", 480 + 20 * index),
                        ("people", 960 + 40 * index),
                        ("deal", 720 + 30 * index),
                        ("lead", 240 + 10 * index),
                    ],
                )
                conn.commit()
                conn.close()
                data = db.read_bytes()
        path.write_bytes(gzip.compress(data, mtime=0))
        when = FIXED_EPOCH - (3 - index) * 86400
        os.utime(path, (when, when))


def write_live_db(root: Path, db_name: str = "salesmap_latest.db") -> None:
    """A small live DB with deals and webform_history (Korean form names, as in real data)."""
    import sqlite3

    conn = sqlite3.connect(root / db_name)
    conn.execute('CREATE TABLE deal (id TEXT PRIMARY KEY, "peopleId" TEXT)')
    conn.executemany("INSERT INTO deal VALUES (?, ?)", [(f"d{i}", f"p{i % 7}") for i in range(20)])
    conn.execute(
        "CREATE TABLE webform_history (webFormId TEXT, webFormName TEXT, peopleId TEXT, "
        "organizationId TEXT, dealId TEXT, leadId TEXT, createdAt TEXT, contents TEXT, "
        "payload TEXT, payload_hash TEXT, run_tag TEXT, fetched_at TEXT)"
    )
    conn.executemany(
        "INSERT INTO webform_history (webFormId, webFormName, peopleId, createdAt, payload_hash)"
        " VALUES (?, ?, ?, ?, ?)",
        [
            (
                f"f{i % 3}",
                FORM_NAMES[i % 3],
                f"p{i}",
                f"2025-03-{10 + i % 4:02d}T08:00:00.000Z",
                f"h{i}",
            )
            for i in range(9)
        ],
    )
    conn.commit()
    conn.close()


def write_workspace(root: Path) -> None:
    write_history(root)
    write_checkpoints(root)
    write_backups(root)
    write_live_db(root)
    _age_live_db(root / "salesmap_latest.db")


def _age_live_db(path: Path) -> None:
    """The live DB was written by the newest run (an hour before the frozen clock)."""
    os.utime(path, (FIXED_EPOCH - 3600, FIXED_EPOCH - 3600))


def write_run_log(root: Path, tag: str = TAGS[3]) -> Path:
    """The failed run's log as the engine writes it (fixed paths and times, Korean columns and
    a Korean 429 cause), and its events file: what the log viewer shows."""
    cp = f"/srv/crm/logs/checkpoints/checkpoint_{tag}.json"
    lines = [
        f"2025-03-13T02:00:00.012Z starting snapshot run {tag}: db /srv/crm/salesmap_latest.db, "
        f"temp /srv/crm/salesmap_latest.db.{tag}.tmp, base URL https://salesmap.kr/api/v2",
        "2025-03-13T02:00:00.040Z phase: backup",
        f"2025-03-13T02:00:01.310Z backup made: /srv/crm/backups/salesmap_latest_{tag}.db.gz "
        "(1.2 MiB)",
        "2025-03-13T02:00:01.322Z webform_history: 96 rows carried over from the live DB",
        "2025-03-13T02:00:01.330Z phase: crawl",
        f"2025-03-13T02:00:03.118Z checkpoint saved: {cp} (phase crawl)",
        "2025-03-13T02:00:04.501Z lead: new columns 보류(아웃바운드)로 진입한 날짜",
        "2025-03-13T02:00:05.902Z people: 429 요청이 너무 많습니다. 잠시 후 다시 시도해 주세요.; "
        "wait 8.30 s (Retry-After header)",
        f"2025-03-13T02:00:14.233Z checkpoint saved: {cp} (phase crawl)",
        "2025-03-13T02:00:20.870Z deal: 503 Service Unavailable; wait 2.00 s (backoff)",
        "2025-03-13T02:00:31.004Z memo: 400 [bold]잘못된 요청[/bold] "
        "[link=https://evil.example]click[/link]",
        f"2025-03-13T02:00:31.010Z checkpoint saved: {cp} (phase crawl)",
        "2025-03-13T02:01:12.448Z phase: webform",
        "2025-03-13T02:01:29.966Z web forms: done · 6 forms · 0 new · 0 dropped · 1 skipped",
        "2025-03-13T02:01:30.001Z finished: failed (exit 1): memo failed; the live DB is "
        "untouched, the checkpoint is kept (--resume continues it)",
    ]
    log = root / "logs" / f"snapshot_{tag}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return log


HELD_TAG = "20250314T020000Z-ee05"


def write_held_back_workspace(root: Path) -> Path:
    """The workspace, and a snapshot the shrink guard held back this night (exit 5): the server
    answered 20 organizations where the live DB has 60, and 4 deals where it has 20."""
    import json
    import sqlite3

    write_workspace(root)
    live = root / "salesmap_latest.db"
    conn = sqlite3.connect(live)
    for table, n in (("organization", 60), ("people", 100)):
        conn.execute(f"CREATE TABLE {table} (id TEXT PRIMARY KEY)")
        conn.executemany(f"INSERT INTO {table} VALUES (?)", [(f"{table}{i}",) for i in range(n)])
    conn.commit()
    conn.close()
    _age_live_db(live)
    held = root / f"salesmap_latest_{HELD_TAG}.db"
    conn = sqlite3.connect(held)
    conn.execute(
        "CREATE TABLE run_info (run_tag TEXT PRIMARY KEY, started_at TEXT, finished_at TEXT, "
        "status TEXT, base_url TEXT, tool_version TEXT)"
    )
    conn.execute(
        "INSERT INTO run_info VALUES (?, '2025-03-14T02:00:00Z', '2025-03-14T02:04:10Z', "
        "'done', NULL, NULL)",
        (HELD_TAG,),
    )
    for table, n in (("organization", 20), ("people", 100), ("deal", 4)):
        conn.execute(f"CREATE TABLE {table} (id TEXT PRIMARY KEY)")
        conn.executemany(f"INSERT INTO {table} VALUES (?)", [(f"{table}{i}",) for i in range(n)])
    conn.commit()
    conn.close()
    record = _record(
        root,
        HELD_TAG,
        "fallback",
        400,
        replaced=False,
        exit_code=5,
        backup_path=None,
        fallback_path=str(held),
        reason="held back by the shrink guard (--max-shrink 0.5): organization 60 → 20 rows "
        "(-67%), deal 20 → 4 rows (-80%)",
    )
    record["finished_at"] = "2025-03-14T02:04:10.000Z"
    with (root / "logs" / "run_history.jsonl").open("a", encoding="utf-8") as out:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return held


# --- the same workspace as a Korean user has it --------------------------------------------------
KOREAN_DB = "세일즈맵.db"
KOREAN_FORM_ERROR = "웹 폼을 찾을 수 없습니다."
KOREAN_FORMS = ("2025 상반기 제품 설명회 참가 신청서", "도입 문의", "뉴스레터 구독", "데모 요청")


def write_korean_history(root: Path) -> Path:
    """Runs on a DB named 세일즈맵.db: Korean table names, a Korean error reason, a failed form."""
    import json

    db = root / KOREAN_DB
    tables = {
        "organization": {"rows": 512, "cols": 30},
        "people": {"rows": 1024, "cols": 41},
        "고객사_메모": {"rows": 2048, "cols": 12},
        "deal": {"rows": 768, "cols": 118},
        "웹폼_제출내역": {"rows": 96, "cols": 12},
    }
    common = {
        "db_path": str(db),
        "final_db_path": str(db),
        "temp_db_path": None,
        "fallback_path": None,
    }
    lines: list[dict[str, object]] = [
        {
            **common,
            "run_tag": TAGS[0],
            "kind": "snapshot",
            "status": "done",
            "started_at": "2025-03-10T02:00:00.000Z",
            "finished_at": "2025-03-10T02:04:10.000Z",
            "duration_s": 250.0,
            "backup_path": str(root / "backups" / f"세일즈맵_{TAGS[0]}.db.gz"),
            "log_path": str(root / "logs" / f"snapshot_{TAGS[0]}.log"),
            "replaced": True,
            "tables": tables,
            "error_count": 0,
            "errors": [],
            "webform": {
                "status": "done",
                "forms": 4,
                "new_rows": 96,
                "dropped": 0,
                "skipped_forms": 0,
                "error": None,
            },
        },
        {
            **common,
            "run_tag": TAGS[3],
            "kind": "snapshot",
            "status": "failed",
            "started_at": "2025-03-13T02:00:00.000Z",
            "finished_at": "2025-03-13T02:01:40.000Z",
            "duration_s": 100.0,
            "backup_path": str(root / "backups" / f"세일즈맵_{TAGS[3]}.db.gz"),
            "log_path": str(root / "logs" / f"snapshot_{TAGS[3]}.log"),
            "replaced": False,
            "tables": tables,
            "error_count": 2,
            "errors": [
                f"webForm {KOREAN_FORMS[0]}: 404 {KOREAN_FORM_ERROR}",
                "deal: 400 잘못된 요청입니다. 필드 '예상 매출'의 값이 올바르지 않습니다.",
            ],
            "webform": {
                "status": "failed",
                "forms": 4,
                "new_rows": 0,
                "dropped": 0,
                "skipped_forms": 1,
                "error": f"{KOREAN_FORMS[0]}: {KOREAN_FORM_ERROR}",
            },
        },
    ]
    path = root / "logs" / "run_history.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def write_korean_live_db(root: Path) -> None:
    """세일즈맵.db with deals and webform_history rows under Korean form names."""
    import sqlite3

    conn = sqlite3.connect(root / KOREAN_DB)
    conn.execute('CREATE TABLE deal (id TEXT PRIMARY KEY, "peopleId" TEXT)')
    conn.executemany("INSERT INTO deal VALUES (?, ?)", [(f"d{i}", f"p{i % 7}") for i in range(20)])
    conn.execute(
        "CREATE TABLE webform_history (webFormId TEXT, webFormName TEXT, peopleId TEXT, "
        "organizationId TEXT, dealId TEXT, leadId TEXT, createdAt TEXT, contents TEXT, "
        "payload TEXT, payload_hash TEXT, run_tag TEXT, fetched_at TEXT)"
    )
    conn.executemany(
        "INSERT INTO webform_history (webFormId, webFormName, peopleId, createdAt, payload_hash)"
        " VALUES (?, ?, ?, ?, ?)",
        [
            (
                f"f{form}",
                KOREAN_FORMS[form],
                f"p{form}-{n}",
                f"2025-03-{10 + n:02d}T08:00:00.000Z",
                f"h{form}-{n}",
            )
            for form, rows in enumerate((4, 3, 2, 1))  # distinct counts: a stable order
            for n in range(rows)
        ],
    )
    conn.commit()
    conn.close()


def write_korean_workspace(root: Path) -> None:
    write_korean_history(root)
    write_checkpoints(root, KOREAN_DB)
    write_backups(root, KOREAN_DB)
    write_korean_live_db(root)
    _age_live_db(root / KOREAN_DB)


def korean_run(root: Path) -> Iterator[tuple[float, EngineEvent]]:
    """A mid-run moment on 세일즈맵.db with Korean causes and warnings in the retry log."""
    db = root / KOREAN_DB
    yield (
        0,
        RunStarted(
            run_tag=TAG,
            kind="snapshot",
            resumed=False,
            db_path=str(db),
            temp_db_path=str(root / f"{KOREAN_DB}.{TAG}.tmp"),
            log_path=str(root / "logs" / f"snapshot_{TAG}.log"),
            base_url="http://127.0.0.1:8765/v2",
            endpoints=("organization", "people", "deal", "lead", "memo", "user", "team"),
            expected_rows={"organization": 600, "people": 1200},
            started_at="2025-03-14T09:20:00.000Z",
        ),
    )
    yield 0, PhaseChanged("backup", "세일즈맵.db 백업 중")
    yield 1, BackupMade(str(root / "backups" / f"세일즈맵_{TAG}.db.gz"), 2_345_678)
    yield 0, PhaseChanged("crawl")
    for endpoint in ("organization", "people", "deal", "lead", "memo", "user", "team"):
        yield 0, EndpointProgress(endpoint, "fetching", 0, 0)
    yield (
        0,
        RequestRetried(
            "people",
            1,
            4,
            429,
            "429 요청이 너무 많습니다 (0.400초 후 재시도해주세요.)",
            0.4,
            "body hint",
        ),
    )
    yield 0, RequestRetried("memo", 1, 4, 503, "503 일시적인 오류가 발생했습니다.", 2.0, "backoff")
    yield 0, RequestRetried("deal", 2, 4, 429, "429 Too Many Requests", 0.007, "body hint")
    yield 0, EngineWarning(f"webForm {KOREAN_FORMS[0]}: 404 {KOREAN_FORM_ERROR} 건너뜁니다.")
    yield 3, EndpointProgress("organization", "done", 12, 600, 600)
    yield 0, EndpointProgress("people", "backoff", 10, 500, 1200, "c-500", 0.4)
    yield 0, EndpointProgress("memo", "backoff", 20, 1000, None, "c-1000", 2.0)


async def workers_done(app: SalesmapApp) -> None:
    """Wait until no worker of the app runs, whatever each one ended in (a failed worker is the
    app's to report, in its error modal; `wait_for_complete` would raise it here instead)."""
    import asyncio

    while running := [w for w in app.workers if not w.is_finished]:
        await asyncio.gather(*(w.wait() for w in running), return_exceptions=True)
