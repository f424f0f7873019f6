"""The organizer check's throw-away meeting never outlives the check: on Azurite, with Graph faked
at the wire by the local Graph emulator. A DELETE or options PATCH that fails, or a create whose
answer is lost, leaves a recorded check that the timer's sweep removes on the meeting schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from localdev.graph_emulator import Fault
from shared.auth.principal import Principal, Role
from shared.services import teams_settings
from shared.services.check_meetings import CheckMeetings
from shared.storage.check_meetings import (
    CheckMeeting,
    InMemoryCheckMeetingRepository,
    TableCheckMeetingRepository,
)
from shared.work.policy import RetryPolicy
from tests.integration.conftest import TENANT

pytestmark = pytest.mark.integration

ADMIN = Principal("admin-1", TENANT, frozenset({Role.ADMIN}))
GRACE = timedelta(seconds=60)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def checks(svc, clock):
    return CheckMeetings(
        TableCheckMeetingRepository(svc.tables),
        svc.graph,
        svc.directory,
        RetryPolicy(rounds=(30.0, 120.0), jitter=0.0),
        clock,
        grace=GRACE,
    )


def dry_run(svc, checks):
    return teams_settings.verify_organizer(ADMIN, (None, True), svc.directory, svc.graph, checks)


def live_checks(emulator):
    return [m for m in emulator.live_meetings() if m.external_id.startswith("verify:")]


def test_a_clean_dry_run_leaves_nothing_behind(svc, emulator, checks):
    result = dry_run(svc, checks)

    assert (result.valid, result.check_removed, result.reason) == (True, True, None)
    assert live_checks(emulator) == []
    assert checks.sweep().due == 0
    assert emulator.calls["createOrGet"] == 1
    assert emulator.calls["patchMeeting"] == 1  # the tenant's options were tried on it
    assert emulator.calls["deleteMeeting"] == 1


def test_a_failed_options_patch_says_the_check_is_incomplete_and_removes_the_meeting(
    svc, emulator, checks
):
    emulator.add_fault(Fault(operation="patchMeeting", status=503, count=1))

    result = dry_run(svc, checks)

    assert (result.valid, result.reason, result.check_removed) == (False, "graph_error", True)
    assert live_checks(emulator) == []


def test_a_failed_delete_is_said_and_the_timer_removes_the_meeting_on_the_schedule(
    svc, emulator, checks, clock
):
    # GIVEN Teams answers the DELETE with 503 three times
    emulator.add_fault(Fault(operation="deleteMeeting", status=503, count=3))

    # WHEN an admin runs the dry run
    result = dry_run(svc, checks)

    # THEN the check passed, and the answer says its meeting is still there
    assert (result.valid, result.check_removed) == (True, False)
    assert len(live_checks(emulator)) == 1

    # AND the timer leaves it until its first retry is due, then retries on the schedule
    clock.now += timedelta(seconds=29)
    assert checks.sweep().due == 0
    clock.now += timedelta(seconds=2)
    assert checks.sweep().retrying == 1  # the second 503: round 2 in 120 s
    clock.now += timedelta(seconds=119)
    assert checks.sweep().due == 0
    clock.now += timedelta(seconds=2)
    # the third 503 spends the rounds: one ERROR line names the meeting for a person
    assert checks.sweep().given_up == 1
    assert len(live_checks(emulator)) == 1
    clock.now += timedelta(days=1)
    assert checks.sweep().due == 0


def test_the_timer_removes_a_check_meeting_once_the_delete_answers(svc, emulator, checks, clock):
    emulator.add_fault(Fault(operation="deleteMeeting", status=503, count=1))
    assert dry_run(svc, checks).check_removed is False

    clock.now += timedelta(seconds=31)
    report = checks.sweep()

    assert (report.due, report.removed) == (1, 1)
    assert live_checks(emulator) == []
    clock.now += timedelta(days=1)
    assert checks.sweep().due == 0  # forgotten


@pytest.mark.parametrize(
    "fault",
    [
        Fault(operation="createOrGet", status=503, count=1),
        Fault(operation="createOrGet", status=504, lost_reply=True, count=1),
    ],
    ids=["503", "lost-reply"],
)
def test_a_create_whose_answer_is_not_known_is_found_and_removed_by_the_timer(
    svc, emulator, checks, clock, fault
):
    # GIVEN the create failed without a clear answer (Teams may have made the meeting)
    emulator.add_fault(fault)
    result = dry_run(svc, checks)
    assert (result.valid, result.reason, result.check_removed) == (False, "graph_error", False)

    # WHEN the timer runs once the dry run is surely over
    assert checks.sweep().due == 0  # not while the dry run may still be at work
    clock.now += GRACE + timedelta(seconds=1)
    report = checks.sweep()

    # THEN the meeting, if Teams made it, is gone, and the check forgotten
    assert report.removed == 1
    assert live_checks(emulator) == []
    clock.now += timedelta(days=1)
    assert checks.sweep().due == 0


def test_a_refused_create_leaves_nothing_to_remove(svc, emulator, checks):
    emulator.add_user(
        "0a0b0c0d-0000-4000-8000-0000000000aa",
        "nopolicy@a.example",
        "No Policy",
        policy_granted=False,
    )
    result = teams_settings.verify_organizer(
        ADMIN, ("nopolicy@a.example", True), svc.directory, svc.graph, checks
    )

    assert (result.reason, result.check_removed) == ("policy_missing", True)
    assert checks.sweep().due == 0


@pytest.fixture(params=["table", "memory"])
def repository(request):
    if request.param == "memory":
        return InMemoryCheckMeetingRepository()
    return TableCheckMeetingRepository(request.getfixturevalue("tables"))


def test_check_rows_are_listed_when_due_and_not_given_up(repository):
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def check(check_id: str, due: timedelta, failed: bool = False) -> CheckMeeting:
        return CheckMeeting(
            check_id=check_id,
            tenant_id=TENANT,
            organizer_id="o1",
            created_at=now + due - timedelta(minutes=5),
            next_attempt_at=now + due,
            failed=failed,
        )

    repository.save(check("due", timedelta(seconds=-1)))
    repository.save(check("later", timedelta(seconds=30)))
    repository.save(check("given-up", timedelta(seconds=-5), failed=True))
    repository.save(check("due-with-id", timedelta(seconds=-10)))

    assert [c.check_id for c in repository.list_due(now)] == ["due-with-id", "due"]
    repository.save(
        CheckMeeting("due", TENANT, "o1", now, now + timedelta(hours=1), meeting_id="m1")
    )
    assert [c.check_id for c in repository.list_due(now)] == ["due-with-id"]
    repository.remove("due-with-id")
    repository.remove("due-with-id")  # twice is fine
    later = {c.check_id: c for c in repository.list_due(now + timedelta(hours=2))}
    assert set(later) == {"due", "later"}
    assert later["due"].meeting_id == "m1"


def test_a_wrong_404_to_the_delete_is_not_believed(svc, emulator, checks, clock):
    # GIVEN Graph answers the check meeting's DELETE with one 404 while it still has it
    emulator.add_fault(Fault(operation="deleteMeeting", status=404, count=1))

    result = dry_run(svc, checks)

    # THEN the answer does not claim it is gone, and the timer removes it
    assert (result.valid, result.check_removed) == (True, False)
    assert len(live_checks(emulator)) == 1
    clock.now += timedelta(seconds=31)
    assert checks.sweep().removed == 1
    assert live_checks(emulator) == []


def test_a_tenant_with_checks_left_to_remove_makes_no_more(svc, emulator, checks):
    # GIVEN Teams refuses every DELETE for good, so each dry run leaves its meeting
    emulator.add_fault(Fault(operation="deleteMeeting", status=403))
    for _ in range(10):
        assert dry_run(svc, checks).check_removed is False

    # WHEN an admin runs another
    result = dry_run(svc, checks)

    # THEN no meeting is made: a person removes the ten first (ERROR check_meeting_not_removed)
    assert (result.valid, result.reason) == (False, "check_meetings_left")
    assert len(live_checks(emulator)) == 10
