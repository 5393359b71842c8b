"""The endpoint catalogue, envelope parsing and page extraction (pure functions)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from salesmap_tui.engine.endpoints import (
    DEAL,
    LEAD,
    SNAPSHOT_ENDPOINTS,
    TEAM,
    USER,
    WEBFORM_LIST,
    BadAnswer,
    MalformedEnvelope,
    Page,
    error_reason,
    extract_page,
    parse_envelope,
    webform_submit_spec,
)
from salesmap_tui.engine.errors import ApiError


def test_catalogue() -> None:
    assert [s.name for s in SNAPSHOT_ENDPOINTS] == [
        "organization",
        "people",
        "deal",
        "lead",
        "memo",
        "user",
        "team",
    ]
    assert [s.list_key for s in SNAPSHOT_ENDPOINTS] == [
        "organizationList",
        "peopleList",
        "dealList",
        "leadList",
        "memoList",
        "userList",
        "teamList",
    ]
    assert all(s.path == "/" + s.name for s in SNAPSHOT_ENDPOINTS)
    assert [s.name for s in SNAPSHOT_ENDPOINTS if not s.paginated] == ["user", "team"]
    assert (WEBFORM_LIST.path, WEBFORM_LIST.list_key, WEBFORM_LIST.paginated) == (
        "/webForm",
        "webFormList",
        True,
    )


@pytest.mark.parametrize(
    ("form_id", "path"),
    [
        (
            "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "/webForm/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/submit",
        ),
        ("../deal?x=1", "/webForm/..%2Fdeal%3Fx%3D1/submit"),
        ("웹폼 1", "/webForm/%EC%9B%B9%ED%8F%BC%201/submit"),
    ],
)
def test_webform_submit_spec_quotes_the_id(form_id: str, path: str) -> None:
    spec = webform_submit_spec(form_id)
    assert (spec.name, spec.path, spec.list_key, spec.paginated) == (
        "webform_submit",
        path,
        "webFormSubmitList",
        True,
    )


# --- extract_page ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"dealList": [{"id": "a"}], "nextCursor": "a"}, Page([{"id": "a"}], "a")),
        ({"dealList": [{"id": "a"}], "nextCursor": None}, Page([{"id": "a"}], None)),
        ({"dealList": [{"id": "a"}]}, Page([{"id": "a"}], None)),
        ({"dealList": [], "nextCursor": "z"}, Page([], "z")),
        ({"dealList": [{"id": "a"}], "nextCursor": ""}, Page([{"id": "a"}], None)),
        ({"dealList": [{"id": "a"}], "nextCurosr": "a"}, Page([{"id": "a"}], "a")),
        ({"dealList": [{"id": "a"}], "nextCursor": 17}, Page([{"id": "a"}], "17")),
    ],
)
def test_extract_page_variants(data: Any, expected: Page) -> None:
    assert extract_page(data, DEAL) == expected


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"dealList": {"id": "a"}}, "dealList is dict, not a list"),
        ({"dealList": "nope"}, "dealList is str, not a list"),
        ({"dealList": [{"id": "a"}, 3]}, "dealList[1] is int"),
        ([{"id": "a"}], "data is list"),
        ({"dealList": [{"id": "a"}], "nextCursor": {"id": "a"}}, "unexpected nextCursor"),
        ({"dealList": [{"id": "a"}], "nextCursor": True}, "unexpected nextCursor"),
        # not one of the three documented ends of a list (issue 9: 1,000 -> 0 rows, exit 0)
        ({}, "a success without dealList (no keys)"),
        ({"nextCursor": None}, "a success without dealList (nextCursor)"),
        ({"leadList": [{"id": "l"}]}, "a success without dealList (leadList)"),
        (None, "data is null"),
        ({"dealList": None}, "dealList is null, not a list"),
    ],
)
def test_extract_page_rejects_bad_shapes(data: Any, fragment: str) -> None:
    with pytest.raises(BadAnswer, match=r"on /deal") as info:
        extract_page(data, DEAL)
    assert fragment in str(info.value)
    # a bad answer is retried by the client like a malformed body, never taken as the end
    assert isinstance(info.value, MalformedEnvelope) and isinstance(info.value, ApiError)


def test_extract_page_uses_the_specs_list_key() -> None:
    data = {"leadList": [{"id": "l"}], "dealList": [{"id": "d"}]}
    assert extract_page(data, LEAD).records == [{"id": "l"}]
    assert extract_page({"userList": [{"id": "u"}], "nextCursor": "u"}, USER) == Page(
        [{"id": "u"}], "u"
    )
    assert extract_page({"teamList": []}, TEAM) == Page([], None)
    with pytest.raises(BadAnswer, match="on /team: a success without teamList"):
        extract_page({"userList": []}, TEAM)


# --- parse_envelope -------------------------------------------------------------------------------
def _b(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def test_success_envelope_returns_data() -> None:
    assert parse_envelope(200, _b({"success": True, "data": {"a": [1]}}), "application/json") == {
        "a": [1]
    }
    assert parse_envelope(200, _b({"success": True, "data": None}), None) is None
    # no `success` flag but a `data` key: accepted
    assert parse_envelope(200, _b({"data": {"b": 2}}), "application/json") == {"b": 2}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            {"success": False, "message": "Bad Request", "reason": "웹 폼을 찾을 수 없습니다."},
            "웹 폼을 찾을 수 없습니다.",
        ),
        (
            {"success": False, "message": "Bad Request", "reason": ["a 필수", "b 숫자"]},
            "a 필수; b 숫자",
        ),
        ({"message": "Unauthorized"}, "Unauthorized"),
        ({"error": "Not found"}, "Not found"),
        ({"error": {"code": 7}}, '{"code": 7}'),
        ({"success": False}, None),
    ],
)
def test_error_envelopes(body: dict[str, Any], reason: str | None) -> None:
    assert error_reason(_b(body)) == reason
    with pytest.raises(ApiError) as info:
        parse_envelope(400, _b(body), "application/json")
    assert info.value.status == 400
    assert info.value.reason == reason
    assert not isinstance(info.value, MalformedEnvelope)
    # the same envelope on a 200 is an error too, not data
    with pytest.raises(ApiError) as info:
        parse_envelope(200, _b(body), "application/json")
    assert not isinstance(info.value, MalformedEnvelope)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("content", "ctype", "fragment"),
    [
        (
            b"<!DOCTYPE html><html></html>",
            "text/html; charset=utf-8",
            "(HTML?): text/html, 28 bytes",
        ),
        (b"<html></html>", None, "(HTML?): unknown, 13 bytes; is the base URL"),
        (b'{"success": true, "data": {"dea', "application/json", "non-JSON body (HTML?)"),
        (b"", "application/json", "0 bytes (empty)"),
        (b"\xff\xfe garbage", None, "non-JSON body (HTML?)"),
        (b"[1, 2]", "application/json", "not the {success, data} envelope"),
        (b'{"success": true}', "application/json", "not the {success, data} envelope"),
        (b'"just a string"', "application/json", "not the {success, data} envelope"),
    ],
)
def test_malformed_2xx_bodies(content: bytes, ctype: str | None, fragment: str) -> None:
    with pytest.raises(MalformedEnvelope) as info:
        parse_envelope(200, content, ctype)
    assert str(info.value).startswith("the API answered 200 with ")
    assert fragment in str(info.value)
    assert info.value.status == 200


def test_non_json_error_body() -> None:
    assert error_reason(b"<html>502 Bad Gateway</html>") is None
    with pytest.raises(ApiError) as info:
        parse_envelope(502, b"<html>502</html>", "text/html")
    assert info.value.status == 502 and info.value.reason is None
    assert not isinstance(info.value, MalformedEnvelope)
