"""The sandbox's data generator and fault-spec parser, without a server."""

from __future__ import annotations

import itertools

import pytest

from salesmap_tui.sandbox import ENDPOINTS, Dataset, FaultSpecError, parse_faults
from salesmap_tui.sandbox.data import END_FORMS, MISSING, PAGINATED, InvalidCursor, UnknownForm


def test_same_seed_same_records_other_seed_differs() -> None:
    a, b, c = Dataset(7, 60), Dataset(7, 60), Dataset(8, 60)
    for ep in (*PAGINATED, "user", "team", "webForm"):
        assert list(a.iter_records(ep)) == list(b.iter_records(ep))
        assert list(a.iter_records(ep)) != list(c.iter_records(ep))


def test_counts_on_day_one() -> None:
    d = Dataset(1, 200)
    for ep in PAGINATED:
        assert d.count(ep) == 200
        assert len(list(d.iter_records(ep))) == 200
    assert d.count("user") == 30
    assert Dataset(1, 4).count("user") == 4
    assert d.count("team") == 5
    assert len(d.forms()) == 8


def test_ids_encode_their_index_and_kind() -> None:
    d = Dataset(3, 100)
    for ep in PAGINATED:
        ids = [r["id"] for r in d.iter_records(ep)]
        assert len(set(ids)) == 100
        for i, rid in enumerate(ids):
            assert len(rid) == 36 and rid[14] == "4"
            assert d.index_of(ep, rid) == i
    other = d.record("people", 5)["id"]
    assert d.index_of("deal", other) is None
    tampered = ("0" if other[0] != "0" else "1") + other[1:]
    assert d.index_of("people", tampered) is None
    assert d.index_of("people", "not-a-uuid") is None


def test_every_seed_shows_every_end_form() -> None:
    for seed in range(1, 60):
        forms = {Dataset(seed, 10).end_form(ep) for ep in PAGINATED}
        assert forms == set(END_FORMS), seed


def test_page_walk_matches_iter_records_and_ends_as_declared() -> None:
    d = Dataset(1, 137)
    for ep in PAGINATED:
        seen, cursor, last_next = [], None, None
        while True:
            items, nxt = d.page(ep, cursor)
            seen += items
            last_next = nxt
            if not items or nxt is None or nxt is MISSING:
                break
            assert isinstance(nxt, str)
            cursor = nxt
        assert seen == list(d.iter_records(ep))
        form = d.end_form(ep)
        if form == "empty":
            assert items == [] and last_next is None
        else:
            assert items and last_next is (None if form == "null" else MISSING)


def test_lead_pages_hold_ten() -> None:
    d = Dataset(1, 35)
    items, nxt = d.page("lead", None)
    assert len(items) == 10 and nxt == items[-1]["id"]


def test_short_pages_keep_a_cursor() -> None:
    d = Dataset(1, 3000)
    shorts = 0
    for ep in ("deal", "memo"):
        cursor = None
        while True:
            items, nxt = d.page(ep, cursor)
            if not isinstance(nxt, str) or not items:
                break
            shorts += len(items) < 50
            cursor = nxt
    assert shorts > 0


def test_bad_cursors_raise() -> None:
    d = Dataset(1, 20)
    with pytest.raises(InvalidCursor):
        d.page("people", "zzz")
    with pytest.raises(InvalidCursor):
        d.page("people", d.record("deal", 3)["id"])
    with pytest.raises(InvalidCursor):  # an id from a later day
        d.page("people", Dataset(1, 20, day=3).record("people", 21)["id"])


