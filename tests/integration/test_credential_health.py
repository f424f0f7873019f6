"""Credential health on Azurite with the Graph emulator over TLS: a revoked secret or a missing
access policy makes the tenant unhealthy after one timer run, with one ERROR however many
bookings failed; once it is fixed, the next check brings the failed meetings back unasked."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from shared.auth.principal import Principal, Role
from shared.domain.audit import TENANT_RECORD, AuditEvent
from shared.domain.booking import MeetingStatus
from shared.domain.tenant import Capability, CapabilityReason
from shared.meetings.worker import record_poisoned
from shared.services import bookings as use_cases
from shared.services import teams_settings
from shared.services.bookings import Approval
from shared.storage.queues import (
    MEETING_OPS_POISON_QUEUE,
    MEETING_OPS_QUEUE,
    PoisonedWork,
    make_queue_client,
)
from tests.builders import a_booking
from tests.integration.conftest import CLIENT_ID, DIRECTORY, ORGANIZER, TENANT

pytestmark = pytest.mark.integration

STAFF = Principal("staff-1", TENANT, frozenset({Role.STAFF}))
# Every timer run is due for a check (the setting takes minutes; this is 60 ms).
EVERY_RUN = "0.001"


def approve(svc, count: int) -> list[str]:
    ids = []
    # Whole minutes, as bookings are made (Teams keeps no fractions of a second).
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=3)
    for _ in range(count):
        booking = svc.bookings.add(
            a_booking(tenant_id=TENANT, start=start, end=start + timedelta(hours=1))
        )
        use_cases.approve_booking(STAFF, booking.booking_id, Approval(), svc.booking_deps)
        ids.append(booking.booking_id)
    return ids


def consume_poison(svc) -> int:
    """What the poison queue's trigger does with each message."""
    prefix = svc.queue.name.removesuffix(MEETING_OPS_QUEUE)
    client = make_queue_client(svc.settings.storage, prefix + MEETING_OPS_POISON_QUEUE)
    messages = list(client.receive_messages(max_messages=32))
    for message in messages:
        record_poisoned(PoisonedWork.from_text(message.content), svc.audit, svc.clock())
    return len(messages)


def timer_run(svc) -> None:
    """The reconciliation timer's meeting part: the due credential checks, then the sweep."""
    time.sleep(0.1)  # the check interval has passed
    svc.credential_health.run()
    svc.reconciler.run()


def errors(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.levelno >= logging.ERROR]


def capability(svc) -> Capability:
    return teams_settings.capability(STAFF, svc.directory)


def organizer_of(emulator):
    return next(u for u in emulator.users.values() if u.user_principal_name == ORGANIZER)


def test_a_revoked_secret_is_one_alert_for_the_tenant_and_its_return_heals_the_bookings(
    make_services, emulator, caplog
):
    caplog.set_level(logging.INFO, logger="meetings")
    # GIVEN the app registration's secret was replaced, and four approvals failed on it
    emulator.register_app(DIRECTORY, CLIENT_ID, "a-secret-made-later")
    svc = make_services(CREDENTIAL_CHECK_MINUTES=EVERY_RUN)
    ids = approve(svc, 4)
    assert all(svc.bookings.get(TENANT, i).meeting.failed for i in ids)
    assert consume_poison(svc) == 4

    # WHEN the timer runs
    timer_run(svc)

    # THEN capability says why, the service's health counts it, one ERROR names the tenant
    assert capability(svc) == Capability(False, CapabilityReason.CREDENTIAL_INVALID)
    assert svc.credential_health.unhealthy_tenants() == 1
    assert [(e["event"], e["tenant"], e["reason"]) for e in errors(caplog)] == [
        ("tenant_credential_unhealthy", TENANT, "credential_invalid")
    ]
    records = svc.audit.list_for_booking(TENANT, TENANT_RECORD)
    assert [r.event for r in records] == [AuditEvent.TEAMS_CREDENTIAL_UNHEALTHY]

    # WHEN the timer runs again, still revoked: no second alert
    timer_run(svc)
    assert len(errors(caplog)) == 1

    # WHEN the secret is valid again, and the next check runs
    emulator.register_app(DIRECTORY, CLIENT_ID, "services-secret")
    timer_run(svc)

    # THEN the tenant is healthy and every failed meeting is made, with no user action
    assert capability(svc) == Capability(True)
    assert svc.credential_health.unhealthy_tenants() == 0
    assert all(svc.bookings.get(TENANT, i).meeting.status is MeetingStatus.CREATED for i in ids)
    assert len(emulator.live_meetings()) == 4
    records = svc.audit.list_for_booking(TENANT, TENANT_RECORD)
    assert [r.event for r in records] == [
        AuditEvent.TEAMS_CREDENTIAL_UNHEALTHY,
        AuditEvent.TEAMS_CREDENTIAL_HEALTHY,
    ]
    assert len(errors(caplog)) == 1


def test_a_missing_access_policy_is_named_and_its_grant_heals_the_bookings(
    make_services, emulator, caplog
):
    caplog.set_level(logging.INFO, logger="meetings")
    # GIVEN no access policy grants the app the organizer, and three approvals failed on it
    organizer = organizer_of(emulator)
    organizer.policy_granted = False
    svc = make_services(CREDENTIAL_CHECK_MINUTES=EVERY_RUN)
    ids = approve(svc, 3)
    assert {svc.bookings.get(TENANT, i).meeting.last_error_code for i in ids} == {
        "graph_policy_missing"
    }
    consume_poison(svc)

    # WHEN the timer runs
    timer_run(svc)

    # THEN the reason is the policy, with one ERROR for the tenant
    assert capability(svc) == Capability(False, CapabilityReason.POLICY_MISSING)
    assert svc.credential_health.unhealthy_tenants() == 1
    assert [e["reason"] for e in errors(caplog)] == ["policy_missing"]

    # WHEN the policy is granted, and the next check runs
    organizer.policy_granted = True
    timer_run(svc)

    # THEN the meetings converge without anyone asking
    assert capability(svc) == Capability(True)
    assert all(svc.bookings.get(TENANT, i).meeting.status is MeetingStatus.CREATED for i in ids)
    assert len(errors(caplog)) == 1


def test_finding_the_failed_bookings_reads_only_them(make_services, emulator):
    from tests.integration.test_reconciliation import load_healthy

    # GIVEN 1000 upcoming bookings in step with Teams, and three whose meetings failed
    organizer_of(emulator).policy_granted = False
    svc = make_services(CREDENTIAL_CHECK_MINUTES=EVERY_RUN)
    load_healthy(svc, 1000, datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=2))
    ids = approve(svc, 3)
    timer_run(svc)
    organizer_of(emulator).policy_granted = True

    # WHEN the recovery lists them
    before = svc.tables.reads
    failed = svc.bookings.list_meeting_failed(TENANT, datetime.now(UTC))

    # THEN three entities are read, not a thousand
    assert sorted(b.booking_id for b in failed) == sorted(ids)
    assert svc.tables.reads - before == 3
