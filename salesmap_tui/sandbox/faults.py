"""Fault injection for the sandbox: the spec grammar and the deterministic decisions.

Spec: comma-separated items ``name[:rate][:opt=val...]``; ``rate`` is a probability in [0, 1]
(default 1). Example::

    500:0.1,503:0.05:burst=2,429:0.05,hang:0.02,reset:0.02,truncate:0.02,html:0.02,
    schema:after=3,loop:1:path=deal,retry_after:1:value=2

Faults (checked in spec order; the first that fires answers the request):

- ``500`` / ``502`` / ``503``: an error response (500 and 503 JSON, 502 an nginx HTML page).
- ``429``: a 429 with the Korean wait hint in the body (``hint=S`` seconds, default 2, times the
  server's hint_scale); ``value=N`` adds ``Retry-After: N``, ``date=N`` adds ``Retry-After`` as an
  HTTP date N seconds ahead. Independent of the real rate limiter.
- ``retry_after``: the same 429, meant for the header options (``value=N`` or ``date=N``).
- ``hang``: the response never comes (until the server stops or an hour passes).
- ``reset``: headers and half the body are sent, then the connection is dropped.
- ``truncate``: status 200 with valid headers and only the first half of the JSON.
- ``html``: an HTML page with status 200 instead of the JSON.
- ``schema``: after ``after=N`` pages served (of the ``path`` endpoint, or of all), records gain
  a new key and numeric fields turn into strings. Rate is ignored.
- ``loop``: ``nextCursor`` equals the request's own cursor (pages that have a cursor only).
- ``nolist``: a success without the list key (``"data": {}``); ``nulldata``: ``"data": null``;
  ``notlist``: the list key holds an object. Bad answers, not ends of the list.
- ``underscore_id``: the page's records carry ``_id`` instead of ``id`` (as ``/v2/pipeline``).

Options for every fault: ``after=N`` fires it only once N pages (of the ``path`` endpoint, or
of all) were served (``nolist:1:path=deal:after=3``: the 4th page of /deal and every later
request of it answer without the list); ``path=<endpoint>`` (organization, people, deal, lead,
memo, user, team, webForm, webFormSubmit) limits it to that endpoint; ``burst=k`` makes a
chosen request key fail its first k attempts and then succeed (``500:1:burst=2``: every page
fails exactly twice).

Decisions are hashes of (seed, fault, request key = path + cursor, attempt n of that key), never
a shared random sequence, so concurrent clients meet the same faults whatever the interleaving.
Without ``burst`` each attempt is drawn anew (``500:1`` always fails); with ``burst`` the key is
drawn once and fails exactly its first k attempts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from salesmap_tui.sandbox.data import ENDPOINTS, h, tag

__all__ = ["FAULT_NAMES", "Fault", "FaultSpecError", "parse_faults"]

FAULT_NAMES = (
    "500",
    "502",
    "503",
    "429",
    "retry_after",
    "hang",
    "reset",
    "truncate",
    "html",
    "schema",
    "loop",
    "nolist",
    "nulldata",
    "notlist",
    "underscore_id",
)
_OPTIONS = {"burst", "path", "value", "date", "hint", "after"}


class FaultSpecError(ValueError):
    """A fault spec that cannot be parsed; the message names the bad item."""


@dataclass(frozen=True)
class Fault:
    """One parsed spec item."""

    name: str
    rate: float = 1.0
    burst: int | None = None
    path: str | None = None
    value: str | None = None  # Retry-After in seconds, verbatim
    date: float | None = None  # Retry-After as an HTTP date this many seconds ahead
    hint: float = 2.0  # seconds in the 429 body (before hint_scale)
    after: int = 0  # pages served (of `path`, or of all) before the fault starts
    tag: int = field(default=0, compare=False)

    def applies_to(self, endpoint: str) -> bool:
        return self.path is None or self.path == endpoint

    def fires(self, seed: int, key: str, attempt: int) -> bool:
        """Whether this fault answers attempt `attempt` (0-based) of request `key`."""
        if self.burst is not None:
            if attempt >= self.burst:
                return False
            return self.rate >= 1 or _unit(seed, self.tag, tag(key)) < self.rate
        return self.rate >= 1 or _unit(seed, self.tag, tag(key), attempt) < self.rate


def _unit(*parts: int) -> float:
    return (h(*parts) >> 11) / float(1 << 53)


def parse_faults(spec: str) -> tuple[Fault, ...]:
    """Parse a fault spec (see the module docstring); raise FaultSpecError if it is bad."""
    faults: list[Fault] = []
    for n, raw in enumerate(item.strip() for item in spec.split(",")):
        if not raw:
            continue
        name, *parts = raw.split(":")
        if name not in FAULT_NAMES:
            raise FaultSpecError(f"unknown fault {name!r} in {raw!r} (known: {FAULT_NAMES})")
        kw: dict[str, object] = {"name": name, "tag": tag(f"{name}#{n}")}
        for i, part in enumerate(parts):
            if "=" not in part:
                if i != 0:
                    raise FaultSpecError(f"{raw!r}: the rate must come right after the name")
                kw["rate"] = _number(raw, "rate", part, lo=0.0, hi=1.0)
                continue
            opt, val = part.split("=", 1)
            if opt not in _OPTIONS:
                raise FaultSpecError(f"{raw!r}: unknown option {opt!r} (known: {sorted(_OPTIONS)})")
            if opt == "path":
                if val not in ENDPOINTS:
                    raise FaultSpecError(f"{raw!r}: unknown endpoint {val!r}")
                kw["path"] = val
            elif opt in ("burst", "after"):
                kw[opt] = int(_number(raw, opt, val, lo=0))
            elif opt == "value":
                _number(raw, opt, val, lo=0)
                kw["value"] = val
            else:
                kw[opt] = _number(raw, opt, val, lo=0)
        faults.append(Fault(**kw))  # type: ignore[arg-type]
    return tuple(faults)


def _number(raw: str, opt: str, val: str, lo: float, hi: float | None = None) -> float:
    try:
        x = float(val)
    except ValueError:
        raise FaultSpecError(f"{raw!r}: {opt} must be a number, not {val!r}") from None
    if x < lo or (hi is not None and x > hi):
        raise FaultSpecError(f"{raw!r}: {opt}={val} out of range")
    return x