def test_record_shapes() -> None:
    d = Dataset(1, 300)
    person = d.record("people", 0)
    for key in ("id", "RecordId", "이름", "담당자", "팀", "제출된 웹폼 목록", "최근 제출된 웹폼"):
        assert key in person
    assert person["RecordId"] == person["id"]
    assert person["생성 날짜"].endswith("Z") and person["수정 날짜"] >= person["생성 날짜"]
    deal = d.record("deal", 0)
    for key in ("금액", "상태", "파이프라인", "파이프라인 단계", "peopleId", "organizationId"):
        assert key in deal
    assert "매출(억)" in d.record("organization", 0)
    memo = d.record("memo", 4)
    assert set(memo) == {
        "id", "cursorId", "text", "htmlBody", "typeList", "dealId", "leadId", "peopleId",
        "organizationId", "productId", "quoteId", "todoId", "parentId", "ownerId",
        "createdAt", "updatedAt",
    }  # fmt: skip
    assert memo["cursorId"] == memo["id"]
    assert set(d.record("user", 0)) == {
        "id", "name", "status", "email", "role", "createdAt", "updatedAt"
    }  # fmt: skip
    team = d.record("team", 0)
    assert set(team) == {"id", "name", "description", "teammateList"}
    assert all(set(m) == {"id", "name"} for m in team["teammateList"])
    form = d.forms()[0]
    assert set(form) == {
        "id", "name", "description", "status", "folderName", "viewCount", "submitCount",
        "createdAt", "updatedAt",
    }  # fmt: skip


def test_relations_point_at_real_records() -> None:
    d = Dataset(2, 300)
    deals = list(d.iter_records("deal"))
    people_ids = {r["id"] for r in d.iter_records("people")}
    org_ids = {r["id"] for r in d.iter_records("organization")}
    linked = [r["peopleId"] for r in deals if r["peopleId"] is not None]
    assert any(r["peopleId"] is None for r in deals)
    assert set(linked) <= people_ids
    assert len(set(linked)) < len(linked)  # some deals share a person
    assert people_ids - set(linked)  # some people are in no deal
    assert {r["organizationId"] for r in deals} - {None} <= org_ids
    for r in deals:
        if r["담당자"] is not None:
            assert set(r["담당자"]) == {"id", "name"}


def test_dynamic_late_and_markup_keys() -> None:
    d = Dataset(1, 400)
    stage_keys: set[str] = set()
    for ep in ("deal", "lead"):
        for r in d.iter_records(ep):
            stage_keys |= {k for k in r if k.endswith("로 진입한 날짜")}
    assert len(stage_keys) >= 24
    people = list(d.iter_records("people"))
    late = [i for i, r in enumerate(people) if "마케팅 수신 동의" in r]
    assert late and min(late) > 0.7 * 400
    texts = [r["메모"] for r in people if r["메모"]]
    assert any("[bold]" in t or "[link=" in t for t in texts)
    assert any(r["금액"] is None for r in d.iter_records("deal"))


def test_people_reference_deleted_forms() -> None:
    d = Dataset(1, 200)
    existing = {f["id"] for f in d.forms()}
    deleted = set(d.deleted_form_ids())
    referenced = {f["id"] for r in d.iter_records("people") for f in (r["제출된 웹폼 목록"] or [])}
    assert referenced & deleted and referenced & existing
    assert any(r["제출된 웹폼 목록"] is None for r in d.iter_records("people"))
    for fid in deleted:
        with pytest.raises(UnknownForm):
            d.submission_count(fid)


def test_submissions_shape() -> None:
    d = Dataset(1, 200)
    subs = [s for f in d.forms() for s in d.iter_submissions(f["id"])]
    assert subs
    assert all(set(s) == {"peopleId", "organizationId", "dealId", "leadId", "contents",
                          "createdAt"} for s in subs)  # fmt: skip
    assert any(s["peopleId"] is None for s in subs)
    assert any({} in s["contents"] for s in subs)
    assert any("childFieldList" in c for s in subs for c in s["contents"])
    deal_people = {r["peopleId"] for r in d.iter_records("deal")}
    assert any(s["peopleId"] and s["peopleId"] not in deal_people for s in subs)
    counts = [d.submission_count(f["id"]) for f in d.forms()]
    assert 0 in counts and max(counts) > 50
    assert [f["submitCount"] for f in d.forms()] == counts


