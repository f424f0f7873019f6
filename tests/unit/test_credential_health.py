"""A tenant's credential health: which failures make it unhealthy, and that only a change of
state is logged and audited (the memory world: in-memory storage, Graph faked at the wire)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from shared.auth.principal import Principal, Role
from shared.domain.audit import TENANT_RECORD, AuditEvent
from shared.domain.booking import MeetingStatus
from shared.domain.tenant import (
    Capability,
    CapabilityReason,
    HealthReason,
    HealthState,
    MicrosoftProfile,
    TeamsHealth,
)
from shared.graph.errors import (
    GraphAuthError,
    GraphError,
    GraphForbiddenError,
    GraphInvalidRequestError,
    GraphNotFoundError,
    GraphPolicyMissingError,
    GraphThrottledError,
    GraphTimeoutError,
    GraphTransientError,
)
from shared.meetings.worker import record_poisoned
from shared.services import bookings as use_cases
from shared.services.bookings import Approval
from shared.services.credential_health import (
    certificate_expiry,
    classify,
    expiry_threshold,
    next_health,
)
from tests.builders import a_booking, a_tenant
from tests.memory_world import CLIENT_ID, DIRECTORY, ORGANIZER, SECRET, TENANT, memory_world

STAFF = Principal("staff-1", TENANT, frozenset({Role.STAFF}))
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            GraphAuthError(
                "login failed: AADSTS7000215: Invalid client secret provided.",
                graph_code="invalid_client",
                status=401,
                sent=False,
            ),
            HealthReason.CREDENTIAL_INVALID,
        ),
        (
            GraphAuthError(
                "AADSTS7000222: the secret expired", graph_code="invalid_client", sent=False
            ),
            HealthReason.CREDENTIAL_INVALID,
        ),
        (
            GraphAuthError("the app setting is not set", graph_code="secret_missing", sent=False),
            HealthReason.CREDENTIAL_INVALID,
        ),
        (GraphAuthError("401 from Graph", status=401), HealthReason.CONSENT_MISSING),
        (
            GraphForbiddenError("RequestDenied", status=403),
            HealthReason.CONSENT_MISSING,
        ),
        (GraphPolicyMissingError("no policy", status=403), HealthReason.POLICY_MISSING),
        (GraphNotFoundError("no such user", status=404), HealthReason.ORGANIZER_MISSING),
        (GraphTransientError("503", status=503), None),
        (GraphTimeoutError("timed out"), None),
        (GraphThrottledError("429", status=429, retry_after=3.0), None),
        (GraphTransientError("login endpoint unreachable", sent=False), None),
        (GraphInvalidRequestError("400", status=400), None),
    ],
)
def test_failures_an_admin_must_fix_have_a_reason_and_transient_ones_none(
    error: GraphError, reason: HealthReason | None
):
    assert classify(error) == reason


def test_a_repeated_verdict_only_moves_checked_at():
    first = next_health(None, HealthReason.POLICY_MISSING, NOW)
    again = next_health(first, HealthReason.POLICY_MISSING, NOW + timedelta(minutes=15))

    assert again.since == NOW
    assert again.checked_at == NOW + timedelta(minutes=15)
    assert replace(again, checked_at=NOW) == first


def test_recovery_starts_a_new_state_and_asks_for_the_failed_meetings():
    unhealthy = next_health(None, HealthReason.CREDENTIAL_INVALID, NOW)
    healthy = next_health(unhealthy, None, NOW + timedelta(hours=1))

    assert healthy.state is HealthState.HEALTHY
    assert healthy.reason is None
    assert healthy.since == NOW + timedelta(hours=1)
    assert healthy.retry_pending
    assert not next_health(None, None, NOW).retry_pending  # first check: nothing to retry


def test_expiry_warnings_at_30_and_7_days():
    expires = NOW + timedelta(days=40)
    assert expiry_threshold(expires, NOW) == (40, None)
    assert expiry_threshold(expires, NOW + timedelta(days=10, hours=1)) == (29, 30)
    assert expiry_threshold(expires, NOW + timedelta(days=33, hours=1)) == (6, 7)


def test_unhealthy_tenants_say_why_in_their_capability():
    for reason in HealthReason:
        health = TeamsHealth(HealthState.UNHEALTHY, NOW, NOW, reason)
        assert a_tenant(teams_health=health).meeting_capability() == Capability(
            False, CapabilityReason(reason.value)
        )
    healthy = TeamsHealth(HealthState.HEALTHY, NOW, NOW)
    assert a_tenant(teams_health=healthy).meeting_capability() == Capability(True)


def test_a_certificates_not_after_is_read_from_its_pem():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    # GIVEN a key and a certificate valid until 2027-02-01, in one PEM as Key Vault gives it
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meetings app")])
    not_after = datetime(2027, 2, 1, tzinfo=UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ) + certificate.public_bytes(serialization.Encoding.PEM)

    # THEN its notAfter is read; a PEM without a certificate has none
    assert certificate_expiry(pem.decode()) == not_after
    assert certificate_expiry("no certificate here") is None


def events(caplog, name: str) -> list[tuple[int, dict]]:
    return [
        (r.levelno, json.loads(r.getMessage()))
        for r in caplog.records
        if r.getMessage().startswith("{") and json.loads(r.getMessage())["event"] == name
    ]


def approve(world, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        start = world.clock() + timedelta(days=2)
        booking = world.bookings.add(a_booking(start=start, end=start + timedelta(hours=1)))
        use_cases.approve_booking(STAFF, booking.booking_id, Approval(), world.deps)
        ids.append(booking.booking_id)
    return ids


def test_a_revoked_secret_is_one_error_and_one_audit_record_then_recovery_retries(caplog):
    caplog.set_level(logging.INFO)
    with memory_world() as world:
        # GIVEN the app registration's secret was replaced, and three bookings failed on it
        world.emulator.register_app(DIRECTORY, CLIENT_ID, "another-secret")
        ids = approve(world, 3)
        assert all(world.booking(i).meeting.failed for i in ids)
        for poisoned in world.queue.poisoned:
            record_poisoned(poisoned, world.audit, world.clock())

        # WHEN the timer checks the tenant, then again 15 minutes later
        world.credential_health.run()
        world.clock.sleep(15 * 60)
        world.credential_health.run()

        # THEN it is unhealthy for the credential, with one ERROR and one audit record
        tenant = world.tenants.get(TENANT)
        assert tenant.teams_health is not None
        assert tenant.teams_health.reason is HealthReason.CREDENTIAL_INVALID
        assert tenant.teams_health.checked_at == world.clock()
        assert tenant.meeting_capability().reason is CapabilityReason.CREDENTIAL_INVALID
        assert world.credential_health.unhealthy_tenants() == 1
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [json.loads(r.getMessage())["event"] for r in errors] == [
            "tenant_credential_unhealthy"
        ]
        assert [lvl for lvl, _ in events(caplog, "meeting_work_failed")] == [logging.WARNING] * 3
        records = world.audit.list_for_booking(TENANT, TENANT_RECORD)
        assert [r.event for r in records] == [AuditEvent.TEAMS_CREDENTIAL_UNHEALTHY]
        assert records[0].error_code == "credential_invalid"

        # WHEN the secret is put back and the next check is due
        world.emulator.register_app(DIRECTORY, CLIENT_ID, SECRET)
        world.clock.sleep(15 * 60)
        report = world.credential_health.run()
        world.drain()

        # THEN it is healthy again, once, and the failed meetings are made without a user
        assert report.restarted == 3
        assert world.tenants.get(TENANT).meeting_capability() == Capability(True)
        assert world.credential_health.unhealthy_tenants() == 0
        assert [lvl for lvl, _ in events(caplog, "tenant_credential_healthy")] == [logging.INFO]
        assert all(world.booking(i).meeting.status is MeetingStatus.CREATED for i in ids)
        records = world.audit.list_for_booking(TENANT, TENANT_RECORD)
        assert [r.event for r in records][-1] is AuditEvent.TEAMS_CREDENTIAL_HEALTHY
        health = world.tenants.get(TENANT).teams_health
        assert health is not None
        assert not health.retry_pending


def test_transient_failures_and_unchanged_states_log_and_audit_nothing(caplog):
    caplog.set_level(logging.INFO)
    with memory_world() as world:
        # GIVEN a healthy tenant (first check: no change anyone needs to hear of)
        world.credential_health.run()
        # WHEN Graph is down at the next check, then well at the one after
        from localdev.graph_emulator import Fault

        world.emulator.add_fault(Fault(operation="getUser", status=503, count=1))
        world.clock.sleep(15 * 60)
        world.credential_health.run()
        world.clock.sleep(15 * 60)
        world.credential_health.run()

        # THEN nothing was logged about its state, nor audited
        tenant = world.tenants.get(TENANT)
        assert tenant.teams_health is not None
        assert tenant.teams_health.healthy
        assert tenant.teams_health.since == world.clock() - timedelta(minutes=30)
        assert events(caplog, "tenant_credential_unhealthy") == []
        assert events(caplog, "tenant_credential_healthy") == []
        assert len(events(caplog, "tenant_credential_check_inconclusive")) == 1
        assert world.audit.list_for_booking(TENANT, TENANT_RECORD) == []


def test_checks_wait_for_the_interval():
    with memory_world() as world:
        first = world.credential_health.run()
        world.clock.sleep(5 * 60)
        second = world.credential_health.run()
        assert (first.checked, second.checked) == (1, 0)


def test_a_missing_policy_and_a_missing_organizer_are_named():
    with memory_world() as world:
        organizer = next(iter(world.emulator.users.values()))
        organizer.policy_granted = False
        world.credential_health.run()
        assert world.tenants.get(TENANT).meeting_capability().reason is (
            CapabilityReason.POLICY_MISSING
        )

        tenant = world.tenants.get(TENANT)
        world.tenants.update(replace(tenant, organizer_upn="gone@a.example"))
        world.clock.sleep(15 * 60)
        world.credential_health.run()
        assert world.tenants.get(TENANT).meeting_capability().reason is (
            CapabilityReason.ORGANIZER_MISSING
        )


def test_settings_saved_since_the_last_check_are_checked_at_the_next_run():
    with memory_world() as world:
        # GIVEN a tenant unhealthy for its organizer
        tenant = world.tenants.get(TENANT)
        world.tenants.update(replace(tenant, organizer_upn="gone@a.example"))
        world.credential_health.run()
        assert world.tenants.get(TENANT).meeting_capability().reason is (
            CapabilityReason.ORGANIZER_MISSING
        )

        # WHEN an admin saves the right organizer, and the timer runs 5 minutes later
        world.clock.sleep(5 * 60)
        tenant = world.tenants.get(TENANT)
        world.tenants.update(replace(tenant, organizer_upn=ORGANIZER, updated_at=world.clock()))
        world.clock.sleep(5 * 60)
        report = world.credential_health.run()

        # THEN it is checked then, not 15 minutes after the last check
        assert report.checked == 1
        assert world.tenants.get(TENANT).meeting_capability() == Capability(True)


def test_a_secrets_known_expiry_warns_once_per_threshold(caplog):
    caplog.set_level(logging.INFO)
    with memory_world() as world:
        tenant = world.tenants.get(TENANT)
        assert tenant.microsoft is not None
        expires = (world.clock() + timedelta(days=31, hours=12)).date()
        world.tenants.update(
            replace(tenant, microsoft=replace(tenant.microsoft, secret_expires_on=expires))
        )
        # GIVEN checks every day for 30 days
        for _ in range(30):
            world.credential_health.run()
            world.clock.sleep(24 * 3600)

        # THEN one warning at 30 days and one at 7
        warned = [f["daysLeft"] for _, f in events(caplog, "tenant_credential_expiring")]
        assert warned == [30, 7]
        assert all(
            lvl == logging.WARNING for lvl, _ in events(caplog, "tenant_credential_expiring")
        )


def test_profile_secret_expiry_is_a_date():
    profile = MicrosoftProfile("d", "c", "S", secret_expires_on=date(2027, 1, 1))
    assert profile.secret_expires_on == date(2027, 1, 1)
