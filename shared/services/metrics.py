"""Seed 000's four monitoring metrics, computed from the audit records of one tenant (SPEC §9).

The window is half-open, `since <= occurredAt < until` (UTC); records outside it are ignored,
so a store that already filtered by period and one that did not give the same figures.

What the records mean: each Graph attempt at a meeting step leaves one record, a success
(`MEETING_ATTACHED` for a create, `MEETING_UPDATED`, `MEETING_DELETED`) or `MEETING_ATTEMPT_FAILED`
(with `operation`, `graph_status`, `error_code`); `attempt` numbers the attempts of that work
(1 = first try). `MEETING_FAILED` says retries stopped: a final failure, not an attempt.
`MEETING_MISSING` says pre-start verification found the meeting gone from Teams.

An *operation* is one unit of work: the records sharing (booking, operation, requested_at),
where `requested_at` is when the work was asked for (approval, payment, reschedule...). Its
outcome is its latest success or `MEETING_FAILED` record in the window; with neither it is
still open. A `MEETING_FAILED` record without `requested_at` closes the booking's most recently
seen open operation (of the same kind, unless its kind is not create/update/delete).

1. **Success rate** = succeeded / (succeeded + failed), over the operations whose outcome is in
   the window. Open operations are not in the rate: they are counted as *pending*, or as
   *superseded* when the same booking has work asked for later (a new request replaced them).
2. **Request → link latency** = occurredAt - requestedAt of each `MEETING_ATTACHED` record that
   has a `requestedAt`, in seconds: count, p50, p95, max and mean. Percentiles are nearest-rank:
   the p-th percentile of n sorted values is the value at rank ceil(p/100 * n), so it is always
   an observed latency.
3. **Retry rate** = the share of succeeded operations with at least one failed attempt
   (`MEETING_ATTEMPT_FAILED`) before their success. A second step of the same work (the options
   PATCH after a create) or a re-read after an ETag race is not a retry: only a failure is.
4. **Graph error rate** = failed attempts / all attempts, i.e. `MEETING_ATTEMPT_FAILED` /
   (`MEETING_ATTEMPT_FAILED` + success records), with the failed attempts counted by
   (Graph status, error code); a status of None is a call that got no HTTP answer (timeout,
   connection error).

And from the bookings, when they are read too: **attendance and no-show rates** of the lessons
that started in the window and completed — attended / those with a known outcome, and
(student, tutor or both) no-shows / the same; `unknown` outcomes (no attendance report by the
deadline) are counted apart.

A rate with nothing to divide by is None (shown as "n/a"), never a division by zero.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.domain.attendance import LessonOutcome
from shared.domain.audit import AuditEvent, AuditRecord
from shared.domain.booking import Booking, BookingStatus

OPERATIONS = ("create", "update", "delete")
_SUCCESS_EVENTS = frozenset(
    {AuditEvent.MEETING_ATTACHED, AuditEvent.MEETING_UPDATED, AuditEvent.MEETING_DELETED}
)


@dataclass(frozen=True)
class OperationCounts:
    """Operations by how they stood at the end of the window."""

    succeeded: int = 0
    failed: int = 0
    pending: int = 0
    superseded: int = 0
    retried: int = 0  # succeeded after at least one failed attempt

    @property
    def success_rate(self) -> float | None:
        return _ratio(self.succeeded, self.succeeded + self.failed)

    @property
    def retry_rate(self) -> float | None:
        return _ratio(self.retried, self.succeeded)


@dataclass(frozen=True)
class LatencySummary:
    """Request → link latencies in seconds; None when there were none."""

    count: int
    p50: float | None
    p95: float | None
    max: float | None
    mean: float | None

    @classmethod
    def of(cls, seconds: Iterable[float]) -> LatencySummary:
        ordered = sorted(seconds)
        if not ordered:
            return cls(0, None, None, None, None)
        return cls(
            count=len(ordered),
            p50=nearest_rank(ordered, 50),
            p95=nearest_rank(ordered, 95),
            max=ordered[-1],
            mean=sum(ordered) / len(ordered),
        )


@dataclass(frozen=True)
class GraphErrorCount:
    graph_status: int | None
    error_code: str | None
    count: int


@dataclass(frozen=True)
class AttendanceCounts:
    """Completed lessons of the window (by start) by outcome. The rates are of the lessons
    whose outcome is known: an `unknown` one (no report by the deadline) counts in neither."""

    by_outcome: tuple[tuple[LessonOutcome, int], ...]

    @classmethod
    def of(cls, bookings: Iterable[Booking]) -> AttendanceCounts:
        counts = Counter(
            b.attendance.outcome
            for b in bookings
            if b.status is BookingStatus.COMPLETED and b.attendance is not None
        )
        return cls(tuple((outcome, counts[outcome]) for outcome in LessonOutcome))

    def count(self, outcome: LessonOutcome) -> int:
        return dict(self.by_outcome).get(outcome, 0)

    @property
    def completed(self) -> int:
        return sum(n for _, n in self.by_outcome)

    @property
    def known(self) -> int:
        return self.completed - self.count(LessonOutcome.UNKNOWN)

    @property
    def no_shows(self) -> int:
        return sum(self.count(o) for o in NO_SHOWS)

    @property
    def attendance_rate(self) -> float | None:
        return _ratio(self.count(LessonOutcome.ATTENDED), self.known)

    @property
    def no_show_rate(self) -> float | None:
        return _ratio(self.no_shows, self.known)


NO_SHOWS = (LessonOutcome.STUDENT_NO_SHOW, LessonOutcome.TUTOR_NO_SHOW, LessonOutcome.NO_SHOW)


@dataclass(frozen=True)
class MeetingMetrics:
    """The four metrics for one window (see the module docstring for the definitions)."""

    since: datetime
    until: datetime
    tenant_id: str | None
    operations: OperationCounts
    by_operation: tuple[tuple[str, OperationCounts], ...]
    latency: LatencySummary
    attempts: int
    failed_attempts: int
    graph_errors: tuple[GraphErrorCount, ...]
    missing_meetings: int
    # The lessons of the window that completed, when the bookings were read too.
    attendance: AttendanceCounts | None = None

    @property
    def success_rate(self) -> float | None:
        return self.operations.success_rate

    @property
    def retry_rate(self) -> float | None:
        return self.operations.retry_rate

    @property
    def graph_error_rate(self) -> float | None:
        return _ratio(self.failed_attempts, self.attempts)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (camelCase keys; rates as fractions, None as null)."""
        return {
            "tenant": self.tenant_id,
            "since": _stamp(self.since),
            "until": _stamp(self.until),
            "successRate": {
                "rate": self.success_rate,
                **_counts_json(self.operations),
                "byOperation": {name: _counts_json(c) for name, c in self.by_operation},
            },
            "requestToLinkLatencySeconds": {
                "count": self.latency.count,
                "p50": self.latency.p50,
                "p95": self.latency.p95,
                "max": self.latency.max,
                "mean": self.latency.mean,
            },
            "retryRate": {
                "rate": self.retry_rate,
                "retried": self.operations.retried,
                "succeeded": self.operations.succeeded,
            },
            "graphErrorRate": {
                "rate": self.graph_error_rate,
                "failedAttempts": self.failed_attempts,
                "attempts": self.attempts,
                "errors": [
                    {"graphStatus": e.graph_status, "errorCode": e.error_code, "count": e.count}
                    for e in self.graph_errors
                ],
            },
            "missingMeetings": self.missing_meetings,
            **(
                {} if self.attendance is None else {"attendance": _attendance_json(self.attendance)}
            ),
        }

    def render_text(self) -> str:
        """The figures for a person, one metric per line (rates as percentages)."""
        ops, lat = self.operations, self.latency
        heading = "Meeting metrics" + (f" for tenant {self.tenant_id}" if self.tenant_id else "")
        lines = [
            heading,
            f"Window: {_stamp(self.since)} to {_stamp(self.until)} (end excluded)",
            "",
            f"{'Success rate':<24}{_percent(ops.success_rate):>7}  {_outcomes(ops)}",
        ]
        lines += [
            f"  {name:<22}{_percent(c.success_rate):>7}  {_outcomes(c)}"
            for name, c in self.by_operation
        ]
        if lat.count:
            latency = (
                f"p50 {_seconds(lat.p50)}, p95 {_seconds(lat.p95)}, max {_seconds(lat.max)}, "
                f"mean {_seconds(lat.mean)} ({lat.count} meeting{'' if lat.count == 1 else 's'})"
            )
        else:
            latency = "n/a (no meeting linked)"
        lines += [
            f"{'Request→link latency':<24}{latency}",
            f"{'Retry rate':<24}{_percent(self.retry_rate):>7}  "
            f"{ops.retried} of {ops.succeeded} succeeded operations had a failed attempt",
            f"{'Graph error rate':<24}{_percent(self.graph_error_rate):>7}  "
            f"{self.failed_attempts} of {self.attempts} attempts failed",
        ]
        lines += [
            f"  {_status(e.graph_status):<6}{e.error_code or '(no code)':<32}{e.count:>5}"
            for e in self.graph_errors
        ]
        lines.append(f"{'Meetings found missing':<24}{self.missing_meetings:>7}")
        if self.attendance is not None:
            a = self.attendance
            lines += [
                f"{'Attendance rate':<24}{_percent(a.attendance_rate):>7}  "
                f"{a.count(LessonOutcome.ATTENDED)} of {a.known} completed lessons with a "
                f"known outcome ({a.count(LessonOutcome.UNKNOWN)} unknown)",
                f"{'No-show rate':<24}{_percent(a.no_show_rate):>7}  "
                + ", ".join(f"{a.count(o)} {o.value}" for o in NO_SHOWS),
            ]
        return "\n".join(lines)