def test_day_two_keeps_changes_and_adds() -> None:
    d1, d2 = Dataset(1, 200, day=1), Dataset(1, 200, day=2)
    for ep in PAGINATED:
        r1, r2 = list(d1.iter_records(ep)), list(d2.iter_records(ep))
        assert len(r2) == 210
        assert [r["id"] for r in r2[:200]] == [r["id"] for r in r1]
        changed = [a for a, b in zip(r1, r2, strict=False) if a != b]
        assert 0 < len(changed) < 40
        stamp = "수정 날짜" if ep != "memo" else "updatedAt"
        for a, b in zip(r1, r2, strict=False):
            if a != b:
                assert b[stamp] > a[stamp]
    f = d1.forms()[0]["id"]
    s1, s2 = list(d1.iter_submissions(f)), list(d2.iter_submissions(f))
    assert len(s2) > len(s1) and s2[: len(s1)] == s1


def test_submission_cursors() -> None:
    d = Dataset(1, 400)
    fid = max(d.forms(), key=lambda f: f["submitCount"])["id"]
    seen, cursor = [], None
    while True:
        items, nxt = d.submission_page(fid, cursor)
        seen += items
        if not items or not isinstance(nxt, str):
            break
        cursor = nxt
    assert seen == list(d.iter_submissions(fid))
    with pytest.raises(InvalidCursor):
        d.submission_page(fid, "s1-00000000")


def test_million_scale_is_lazy() -> None:
    d = Dataset(1, 1_000_000)
    last = d.record("people", 999_999)
    assert d.index_of("people", last["id"]) == 999_999
    items, nxt = d.page("people", d.record("people", 999_949)["id"])
    assert len(items) == 50 and items[-1] == last
    form = d.end_form("people")
    assert nxt == {"null": None, "missing": MISSING, "empty": last["id"]}[form]
    assert list(itertools.islice(d.iter_records("people"), 2)) == [
        d.record("people", 0),
        d.record("people", 1),
    ]


def test_endpoint_catalogue() -> None:
    assert ENDPOINTS["lead"].page_size == 10
    assert ENDPOINTS["memo"].list_key == "memoList"
    assert ENDPOINTS["webFormSubmit"].list_key == "webFormSubmitList"


def test_fault_spec_parses() -> None:
    faults = parse_faults(
        "500:0.1,503:0.05:burst=2,429:0.05,hang:0.02,reset:0.02,truncate:0.02,html:0.02,"
        "schema:after=3,loop:1:path=deal,retry_after:1:value=2,retry_after:1:date=3,502"
    )
    assert [f.name for f in faults][:3] == ["500", "503", "429"]
    assert faults[1].burst == 2 and faults[1].rate == 0.05
    assert faults[7].after == 3 and faults[8].path == "deal"
    assert faults[9].value == "2" and faults[10].date == 3
    assert faults[11].rate == 1.0
    assert parse_faults("") == ()


@pytest.mark.parametrize(
    "spec", ["404", "500:2", "500:x", "500:path=nowhere", "500:foo=1", "500:burst=1:0.5"]
)
def test_bad_fault_specs(spec: str) -> None:
    with pytest.raises(FaultSpecError):
        parse_faults(spec)


def test_fault_bursts_and_rates() -> None:
    (burst,) = parse_faults("500:1:burst=2")
    assert [burst.fires(1, "/v2/people?", n) for n in range(4)] == [True, True, False, False]
    (always,) = parse_faults("500:1")
    assert all(always.fires(1, "k", n) for n in range(20))
    (some,) = parse_faults("500:0.3")
    hits = [some.fires(1, f"/v2/deal?{i}", 0) for i in range(1000)]
    assert 200 < sum(hits) < 400
    assert hits == [some.fires(1, f"/v2/deal?{i}", 0) for i in range(1000)]
    assert hits != [some.fires(2, f"/v2/deal?{i}", 0) for i in range(1000)]
