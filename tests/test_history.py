"""run_history.jsonl: append (healing torn lines), tolerant read, stale `running` closed."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from salesmap_tui.engine.history import (
    HistoryEntry,
    HistoryProblem,
    append_history,
    close_stale_running,
    last_records,
    make_record,
    read_history,
)

CONTRACT_FIELDS = {
    "run_tag", "kind", "status", "started_at", "finished_at", "duration_s", "db_path",
    "final_db_path", "temp_db_path", "backup_path", "log_path", "replaced", "fallback_path",
    "tables", "error_count", "errors", "webform", "exit_code", "reason",
}  # fmt: skip


def test_make_record_has_every_contract_field() -> None:
    rec = make_record(run_tag="T1", db_path=Path("live.db"), errors=["a", "b"])
    assert set(rec) == CONTRACT_FIELDS
    assert rec["error_count"] == 2 and rec["errors"] == ["a", "b"]
    assert rec["db_path"] == "live.db" and rec["final_db_path"] == "live.db"
    assert rec["replaced"] is False and rec["tables"] == {} and rec["status"] == "running"
    json.dumps(rec)  # JSON-ready


def test_append_and_read_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "run_history.jsonl"
    r1 = make_record(run_tag="T1", status="done", tables={"deal": {"rows": 3, "cols": 4}})
    r2 = make_record(run_tag="T2", errors=["한글 오류"])
    append_history(path, r1)
    append_history(path, r2)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "한글 오류" in path.read_text(encoding="utf-8")  # ensure_ascii=False
    assert read_history(path) == [HistoryEntry(1, r1), HistoryEntry(2, r2)]


def test_torn_last_line_is_healed_before_append(tmp_path: Path) -> None:
    path = tmp_path / "run_history.jsonl"
    append_history(path, make_record(run_tag="T1"))
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"run_tag": "T2", "sta')  # a process killed mid-write
    append_history(path, make_record(run_tag="T3"))
    items = read_history(path)
    assert [type(i) for i in items] == [HistoryEntry, HistoryProblem, HistoryEntry]
    assert isinstance(items[2], HistoryEntry) and items[2].record["run_tag"] == "T3"
    assert isinstance(items[1], HistoryProblem) and items[1].line_no == 2


def test_read_is_tolerant(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    assert read_history(path) == []
    path.write_bytes(
        b'[1, 2]\n\n"text"\n{"run_tag": "ok"}\nnot json at all' + b"x" * 300 + b"\n\xff\xfe\n"
    )
    items = read_history(path)
    problems = [i for i in items if isinstance(i, HistoryProblem)]
    entries = [i for i in items if isinstance(i, HistoryEntry)]
    assert [e.record for e in entries] == [{"run_tag": "ok"}]
    assert [p.line_no for p in problems] == [1, 3, 5, 6]
    assert "not a JSON object" in problems[0].error
    assert all(len(p.text) <= 200 for p in problems)


def test_last_records_and_close_stale_running(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    append_history(path, make_record(run_tag="A", db_path="live.db", status="running",
                                     started_at="2026-01-01T00:00:00.000Z"))  # fmt: skip
    append_history(path, make_record(run_tag="B", db_path="live.db", status="running"))
    append_history(path, make_record(run_tag="B", db_path="live.db", status="done"))
    append_history(path, make_record(run_tag="C", db_path="other.db", status="running"))
    append_history(path, make_record(run_tag="D", db_path="live.db", status="running",
                                     kind="webform"))  # fmt: skip
    assert last_records(path)["B"]["status"] == "done"
    closed = close_stale_running(path, "live.db")
    assert closed == ["A", "D"]
    last = last_records(path)
    assert last["A"]["status"] == "interrupted" and last["A"]["finished_at"]
    assert isinstance(last["A"]["duration_s"], float) and last["A"]["duration_s"] > 0
    assert last["D"]["kind"] == "webform" and last["D"]["status"] == "interrupted"
    assert last["B"]["status"] == "done"
    assert last["C"]["status"] == "running"  # another DB's run is not ours to close
    assert set(last["A"]) >= CONTRACT_FIELDS
    assert close_stale_running(path, "live.db") == []  # nothing left to close


def test_latest_per_tag_keeps_each_runs_last_line_and_every_other_line_in_file_order() -> None:
    from salesmap_tui.engine.history import HistoryEntry, HistoryProblem, latest_per_tag

    def entry(n: int, **record: object) -> HistoryEntry:
        return HistoryEntry(line_no=n, record=dict(record))

    items = [
        entry(1, run_tag="a", status="running"),
        entry(2, run_tag="b", status="running"),
        HistoryProblem(line_no=3, text="{oops", error="not JSON"),
        entry(4, run_tag="a", status="done"),
        entry(5, status="done"),  # no run tag: kept as it is
        entry(6, status="failed"),
        entry(7, run_tag="b", status="interrupted"),
    ]
    kept = latest_per_tag(items)
    assert [item.line_no for item in kept] == [3, 4, 5, 6, 7]
    assert latest_per_tag([]) == []