def _attendance_json(a: AttendanceCounts) -> dict[str, Any]:
    return {
        "attendanceRate": a.attendance_rate,
        "noShowRate": a.no_show_rate,
        "completed": a.completed,
        "known": a.known,
        "byOutcome": {outcome.value: n for outcome, n in a.by_outcome},
    }


def compute_metrics(
    records: Iterable[AuditRecord],
    since: datetime,
    until: datetime,
    *,
    tenant_id: str | None = None,
) -> MeetingMetrics:
    """The four metrics over the records with `since <= occurred_at < until` (and of
    `tenant_id`, when given). Pure: the caller reads the records."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must be timezone-aware")
    if since >= until:
        raise ValueError("since must be before until")
    in_window = sorted(
        (
            r
            for r in records
            if since <= r.occurred_at < until and (tenant_id is None or r.tenant_id == tenant_id)
        ),
        key=lambda r: r.occurred_at,
    )
    units = _Units()
    latencies: list[float] = []
    errors: Counter[tuple[int | None, str | None]] = Counter()
    attempts = failed_attempts = missing = 0
    for seen, record in enumerate(in_window):
        if record.event in _SUCCESS_EVENTS:
            attempts += 1
            units.close(record, seen)
            if record.event is AuditEvent.MEETING_ATTACHED and record.requested_at is not None:
                latencies.append((record.occurred_at - record.requested_at).total_seconds())
        elif record.event is AuditEvent.MEETING_ATTEMPT_FAILED:
            attempts += 1
            failed_attempts += 1
            errors[(record.graph_status, record.error_code)] += 1
            units.touch(record, seen).failed_attempts += 1
        elif record.event is AuditEvent.MEETING_FAILED:
            units.close(record, seen)
        elif record.event is AuditEvent.MEETING_MISSING:
            missing += 1
    by_operation = units.counts()
    return MeetingMetrics(
        since=since,
        until=until,
        tenant_id=tenant_id,
        operations=_total(c for _, c in by_operation),
        by_operation=by_operation,
        latency=LatencySummary.of(latencies),
        attempts=attempts,
        failed_attempts=failed_attempts,
        graph_errors=tuple(
            GraphErrorCount(status, code, count)
            for (status, code), count in sorted(
                errors.items(), key=lambda item: (-item[1], *_status_order(*item[0]))
            )
        ),
        missing_meetings=missing,
    )


def nearest_rank(ordered: list[float], percentile: int) -> float:
    """The nearest-rank percentile of sorted, non-empty values: the value at rank
    ceil(percentile/100 * n), counting from 1."""
    rank = max(1, math.ceil(percentile * len(ordered) / 100))
    return ordered[rank - 1]


# -- grouping records into operations -----------------------------------------------------------

_Key = tuple[str, str, datetime | None]


@dataclass
class _Unit:
    last_seen: int  # index of its latest record, in time order
    outcome: AuditEvent | None = None  # a success event or MEETING_FAILED; None while open
    failed_attempts: int = 0


class _Units:
    def __init__(self) -> None:
        self._units: dict[_Key, _Unit] = {}

    def touch(self, record: AuditRecord, seen: int) -> _Unit:
        key = (record.booking_id, record.operation, record.requested_at)
        unit = self._units.get(key)
        if unit is None:
            unit = self._units[key] = _Unit(seen)
        unit.last_seen = seen
        return unit

    def close(self, record: AuditRecord, seen: int) -> None:
        unit = None
        if record.event is AuditEvent.MEETING_FAILED and record.requested_at is None:
            unit = self._latest_open(record)
        if unit is None:
            unit = self.touch(record, seen)
        unit.last_seen = seen
        unit.outcome = record.event

    def _latest_open(self, record: AuditRecord) -> _Unit | None:
        """The booking's most recently seen open operation that a final failure which does not
        say when its work was asked for can belong to."""
        any_kind = record.operation not in OPERATIONS
        candidates = [
            unit
            for (booking_id, operation, _), unit in self._units.items()
            if booking_id == record.booking_id
            and unit.outcome is None
            and (any_kind or operation == record.operation)
        ]
        return max(candidates, key=lambda u: u.last_seen, default=None)

    def counts(self) -> tuple[tuple[str, OperationCounts], ...]:
        """Counts per kind of operation: create, update, delete first, then any other."""
        latest: dict[str, datetime] = {}  # per booking: when its latest work was asked for
        for booking_id, _, requested_at in self._units:
            if requested_at is not None:
                latest[booking_id] = max(requested_at, latest.get(booking_id, requested_at))
        tally: dict[str, Counter[str]] = {}
        for (booking_id, operation, requested_at), unit in self._units.items():
            counter = tally.setdefault(operation, Counter())
            if unit.outcome is AuditEvent.MEETING_FAILED:
                counter["failed"] += 1
            elif unit.outcome is not None:
                counter["succeeded"] += 1
                if unit.failed_attempts:
                    counter["retried"] += 1
            elif requested_at is not None and requested_at < latest[booking_id]:
                counter["superseded"] += 1
            else:
                counter["pending"] += 1
        order = [*(op for op in OPERATIONS if op in tally), *sorted(set(tally) - set(OPERATIONS))]
        return tuple((op, OperationCounts(**tally[op])) for op in order)


def _total(counts: Iterable[OperationCounts]) -> OperationCounts:
    total = Counter[str]()
    for c in counts:
        total.update(
            succeeded=c.succeeded,
            failed=c.failed,
            pending=c.pending,
            superseded=c.superseded,
            retried=c.retried,
        )
    return OperationCounts(**total)


# -- presentation -------------------------------------------------------------------------------


def _status_order(status: int | None, code: str | None) -> tuple[bool, int, str]:
    # By status, the calls without an HTTP answer last.
    return status is None, status or 0, code or ""


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _counts_json(c: OperationCounts) -> dict[str, int]:
    return {
        "succeeded": c.succeeded,
        "failed": c.failed,
        "pending": c.pending,
        "superseded": c.superseded,
    }


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.1%}"


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def _status(status: int | None) -> str:
    return "-" if status is None else str(status)


def _outcomes(c: OperationCounts) -> str:
    text = f"{c.succeeded} succeeded, {c.failed} failed, {c.pending} pending"
    return text + (f", {c.superseded} superseded" if c.superseded else "")
