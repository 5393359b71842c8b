"""The endpoint catalogue and the parsing of the API's envelope and cursor pages.

Pure functions, no I/O: the client hands them bytes and dicts, they hand back data or raise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from salesmap_tui.engine.errors import ApiError


@dataclass(frozen=True)
class EndpointSpec:
    """One list endpoint: its table name, path under the base URL and the list key in `data`."""

    name: str
    path: str
    list_key: str
    paginated: bool


ORGANIZATION = EndpointSpec("organization", "/organization", "organizationList", True)
PEOPLE = EndpointSpec("people", "/people", "peopleList", True)
DEAL = EndpointSpec("deal", "/deal", "dealList", True)
LEAD = EndpointSpec("lead", "/lead", "leadList", True)
MEMO = EndpointSpec("memo", "/memo", "memoList", True)
# The seed reads /user and /team with one call each; a nextCursor there is reported, not followed.
USER = EndpointSpec("user", "/user", "userList", False)
TEAM = EndpointSpec("team", "/team", "teamList", False)

SNAPSHOT_ENDPOINTS: tuple[EndpointSpec, ...] = (ORGANIZATION, PEOPLE, DEAL, LEAD, MEMO, USER, TEAM)

# Documented as one page; a nextCursor is followed should one ever appear.
WEBFORM_LIST = EndpointSpec("webForm", "/webForm", "webFormList", True)


def webform_submit_spec(form_id: str) -> EndpointSpec:
    """The submissions of one web form; the id is untrusted, so it is path-quoted."""
    return EndpointSpec(
        "webform_submit", f"/webForm/{quote(form_id, safe='')}/submit", "webFormSubmitList", True
    )


@dataclass(frozen=True)
class Page:
    records: list[dict[str, Any]]
    next_cursor: str | None  # None when the list ended, by any documented form


class MalformedEnvelope(ApiError):
    """A 2xx answer whose body is not the `{success, data}` envelope (HTML, truncated JSON).

    The client retries these: the docs and public clients saw HTML pages answered with 200.
    """


def _oneline(text: str) -> str:
    # Not shortened here: the client scrubs the token first, then shortens.
    return " ".join(text.split())


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _oneline(value) if value.strip() else None
    if isinstance(value, list):
        parts = [t for t in (_as_text(v) for v in value) if t]
        return _oneline("; ".join(parts)) if parts else None
    return _oneline(json.dumps(value, ensure_ascii=False))


def reason_from_body(body: Any) -> str | None:
    """The readable reason of a decoded error envelope, in any of its documented shapes.

    `{"success": false, "message", "reason": str | [str]}`, `{"message": ...}` or `{"error": ...}`;
    `reason` wins over `message` because `message` is only the HTTP reason phrase.
    """
    if not isinstance(body, dict):
        return None
    for key in ("reason", "message", "error"):
        text = _as_text(body.get(key))
        if text:
            return text
    return None


def error_reason(content: bytes) -> str | None:
    """The server's reason from a raw error body, or None when the body is not a JSON envelope."""
    try:
        body = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None
    return reason_from_body(body)


def parse_envelope(status: int, content: bytes, content_type: str | None) -> Any:
    """Return `data` of a success envelope.

    Raises `MalformedEnvelope` for a 2xx body that is not JSON or not the envelope, and
    `ApiError(status, reason)` for an error envelope (`success: false`) or a non-2xx status.
    """
    ctype = (content_type or "unknown").split(";")[0].strip() or "unknown"
    try:
        body = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        if not 200 <= status < 300:
            raise ApiError(f"the API answered {status}", status=status) from None
        # No excerpt of the body: a server could echo the token, and a cut excerpt would
        # escape the client's scrubber.
        detail = "" if content.strip() else " (empty)"
        raise MalformedEnvelope(
            f"the API answered {status} with a non-JSON body (HTML?): {ctype}, "
            f"{len(content)} bytes{detail}; is the base URL right (it must end in /v2)?",
            status=status,
        ) from None
    reason = reason_from_body(body)
    if not 200 <= status < 300:
        raise ApiError(
            f"the API answered {status}" + (f": {reason}" if reason else ""),
            status=status,
            reason=reason,
        )
    if isinstance(body, dict):
        success = body.get("success")
        if success is True and "data" in body:
            return body["data"]
        # Tolerate an envelope without the `success` flag as long as it carries `data`.
        if success is None and "data" in body and not ({"error", "reason"} & body.keys()):
            return body["data"]
        if success is False or (success is None and reason is not None):
            raise ApiError(
                f"the API answered {status} with an error: {reason or 'no reason given'}",
                status=status,
                reason=reason,
            )
    raise MalformedEnvelope(
        f"the API answered {status} with JSON that is not the {{success, data}} envelope "
        f"({ctype}, {len(content)} bytes)",
        status=status,
    )


class BadAnswer(MalformedEnvelope):
    """A success envelope whose `data` is not the page it should be: no list key, `data: null`,
    a list that is not a list, an item that is not an object, a cursor of the wrong type.

    None of these is one of the three documented ends of a list (salesmap-api.md "Pagination"):
    taking one as the end would silently truncate a table. The client retries it like a 5xx and
    then fails the run.
    """


def _cursor(data: dict[str, Any], spec: EndpointSpec) -> str | None:
    raw = data.get("nextCursor") or data.get("nextCurosr")  # the second is a doc typo
    if not raw:
        return None
    if isinstance(raw, str):
        return raw
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    raise BadAnswer(f"unexpected nextCursor on {spec.path}: {type(raw).__name__}, not a string")


def extract_page(data: Any, spec: EndpointSpec) -> Page:
    """The records and next cursor of one page (`data` is the envelope's `data`).

    Strict: the list key must be there and hold a list of objects (`[]` is a real empty page);
    anything else raises `BadAnswer`.
    """
    if not isinstance(data, dict):
        shown = "null" if data is None else type(data).__name__
        raise BadAnswer(
            f"bad answer on {spec.path}: data is {shown}, not an object with {spec.list_key}"
        )
    if spec.list_key not in data:
        keys = ", ".join(sorted(map(str, data))[:8]) or "no keys"
        raise BadAnswer(
            f"bad answer on {spec.path}: a success without {spec.list_key} ({keys}); "
            "not an end of the list"
        )
    raw = data[spec.list_key]
    if not isinstance(raw, list):
        shown = "null" if raw is None else type(raw).__name__
        raise BadAnswer(f"bad answer on {spec.path}: {spec.list_key} is {shown}, not a list")
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise BadAnswer(
                f"bad answer on {spec.path}: {spec.list_key}[{i}] is "
                f"{type(item).__name__}, not an object"
            )
    return Page(raw, _cursor(data, spec))
