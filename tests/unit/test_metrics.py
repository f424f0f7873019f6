"""Seed 000's monitoring metrics from audit records: what counts, and how each figure is made."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.audit import AuditEvent, AuditRecord
from shared.services.metrics import (
    GraphErrorCount,
    OperationCounts,
    compute_metrics,
    nearest_rank,
)

SINCE = datetime(2026, 11, 21, tzinfo=UTC)
UNTIL = SINCE + timedelta(days=1)
ASKED = SINCE + timedelta(hours=1)  # when the usual piece of work was requested

E = AuditEvent


def record(
    event: AuditEvent,
    booking_id: str,
    seconds_after_ask: float,
    *,
    operation: str = "create",
    attempt: int = 1,
    requested_at: datetime | None = ASKED,
    graph_status: int | None = None,
    error_code: str | None = None,
    tenant_id: str = "demo",
) -> AuditRecord:
    return AuditRecord(
        tenant_id=tenant_id,
        booking_id=booking_id,
        event=event,
        occurred_at=ASKED + timedelta(seconds=seconds_after_ask),
        record_id=uuid.uuid4().hex,
        operation=operation,
        attempt=attempt,
        graph_status=graph_status,
        error_code=error_code,
        requested_at=requested_at,
    )


def failed_attempt(booking_id: str, seconds: float, status: int | None, code: str, **kw):
    return record(
        E.MEETING_ATTEMPT_FAILED, booking_id, seconds, graph_status=status, error_code=code, **kw
    )


def metrics(*records: AuditRecord, **kw):
    return compute_metrics(records, SINCE, UNTIL, **kw)


# -- success rate and retries -------------------------------------------------------------------


def test_an_operation_that_succeeds_after_failed_attempts_counts_once_as_succeeded_and_retried():
    # GIVEN one create that failed twice and succeeded at the third attempt
    records = [
        failed_attempt("b1", 1, 503, "serviceUnavailable", attempt=1),
        failed_attempt("b1", 3, 429, "throttled", attempt=2),
        record(E.MEETING_ATTACHED, "b1", 7, attempt=3),
    ]

    # WHEN the metrics are computed
    result = metrics(*records)

    # THEN it is one succeeded operation (1/1), retried (1/1), and 2 of its 3 attempts failed
    assert result.operations == OperationCounts(succeeded=1, retried=1)
    assert result.success_rate == 1.0
    assert result.retry_rate == 1.0
    assert (result.failed_attempts, result.attempts) == (2, 3)
    assert result.graph_error_rate == pytest.approx(2 / 3)


def test_a_clean_approval_is_not_a_retry_though_its_options_patch_is_a_second_step():
    # GIVEN a create and its options PATCH, no failure (the PATCH is the work's second attempt)
    records = [
        record(E.MEETING_ATTACHED, "b1", 1, attempt=1),
        record(E.MEETING_UPDATED, "b1", 2, operation="update", attempt=2),
    ]

    result = metrics(*records)

    assert result.retry_rate == 0.0
    assert result.graph_error_rate == 0.0
    assert result.operations.succeeded == 2


def test_one_503_then_success_is_one_retry():
    records = [
        failed_attempt("b1", 1, 503, "graph_unavailable", attempt=1),
        record(E.MEETING_ATTACHED, "b1", 2, attempt=2),
        record(E.MEETING_UPDATED, "b1", 3, operation="update", attempt=3),
    ]

    result = metrics(*records)

    assert (result.operations.retried, result.operations.succeeded) == (1, 2)
    assert result.retry_rate == 0.5


def test_a_final_failure_counts_against_the_success_rate_but_is_not_an_attempt():
    # GIVEN b1's create succeeded first time; b2's create failed with 403 and retries stopped
    records = [
        record(E.MEETING_ATTACHED, "b1", 2),
        failed_attempt("b2", 1, 403, "graph_policy_missing"),
        record(E.MEETING_FAILED, "b2", 1.5, graph_status=403, error_code="graph_policy_missing"),
    ]

    # WHEN
    result = metrics(*records)

    # THEN 1 succeeded and 1 failed: success rate 1/2; no success needed a retry: 0/1;
    # attempts are the ATTACHED and the ATTEMPT_FAILED (not the FAILED): error rate 1/2
    assert result.operations == OperationCounts(succeeded=1, failed=1)
    assert result.success_rate == 0.5
    assert result.retry_rate == 0.0
    assert (result.failed_attempts, result.attempts) == (1, 2)
    assert result.graph_error_rate == 0.5


@pytest.mark.parametrize("operation", ["create", "unknown"])
def test_a_final_failure_that_does_not_say_when_its_work_was_asked_closes_the_open_operation(
    operation,
):
    # GIVEN a create that failed at its attempts, then a FAILED record without requested_at
    # (what the poison consumer writes), naming the operation or not
    records = [
        failed_attempt("b1", 1, 503, "serviceUnavailable", attempt=1),
        failed_attempt("b1", 30, 503, "serviceUnavailable", attempt=2),
        record(E.MEETING_FAILED, "b1", 31, operation=operation, requested_at=None, attempt=2),
    ]

    # WHEN
    result = metrics(*records)

    # THEN that one create is failed, not left pending beside a second, failed, operation
    assert result.operations == OperationCounts(failed=1)
    assert result.by_operation == (("create", OperationCounts(failed=1)),)
    assert result.success_rate == 0.0


def test_an_operation_with_only_failed_attempts_is_pending_and_left_out_of_the_success_rate():
    # GIVEN b1's create succeeded; b2's create failed twice with 504 and has no outcome yet
    records = [
        record(E.MEETING_ATTACHED, "b1", 2),
        failed_attempt("b2", 1, 504, "gatewayTimeout", attempt=1),
        failed_attempt("b2", 3, 504, "gatewayTimeout", attempt=2),
    ]

    # WHEN
    result = metrics(*records)

    # THEN success rate 1/1 with 1 pending; its attempts still count: 2 of 3 failed
    assert result.operations == OperationCounts(succeeded=1, pending=1)
    assert result.success_rate == 1.0
    assert result.graph_error_rate == pytest.approx(2 / 3)


def test_open_work_replaced_by_a_later_request_is_superseded_not_pending():
    # GIVEN b1's create (asked at ASKED) failed once; then the booking was cancelled
    # (asked 10 minutes later) and its delete succeeded
    cancelled = ASKED + timedelta(minutes=10)
    records = [
        failed_attempt("b1", 1, 503, "serviceUnavailable"),
        record(E.MEETING_DELETED, "b1", 601, operation="delete", requested_at=cancelled),
    ]

    # WHEN
    result = metrics(*records)

    # THEN the create is superseded (neither pending nor failed) and the delete succeeded
    assert result.by_operation == (
        ("create", OperationCounts(superseded=1)),
        ("delete", OperationCounts(succeeded=1)),
    )
    assert result.operations == OperationCounts(succeeded=1, superseded=1)
    assert result.success_rate == 1.0


def test_operations_are_told_apart_by_booking_kind_and_request_time():
    # GIVEN for b1: a create (attempt 1), an update asked later that needed 2 attempts, and a
    # second update asked later still that succeeded at once; for b2 a delete that failed
    moved, moved_again = ASKED + timedelta(hours=1), ASKED + timedelta(hours=2)
    records = [
        record(E.MEETING_ATTACHED, "b1", 1),
        failed_attempt("b1", 3601, 429, "throttled", operation="update", requested_at=moved),
        record(E.MEETING_UPDATED, "b1", 3605, operation="update", attempt=2, requested_at=moved),
        record(E.MEETING_UPDATED, "b1", 7201, operation="update", requested_at=moved_again),
        failed_attempt("b2", 5, 403, "graph_policy_missing", operation="delete"),
        record(E.MEETING_FAILED, "b2", 6, operation="delete"),
    ]

    # WHEN
    result = metrics(*records)

    # THEN create 1/1, update 2/2 (one retried), delete 0/1: overall 3/4, retry rate 1/3
    assert result.by_operation == (
        ("create", OperationCounts(succeeded=1)),
        ("update", OperationCounts(succeeded=2, retried=1)),
        ("delete", OperationCounts(failed=1)),
    )
    assert result.success_rate == 0.75
    assert result.retry_rate == pytest.approx(1 / 3)
    # attempts: 3 successes + 2 failed attempts
    assert result.graph_error_rate == pytest.approx(2 / 5)


def test_a_failed_operation_is_not_counted_as_retried_whatever_its_attempts():
    # GIVEN a create that failed at attempt 3 and stopped
    records = [
        failed_attempt("b1", 1, 503, "serviceUnavailable", attempt=3),
        record(E.MEETING_FAILED, "b1", 2, attempt=3),
    ]

    # WHEN
    result = metrics(*records)

    # THEN no operation succeeded, so the retry rate has nothing to divide by
    assert result.operations == OperationCounts(failed=1)
    assert result.retry_rate is None


# -- latency ------------------------------------------------------------------------------------


def test_request_to_link_latency_uses_nearest_rank_percentiles_over_attached_records():
    # GIVEN five creates linked 4, 1, 10, 2 and 3 seconds after they were asked for, one
    # ATTACHED without requested_at and one UPDATED (neither is a request → link latency)
    records = [
        record(E.MEETING_ATTACHED, f"b{i}", seconds) for i, seconds in enumerate([4, 1, 10, 2, 3])
    ]
    records += [
        record(E.MEETING_ATTACHED, "old", 50, requested_at=None),
        record(E.MEETING_UPDATED, "b0", 99, operation="update"),
    ]

    # WHEN
    latency = metrics(*records).latency

    # THEN sorted [1, 2, 3, 4, 10]: p50 = rank ceil(2.5) = 3rd = 3; p95 = rank ceil(4.75) = 5th
    # = 10; max 10; mean 20 / 5 = 4
    assert (latency.count, latency.p50, latency.p95, latency.max) == (5, 3.0, 10.0, 10.0)
    assert latency.mean == 4.0


@pytest.mark.parametrize(
    ("values", "percentile", "expected"),
    [
        (list(range(1, 21)), 95, 19),  # ceil(0.95 * 20) = 19: an observed value, no interpolation
        (list(range(1, 21)), 50, 10),  # ceil(0.50 * 20) = 10
        ([1, 2], 50, 1),  # ceil(0.5 * 2) = 1
        ([7], 95, 7),  # one value is every percentile
    ],
)
def test_percentiles_are_nearest_rank(values, percentile, expected):
    assert nearest_rank(values, percentile) == expected


# -- Graph errors -------------------------------------------------------------------------------


def test_graph_errors_are_counted_by_status_and_code_most_frequent_first():
    # GIVEN failed attempts: 503 twice, 429 once, one without an HTTP answer; one success
    records = [
        failed_attempt("b1", 1, 429, "throttled"),
        failed_attempt("b2", 2, 503, "serviceUnavailable"),
        failed_attempt("b3", 3, None, "timeout"),
        failed_attempt("b2", 4, 503, "serviceUnavailable", attempt=2),
        record(E.MEETING_ATTACHED, "b4", 5),
    ]

    # WHEN
    result = metrics(*records)

    # THEN 4 of 5 attempts failed, grouped by (status, code): largest group first, then by
    # status, the calls without an answer last
    assert result.graph_error_rate == 0.8
    assert result.graph_errors == (
        GraphErrorCount(503, "serviceUnavailable", 2),
        GraphErrorCount(429, "throttled", 1),
        GraphErrorCount(None, "timeout", 1),
    )


# -- the window, the tenant, the empty case -----------------------------------------------------


def test_only_records_in_the_half_open_window_count():
    # GIVEN successes just before the window, at its start, and at its end
    def success_at(moment: datetime) -> AuditRecord:
        return AuditRecord(
            tenant_id="demo",
            booking_id=uuid.uuid4().hex,
            event=E.MEETING_ATTACHED,
            occurred_at=moment,
            record_id=uuid.uuid4().hex,
            operation="create",
        )

    records = [
        success_at(SINCE - timedelta(microseconds=1)),
        success_at(SINCE),
        success_at(UNTIL),
    ]

    # WHEN
    result = metrics(*records)

    # THEN only the one at `since` counts: since <= occurredAt < until
    assert result.operations == OperationCounts(succeeded=1)
    assert result.attempts == 1


def test_records_of_another_tenant_are_ignored_when_a_tenant_is_named():
    # GIVEN a success for demo and a final failure for another tenant
    records = [
        record(E.MEETING_ATTACHED, "b1", 1),
        record(E.MEETING_FAILED, "b2", 1, tenant_id="other"),
    ]

    # WHEN the metrics are computed for demo
    result = metrics(*records, tenant_id="demo")

    # THEN only demo's success counts
    assert result.operations == OperationCounts(succeeded=1)
    assert result.tenant_id == "demo"


def test_meetings_found_missing_are_counted_apart_from_operations_and_attempts():
    # GIVEN pre-start verification found a meeting gone, and it was made anew
    records = [
        record(E.MEETING_MISSING, "b1", 0, operation="verify"),
        record(E.MEETING_ATTACHED, "b1", 2),
    ]

    # WHEN
    result = metrics(*records)

    # THEN one missing meeting; the MISSING record is neither an operation nor an attempt
    assert result.missing_meetings == 1
    assert result.operations == OperationCounts(succeeded=1)
    assert result.attempts == 1


def test_an_empty_window_has_no_rates_rather_than_a_division_by_zero():
    # GIVEN no records WHEN the metrics are computed
    result = metrics()

    # THEN every rate and latency is None, shown as null and n/a
    assert (result.success_rate, result.retry_rate, result.graph_error_rate) == (None,) * 3
    assert result.latency.count == 0
    assert result.latency.p50 is None
    body = result.to_json()
    assert body["successRate"]["rate"] is None
    assert body["requestToLinkLatencySeconds"]["p95"] is None
    assert body["graphErrorRate"]["rate"] is None
    text = result.render_text()
    assert "Success rate                n/a" in text
    assert "Request→link latency    n/a (no meeting linked)" in text
    assert "Graph error rate            n/a  0 of 0 attempts failed" in text


@pytest.mark.parametrize(
    ("since", "until"),
    [(UNTIL, SINCE), (SINCE, SINCE), (SINCE.replace(tzinfo=None), UNTIL)],
)
def test_a_window_must_be_timezone_aware_and_not_empty(since, until):
    with pytest.raises(ValueError, match="since"):
        compute_metrics([], since, until)


# -- output -------------------------------------------------------------------------------------


def test_json_output_has_every_figure_in_camel_case():
    # GIVEN a create retried to success in 5 s, and an update still pending after a timeout
    records = [
        failed_attempt("b1", 1, 503, "serviceUnavailable"),
        record(E.MEETING_ATTACHED, "b1", 5, attempt=2),
        failed_attempt("b2", 2, None, "timeout", operation="update"),
    ]

    # WHEN
    body = metrics(*records, tenant_id="demo").to_json()

    # THEN
    assert body == {
        "tenant": "demo",
        "since": "2026-11-21T00:00:00Z",
        "until": "2026-11-22T00:00:00Z",
        "successRate": {
            "rate": 1.0,
            "succeeded": 1,
            "failed": 0,
            "pending": 1,
            "superseded": 0,
            "byOperation": {
                "create": {"succeeded": 1, "failed": 0, "pending": 0, "superseded": 0},
                "update": {"succeeded": 0, "failed": 0, "pending": 1, "superseded": 0},
            },
        },
        "requestToLinkLatencySeconds": {
            "count": 1,
            "p50": 5.0,
            "p95": 5.0,
            "max": 5.0,
            "mean": 5.0,
        },
        "retryRate": {"rate": 1.0, "retried": 1, "succeeded": 1},
        "graphErrorRate": {
            "rate": pytest.approx(2 / 3),
            "failedAttempts": 2,
            "attempts": 3,
            "errors": [
                {"graphStatus": 503, "errorCode": "serviceUnavailable", "count": 1},
                {"graphStatus": None, "errorCode": "timeout", "count": 1},
            ],
        },
        "missingMeetings": 0,
    }


def test_text_output_states_each_metric_on_its_own_line():
    # GIVEN the same records as the JSON test
    records = [
        failed_attempt("b1", 1, 503, "serviceUnavailable"),
        record(E.MEETING_ATTACHED, "b1", 5, attempt=2),
        failed_attempt("b2", 2, None, "timeout", operation="update"),
    ]

    # WHEN
    lines = metrics(*records, tenant_id="demo").render_text().splitlines()

    # THEN
    assert lines[0] == "Meeting metrics for tenant demo"
    assert lines[1] == "Window: 2026-11-21T00:00:00Z to 2026-11-22T00:00:00Z (end excluded)"
    assert lines[3] == "Success rate             100.0%  1 succeeded, 0 failed, 1 pending"
    assert lines[6] == (
        "Request→link latency    p50 5.0 s, p95 5.0 s, max 5.0 s, mean 5.0 s (1 meeting)"
    )
    assert lines[7] == (
        "Retry rate               100.0%  1 of 1 succeeded operations had a failed attempt"
    )
    assert lines[8] == "Graph error rate          66.7%  2 of 3 attempts failed"
    assert lines[-1] == "Meetings found missing        0"
