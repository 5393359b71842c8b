"""The sandbox's deterministic data generator.

Every record is a pure function of (seed, endpoint, index, day): nothing is stored per record,
so a dataset of a million records per endpoint costs no memory. Ids are UUID-shaped; the last
12 hex digits are the record's index, so a cursor finds its position in O(1).

Order is API order: index 0 is the oldest record. Day N keeps every record of day N-1 (same
ids, appended at the end), modifies about 5% of them (new `수정 날짜`, one changed field) and
adds `max(1, scale // 20)` records per list endpoint and some web-form submissions per form.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "ENDPOINTS",
    "END_FORMS",
    "MISSING",
    "PAGINATED",
    "Dataset",
    "EndpointSpec",
    "InvalidCursor",
    "UnknownForm",
]

_M64: Final = (1 << 64) - 1
_GOLDEN: Final = 0x9E3779B97F4A7C15


def _mix(x: int) -> int:
    """splitmix64 finalizer: a cheap, well-spread 64-bit hash of one integer."""
    x = (x + _GOLDEN) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def tag(text: str) -> int:
    """A stable integer for a string (Python's hash() is salted per process)."""
    return zlib.crc32(text.encode()) + 1


def h(*parts: int) -> int:
    """Hash a tuple of integers to 64 bits."""
    x = 0
    for p in parts:
        x = _mix(x ^ (p & _M64))
    return x


def unit(*parts: int) -> float:
    """Hash to a float in [0, 1)."""
    return (h(*parts) >> 11) / float(1 << 53)


class _Rng:
    """A tiny counter-based PRNG seeded from a hash; one per record."""

    __slots__ = ("_s",)

    def __init__(self, state: int) -> None:
        self._s = state

    def next(self) -> int:
        self._s = (self._s + _GOLDEN) & _M64
        return _mix(self._s)

    def below(self, n: int) -> int:
        return self.next() % n if n > 0 else 0

    def chance(self, p: float) -> bool:
        return (self.next() >> 11) / float(1 << 53) < p

    def pick(self, seq: tuple[Any, ...] | list[Any]) -> Any:
        return seq[self.next() % len(seq)]


@dataclass(frozen=True)
class EndpointSpec:
    """One API list endpoint: its name, path under /v2, list key and page size."""

    name: str
    path: str
    list_key: str
    page_size: int
    paginated: bool


ENDPOINTS: Final[dict[str, EndpointSpec]] = {
    spec.name: spec
    for spec in (
        EndpointSpec("organization", "/organization", "organizationList", 50, True),
        EndpointSpec("people", "/people", "peopleList", 50, True),
        EndpointSpec("deal", "/deal", "dealList", 50, True),
        EndpointSpec("lead", "/lead", "leadList", 10, True),
        EndpointSpec("memo", "/memo", "memoList", 50, True),
        EndpointSpec("user", "/user", "userList", 50, False),
        EndpointSpec("team", "/team", "teamList", 50, False),
        EndpointSpec("webForm", "/webForm", "webFormList", 50, False),
        EndpointSpec("webFormSubmit", "/webForm/{id}/submit", "webFormSubmitList", 50, True),
    )
}
PAGINATED: Final = ("organization", "people", "deal", "lead", "memo")
# How a list says it ended: `nextCursor: null`, the key missing, or one more page with `[]`.
END_FORMS: Final = ("null", "missing", "empty")
# Endpoints where a mid-list page is sometimes short although nextCursor is not null.
SHORT_PAGE_ENDPOINTS: Final = frozenset({"deal", "memo"})


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()  # "leave the nextCursor key out"


class InvalidCursor(ValueError):
    """A cursor that names no record of this list."""


class UnknownForm(LookupError):
    """A web-form id that does not exist (never did, or was deleted)."""


# --- vocabulary -----------------------------------------------------------------------------
_SURNAMES = tuple("김이박최정강조윤장임한오서신권황안송류홍")
_GIVEN = tuple("민서지현수영준호하은도윤예진우성연태경희주원석혜")
_ORG_HEAD = (
    "한빛",
    "누리",
    "세움",
    "다온",
    "미래",
    "하늘",
    "바른",
    "새봄",
    "푸른",
    "온누리",
    "가람",
)
_ORG_TAIL = ("테크", "솔루션", "소프트", "물산", "산업", "바이오", "커머스", "랩스", "네트웍스")
_INDUSTRY = ("IT", "제조", "유통", "금융", "교육", "의료", "물류", "컨설팅", None)
_CITY = (
    "서울특별시 강남구",
    "서울특별시 마포구",
    "경기도 성남시",
    "부산광역시 해운대구",
    "대전광역시 유성구",
)
_TITLE = ("대표", "이사", "팀장", "매니저", "선임", "주임", "사원", None)
_GROUP = ("VIP", "신규", "휴면", "파트너", "잠재 고객")
_PRODUCT = ("CRM 도입", "라이선스 확장", "유지보수 계약", "컨설팅", "교육 패키지", "API 연동")
_DEAL_STATUS = ("진행중", "성사", "실패")
_LEAD_STATUS = ("신규", "진행중", "전환", "제외")
_SOURCE = ("웹사이트", "광고", "추천", "전시회", "웹폼", None)
_MEMO_TEXT = (
    "첫 미팅 진행, 예산 확인 필요",
    "견적서 전달 완료. 다음 주 회신 예정",
    "담당자 변경됨 — 신규 담당자에게 재소개",
    "데모 일정 조율 중",
    "계약서 검토 요청 받음",
    "가격 협상: 10% 할인 요청",
)
# Text that looks like Rich/Textual markup; a UI must show it literally.
_MARKUP = ("[bold]중요[/bold] 고객", "[link=https://x]링크[/link] 참고", "[red]긴급[/] 확인 요망")
_MEMO_TYPES = (
    {"_id": "6500a1b2c3d4e5f60718293a", "value": "통화", "color": "#4C6EF5"},
    {"_id": "6500a1b2c3d4e5f60718293b", "value": "미팅", "color": "#12B886"},
    {"_id": "6500a1b2c3d4e5f60718293c", "value": "이메일", "color": "#FAB005"},
    {"_id": "6500a1b2c3d4e5f60718293d", "value": "기타", "color": "#868E96"},
)
_DEAL_PIPELINES = (
    ("신규 영업", ("리드 확인", "니즈 파악", "제안", "견적", "협상", "계약", "성사", "실패")),
    ("재계약", ("갱신 안내", "조건 협의", "계약서 발송", "갱신 완료", "이탈")),
    ("파트너", ("발굴", "검토", "미팅", "제휴 확정", "보류", "종료")),
)
_LEAD_PIPELINES = (
    ("인바운드", ("신규", "연락 시도", "연락 완료", "검증됨", "전환", "제외")),
    ("아웃바운드", ("타겟 선정", "첫 연락", "응답", "미팅 예약", "전환", "보류")),
)
_TEAM_NAMES = ("영업1팀", "영업2팀", "마케팅팀", "CS팀", "파트너십팀")
_FORM_NAMES = (
    "도입 문의",
    "데모 신청",
    "뉴스레터 구독",
    "세미나 신청",
    "견적 요청",
    "파트너 신청",
    "채용 문의",
    "고객 설문",
)
_DELETED_FORMS = 2  # form ids past `forms` that people still reference; the API answers 400

# Kinds with few ids, whose ids are cached (the rest are computed on every use).
_SMALL_KINDS: Final = frozenset({"user", "team", "pipeline", "stage", "form", "webForm"})

_T0: Final = 1704067200  # 2024-01-01T00:00:00Z: the oldest record
_SPAN: Final = 365 * 86400  # day 1 records are spread over one year
_T1: Final = _T0 + _SPAN  # day 1; day N is _T1 + (N - 1) days
_DAY: Final = 86400


def iso(ts: int) -> str:
    """ISO-8601 UTC with milliseconds and `Z`, as the API writes timestamps."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def _stage_key(stage: str, pipeline: str) -> str:
    return f"{stage}({pipeline})로 진입한 날짜"


class Dataset:
    """The deterministic workspace for one (seed, scale, day, forms)."""

    def __init__(
        self,
        seed: int = 1,
        scale: int = 200,
        day: int = 1,
        forms: int = 8,
        counts: dict[str, int] | None = None,
        submissions: int | None = None,
    ) -> None:
        if scale < 0 or day < 1 or forms < 0:
            raise ValueError("scale and forms must be >= 0 and day >= 1")
        counts = dict(counts or {})
        unknown = set(counts) - set(PAGINATED)
        if unknown or any(n < 0 for n in counts.values()):
            raise ValueError(f"counts are for {', '.join(PAGINATED)}, each >= 0 (got {counts})")
        if submissions is not None and submissions < 0:
            raise ValueError("submissions must be >= 0")
        self.seed = seed
        self.scale = scale
        self.day = day
        self.n_forms = forms
        # day-1 records of a list where it is not `scale` (shapes for benchmarks); references
        # and timestamps still follow `scale`
        self.counts = counts
        self.n_submissions = submissions
        self.growth = max(1, scale // 20)
        self._id_cache: dict[tuple[str, int], str] = {}
        self._tags = {name: tag(name) for name in (*ENDPOINTS, "pipeline", "stage", "form")}
        self._end_forms = self._choose_end_forms()
        self._makers: dict[str, Callable[[int], dict[str, Any]]] = {
            "organization": self._organization,
            "people": self._people,
            "deal": self._deal,
            "lead": self._lead,
            "memo": self._memo,
            "user": self._user,
            "team": self._team,
            "webForm": self._form,
        }
        self._pipeline_refs = {
            kind: [
                (
                    {"id": self.make_id("pipeline", p_i + off), "name": p_name},
                    [
                        {"id": self.make_id("stage", (p_i + off) * 100 + s_i), "name": s_name}
                        for s_i, s_name in enumerate(stages)
                    ],
                    [_stage_key(s, p_name) for s in stages],
                )
                for p_i, (p_name, stages) in enumerate(pipes)
            ]
            for kind, pipes, off in (("deal", _DEAL_PIPELINES, 0), ("lead", _LEAD_PIPELINES, 10))
        }

    # --- ids and cursors ------------------------------------------------------------------------
    def make_id(self, kind: str, index: int) -> str:
        """A UUID-v4-shaped id whose last 12 hex digits are `index`."""
        if kind in _SMALL_KINDS:
            key = (kind, index)
            cached = self._id_cache.get(key)
            if cached is None:
                cached = self._id_cache[key] = self._make_id(kind, index)
            return cached
        return self._make_id(kind, index)

    def _make_id(self, kind: str, index: int) -> str:
        t = self._tags.get(kind) or tag(kind)
        x = h(self.seed, t, index)
        a = f"{x:016x}{_mix(x) >> 48:04x}"
        return f"{a[:8]}-{a[8:12]}-4{a[13:16]}-{'89ab'[int(a[16], 16) & 3]}{a[17:20]}-{index:012x}"

    def index_of(self, kind: str, record_id: str) -> int | None:
        """The index encoded in `record_id`, or None if it is not one of this seed's ids."""
        if len(record_id) != 36:
            return None
        try:
            index = int(record_id[24:], 16)
        except ValueError:
            return None
        return index if self.make_id(kind, index) == record_id else None

    def record_id(self, endpoint: str, index: int) -> str:
        return self.make_id(endpoint, index)

    # --- counts ---------------------------------------------------------------------------------
    def count(self, endpoint: str) -> int:
        """How many records `endpoint` lists on this day."""
        if endpoint in PAGINATED:
            return self.counts.get(endpoint, self.scale) + (self.day - 1) * self.growth
        if endpoint == "user":
            return max(1, min(self.scale, 30))
        if endpoint == "team":
            return 5
        if endpoint == "webForm":
            return self.n_forms
        raise KeyError(endpoint)

    def _base(self, endpoint: str) -> int:
        """Records that exist on every day (targets of references)."""
        return max(1, self.scale) if endpoint in PAGINATED else self.count(endpoint)

    def page_size(self, endpoint: str) -> int:
        return ENDPOINTS[endpoint].page_size

    def end_form(self, endpoint: str) -> str:
        """How `endpoint`'s list ends for this seed: "null", "missing" or "empty"."""
        return self._end_forms[endpoint]

    def _choose_end_forms(self) -> dict[str, str]:
        # A seeded shuffle of the five paginated endpoints takes the three forms first, so every
        # seed shows a client each form at least once.
        order = list(PAGINATED)
        for i in range(len(order) - 1, 0, -1):
            j = h(self.seed, tag("end-order"), i) % (i + 1)
            order[i], order[j] = order[j], order[i]
        forms = [*END_FORMS]
        forms += [END_FORMS[h(self.seed, tag("end-extra"), i) % 3] for i in range(2)]
        chosen = dict(zip(order, forms, strict=True))
        chosen["webFormSubmit"] = END_FORMS[h(self.seed, tag("end-submit")) % 3]
        return chosen

    # --- records --------------------------------------------------------------------------------
    def record(self, endpoint: str, index: int) -> dict[str, Any]:
        """Record `index` of `endpoint` as the API serves it on this day."""
        if not 0 <= index < self.count(endpoint):
            raise IndexError(f"{endpoint}[{index}] out of range")
        return self._makers[endpoint](index)

    def iter_records(self, endpoint: str) -> Iterator[dict[str, Any]]:
        """Every record of `endpoint`, in API order."""
        make = self._makers[endpoint]
        for i in range(self.count(endpoint)):
            yield make(i)

    def page(self, endpoint: str, cursor: str | None) -> tuple[list[dict[str, Any]], object]:
        """One page after `cursor` (exclusive): (items, next cursor | None | MISSING)."""
        n = self.count(endpoint)
        spec = ENDPOINTS[endpoint]
        if not spec.paginated:
            return [self._makers[endpoint](i) for i in range(n)], MISSING
        start = 0
        if cursor is not None:
            index = self.index_of(endpoint, cursor)
            if index is None or index >= n:
                raise InvalidCursor(cursor)
            start = index + 1
        make = self._makers[endpoint]
        end = self._page_end(endpoint, start, n)
        items = [make(i) for i in range(start, end)]
        return items, self._next(endpoint, start, end, n, lambda i: self.make_id(endpoint, i))

    def _page_end(self, endpoint: str, start: int, n: int) -> int:
        size = ENDPOINTS[endpoint].page_size
        if (
            endpoint in SHORT_PAGE_ENDPOINTS
            and start + size < n
            and h(self.seed, tag("short"), self._tags[endpoint], start) % 8 == 0
        ):
            size = 1 + h(self.seed, tag("short-len"), start) % (size - 1)
        return min(n, start + size)

    def _next(
        self, endpoint: str, start: int, end: int, n: int, cursor_of: Callable[[int], str]
    ) -> object:
        if end < n:
            return cursor_of(end - 1)
        form = self._end_forms[endpoint]
        if form == "empty":
            return cursor_of(end - 1) if end > start else None
        return None if form == "null" else MISSING

    # --- shared pieces --------------------------------------------------------------------------
    def _rng(self, endpoint: str, index: int) -> _Rng:
        return _Rng(h(self.seed, self._tags[endpoint], index))

    def _created(self, endpoint: str, index: int) -> int:
        if index < self.scale:
            step = max(1, _SPAN // max(1, self.scale))
            return _T0 + index * step + h(self.seed, self._tags[endpoint], index, 7) % step
        added_day = 2 + (index - self.scale) // self.growth
        return _T1 + (added_day - 1) * _DAY + (index - self.scale) % self.growth * 60

    def _version(self, endpoint: str, index: int, created: int) -> tuple[int, int]:
        """(last day this record changed, its 수정 날짜) — 1 means never changed after creation."""
        t = self._tags[endpoint]
        first = 2 if index < self.scale else 3 + (index - self.scale) // self.growth
        for d in range(self.day, first - 1, -1):
            if h(self.seed, t, index, d, 5) % 20 == 0:
                return d, _T1 + (d - 1) * _DAY + 3600 + h(self.seed, t, index, d) % 36000
        if index >= self.scale:
            return 1, created
        return 1, created + h(self.seed, t, index, 9) % max(1, _T1 - created)

    def _owner(self, r: _Rng) -> dict[str, str] | None:
        if r.chance(0.08):
            return None
        i = r.below(self.count("user"))
        return {"id": self.make_id("user", i), "name": self._user_name(i)}

    def _teams(self, r: _Rng) -> list[dict[str, str]] | None:
        k = r.below(4)
        if k == 0:
            return None
        first = r.below(5)
        return [
            {"id": self.make_id("team", (first + j) % 5), "name": _TEAM_NAMES[(first + j) % 5]}
            for j in range(min(k, 2))
        ]

    def _person_name(self, index: int) -> str:
        x = h(self.seed, self._tags["people"], index, 1)
        return _SURNAMES[x % 20] + _GIVEN[(x >> 8) % 24] + _GIVEN[(x >> 16) % 24]

    def _org_name(self, index: int) -> str:
        x = h(self.seed, self._tags["organization"], index, 1)
        name = _ORG_HEAD[x % 11] + _ORG_TAIL[(x >> 8) % 9]
        return f"(주){name}" if (x >> 16) % 3 == 0 else name

    def _user_name(self, index: int) -> str:
        x = h(self.seed, self._tags["user"], index, 1)
        return _SURNAMES[x % 20] + _GIVEN[(x >> 8) % 24] + _GIVEN[(x >> 16) % 24]

    def _ref(self, endpoint: str, r: _Rng, null_p: float, limit: int | None = None) -> str | None:
        if r.chance(null_p):
            return None
        return self.make_id(endpoint, r.below(limit or self._base(endpoint)))

    def _late(self, index: int) -> bool:
        """Records in the last 30% carry a key that earlier pages never show."""
        return index * 10 > self.scale * 7

    def _form_ref(self, i: int) -> dict[str, str]:
        name = _FORM_NAMES[i] if i < len(_FORM_NAMES) else f"웹폼 {i + 1}"
        if i >= self.n_forms:
            name = f"삭제된 폼 {i - self.n_forms + 1}"
        return {"id": self.make_id("form", i), "name": name}

    def _stages(self, kind: str, r: _Rng, rec: dict[str, Any], created: int, version: int) -> None:
        pipes = self._pipeline_refs[kind]
        pipe, stages, keys = pipes[r.below(len(pipes))]
        reached = r.below(len(stages))
        if version > 1:  # a changed record moved on one stage
            reached = min(len(stages) - 1, reached + 1)
        rec["파이프라인"] = pipe
        rec["파이프라인 단계"] = stages[reached]
        t = created
        for k in range(reached + 1):
            rec[keys[k]] = iso(t)
            t += 3600 + r.below(20 * _DAY)

    # --- per endpoint ---------------------------------------------------------------------------
    def _organization(self, i: int) -> dict[str, Any]:
        r = self._rng("organization", i)
        rid = self.make_id("organization", i)
        created = self._created("organization", i)
        version, modified = self._version("organization", i, created)
        rec: dict[str, Any] = {
            "id": rid,
            "RecordId": rid,
            "이름": self._org_name(i),
            "업종": r.pick(_INDUSTRY),
            "직원 수": 5 + r.below(2000) + (version - 1) * 3,
            "매출(억)": None if r.chance(0.3) else round(r.below(50000) / 10, 1),
            "주소": None if r.chance(0.2) else f"{r.pick(_CITY)} {1 + r.below(300)}",
            "웹사이트": f"https://www.org{i}.example.kr",
            "전화": f"02-{1000 + r.below(9000)}-{1000 + r.below(9000)}",
            "담당자": self._owner(r),
            "팀": self._teams(r),
            "설명": r.pick(_MARKUP) if r.chance(0.05) else None,
            "생성 날짜": iso(created),
            "수정 날짜": iso(modified),
        }
        if self._late(i):
            rec["상장 여부"] = r.chance(0.2)
        return rec

    def _people(self, i: int) -> dict[str, Any]:
        r = self._rng("people", i)
        rid = self.make_id("people", i)
        created = self._created("people", i)
        version, modified = self._version("people", i, created)
        forms: list[dict[str, str]] | None = None
        if not r.chance(0.4):
            pool = self.n_forms + _DELETED_FORMS
            forms = [self._form_ref(r.below(pool)) for _ in range(1 + r.below(3))]
        rec: dict[str, Any] = {
            "id": rid,
            "RecordId": rid,
            "이름": self._person_name(i),
            "이메일": None if r.chance(0.1) else f"user{i}@example.kr",
            "전화": None if r.chance(0.2) else f"010-{1000 + r.below(9000)}-{1000 + r.below(9000)}",
            "직책": r.pick(_TITLE) if version == 1 else _TITLE[version % 7],
            "담당자": self._owner(r),
            "팀": self._teams(r),
            "organizationId": self._ref("organization", r, 0.2),
            "점수": r.below(101),
            "고객 그룹": None if r.chance(0.5) else [r.pick(_GROUP)],
            "제출된 웹폼 목록": forms,
            "최근 제출된 웹폼": forms[-1] if forms else None,
            "메모": r.pick(_MARKUP) if r.chance(0.05) else None,
            "생성 날짜": iso(created),
            "수정 날짜": iso(modified),
        }
        if self._late(i):
            rec["마케팅 수신 동의"] = r.chance(0.6)
        return rec

    def _deal(self, i: int) -> dict[str, Any]:
        r = self._rng("deal", i)
        rid = self.make_id("deal", i)
        created = self._created("deal", i)
        version, modified = self._version("deal", i, created)
        people_base = self._base("people")
        # Deals draw people from the first two thirds only: many deals share a person and the
        # rest of the people are linked to no deal at all.
        person = None if r.chance(0.1) else r.below(max(1, people_base * 2 // 3))
        amount = None if r.chance(0.15) else (1 + r.below(5000)) * 10000
        if amount is not None and version > 1:
            amount += version * 10000
        rec: dict[str, Any] = {
            "id": rid,
            "RecordId": rid,
            "이름": f"{self._org_name(r.below(self._base('organization')))} {r.pick(_PRODUCT)}",
            "금액": amount,
            "상태": r.pick(_DEAL_STATUS),
            "담당자": self._owner(r),
            "팀": self._teams(r),
            "peopleId": None if person is None else self.make_id("people", person),
            "organizationId": self._ref("organization", r, 0.1),
            "성사 확률(%)": r.below(11) * 10,
            "마감 예정일": None if r.chance(0.3) else iso(created + r.below(90) * _DAY)[:10],
            "생성 날짜": iso(created),
            "수정 날짜": iso(modified),
        }
        self._stages("deal", r, rec, created, version)
        if self._late(i):
            rec["계약 유형"] = r.pick(("신규", "갱신", "업셀"))
        return rec

    def _lead(self, i: int) -> dict[str, Any]:
        r = self._rng("lead", i)
        rid = self.make_id("lead", i)
        created = self._created("lead", i)
        version, modified = self._version("lead", i, created)
        rec: dict[str, Any] = {
            "id": rid,
            "RecordId": rid,
            "이름": f"{self._person_name(r.below(self._base('people')))} 리드",
            "상태": r.pick(_LEAD_STATUS) if version == 1 else _LEAD_STATUS[version % 4],
            "담당자": self._owner(r),
            "팀": self._teams(r),
            "peopleId": self._ref("people", r, 0.2),
            "organizationId": self._ref("organization", r, 0.4),
            "금액": None if r.chance(0.7) else (1 + r.below(1000)) * 10000,
            "유입 경로": r.pick(_SOURCE),
            "생성 날짜": iso(created),
            "수정 날짜": iso(modified),
        }
        self._stages("lead", r, rec, created, version)
        if self._late(i):
            rec["리드 등급"] = r.pick(("A", "B", "C"))
        return rec

    def _memo(self, i: int) -> dict[str, Any]:
        r = self._rng("memo", i)
        rid = self.make_id("memo", i)
        created = self._created("memo", i)
        version, modified = self._version("memo", i, created)
        text = r.pick(_MARKUP) if r.chance(0.05) else r.pick(_MEMO_TEXT)
        if version > 1:
            text += f" (수정 {version}일차)"
        links: dict[str, str | None] = {
            "dealId": None,
            "leadId": None,
            "peopleId": None,
            "organizationId": None,
        }
        target = ("deal", "lead", "people", "organization")[r.below(4)]
        links[f"{target}Id"] = self.make_id(target, r.below(self._base(target)))
        types = [] if r.chance(0.2) else [_MEMO_TYPES[r.below(4)]]
        return {
            "id": rid,
            "cursorId": rid,
            "text": text,
            "htmlBody": f"<p>{text}</p>",
            "typeList": [dict(t) for t in types],
            **links,
            "productId": None,
            "quoteId": None,
            "todoId": None,
            "parentId": self.make_id("memo", i - 1) if i > 0 and r.chance(0.1) else None,
            "ownerId": self.make_id("user", r.below(self.count("user"))),
            "createdAt": iso(created),
            "updatedAt": iso(modified),
        }

    def _user(self, i: int) -> dict[str, Any]:
        r = self._rng("user", i)
        created = _T0 - (30 - i) * _DAY
        return {
            "id": self.make_id("user", i),
            "name": self._user_name(i),
            "status": "deactivated" if r.chance(0.1) else "active",
            "email": f"member{i}@sandbox.example.kr",
            "role": "admin" if i == 0 else "member",
            "createdAt": iso(created),
            "updatedAt": iso(created + r.below(_SPAN)),
        }

    def _team(self, i: int) -> dict[str, Any]:
        users = self.count("user")
        return {
            "id": self.make_id("team", i),
            "name": _TEAM_NAMES[i],
            "description": None if i == 4 else f"{_TEAM_NAMES[i]} 구성원",
            "teammateList": [
                {"id": self.make_id("user", u), "name": self._user_name(u)}
                for u in range(i, users, 5)
            ],
        }

    def _form(self, i: int) -> dict[str, Any]:
        r = self._rng("webForm", i)
        ref = self._form_ref(i)
        created = _T0 + i * 7 * _DAY
        return {
            "id": ref["id"],
            "name": ref["name"],
            "description": None if r.chance(0.3) else f"{ref['name']} 양식",
            "status": "inactive" if i % 5 == 4 else "active",
            "folderName": r.pick(("마케팅", "영업", None)),
            "viewCount": 10 + r.below(10000),
            "submitCount": self.submission_count(ref["id"]),
            "createdAt": iso(created),
            "updatedAt": iso(created + r.below(_SPAN)),
        }

    # --- web forms ------------------------------------------------------------------------------
    def forms(self) -> list[dict[str, Any]]:
        """The `/webForm` items (existing forms only)."""
        return [self._form(i) for i in range(self.n_forms)]

    def deleted_form_ids(self) -> list[str]:
        """Ids that people still reference but the API no longer knows (400 on submit)."""
        return [self.make_id("form", self.n_forms + k) for k in range(_DELETED_FORMS)]

    def form_index(self, form_id: str) -> int:
        """The index of an existing form; raises UnknownForm otherwise."""
        i = self.index_of("form", form_id)
        if i is None or i >= self.n_forms:
            raise UnknownForm(form_id)
        return i

    def _sub_base(self, form: int) -> tuple[int, int]:
        """(day-1 submissions, submissions added per later day) of form `form`."""
        if self.n_submissions is not None:
            return self.n_submissions, max(1, self.n_submissions // 10)
        if form == self.n_forms - 1 and self.n_forms > 1:
            return 0, 0  # one form never gets any submission: it answers []
        x = h(self.seed, tag("sub-count"), form)
        base = max(1, self.scale * (1 + x % 4) // 8)
        return base, max(1, base // 10)

    def submission_count(self, form_id: str) -> int:
        base, grow = self._sub_base(self.form_index(form_id))
        return base + (self.day - 1) * grow

    def submission(self, form_id: str, k: int) -> dict[str, Any]:
        """Submission `k` (0 = oldest) of a form."""
        f = self.form_index(form_id)
        base, grow = self._sub_base(f)
        r = _Rng(h(self.seed, tag("submission"), f, k))
        if k < base:
            created = _T0 + k * max(1, _SPAN // base) + r.below(max(1, _SPAN // base))
        else:
            appear_day = 2 + (k - base) // grow
            created = _T1 + (appear_day - 1) * _DAY + r.below(_DAY)
        people_base = self._base("people")
        person = None if r.chance(0.1) else r.below(people_base)
        contents: list[dict[str, Any]] = [
            {"label": "이름", "value": self._person_name(person) if person is not None else "익명"},
            {"label": "이메일", "value": f"user{person}@example.kr" if person is not None else ""},
            {"label": "문의 내용", "value": r.pick(_MEMO_TEXT)},
        ]
        if r.chance(0.3):
            contents.append(
                {
                    "label": "관심 제품",
                    "value": r.pick(_PRODUCT),
                    "childFieldList": [{"label": "수량", "value": str(1 + r.below(20))}],
                }
            )
        if r.chance(0.1):
            contents.append({})
        return {
            "peopleId": None if person is None else self.make_id("people", person),
            "organizationId": self._ref("organization", r, 0.5),
            "dealId": self._ref("deal", r, 0.6),
            "leadId": self._ref("lead", r, 0.7),
            "contents": contents,
            "createdAt": iso(created),
        }

    def iter_submissions(self, form_id: str) -> Iterator[dict[str, Any]]:
        """Every submission of an existing form, oldest first."""
        for k in range(self.submission_count(form_id)):
            yield self.submission(form_id, k)

    def submission_cursor(self, form_id: str, k: int) -> str:
        """The opaque cursor naming submission `k` (submissions have no id)."""
        f = self.form_index(form_id)
        return f"s{k:x}-{h(self.seed, tag('sub-cursor'), f, k) >> 32:08x}"

    def submission_page(
        self, form_id: str, cursor: str | None
    ) -> tuple[list[dict[str, Any]], object]:
        """One page of submissions after `cursor`: (items, next cursor | None | MISSING)."""
        n = self.submission_count(form_id)
        start = 0
        if cursor is not None:
            k = self._parse_sub_cursor(cursor)
            if k is None or k >= n or self.submission_cursor(form_id, k) != cursor:
                raise InvalidCursor(cursor)
            start = k + 1
        end = min(n, start + ENDPOINTS["webFormSubmit"].page_size)
        items = [self.submission(form_id, k) for k in range(start, end)]
        nxt = self._next(
            "webFormSubmit", start, end, n, lambda k: self.submission_cursor(form_id, k)
        )
        return items, nxt

    @staticmethod
    def _parse_sub_cursor(cursor: str) -> int | None:
        if not cursor.startswith("s") or "-" not in cursor:
            return None
        try:
            return int(cursor[1:].split("-", 1)[0], 16)
        except ValueError:
            return None
