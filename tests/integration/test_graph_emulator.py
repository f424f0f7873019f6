"""The Graph client against the local Graph emulator: real TLS, real msal, injected faults."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
import requests
import responses

from localdev.graph_emulator import POLICY_MISSING_MESSAGE, Fault, GraphEmulator
from shared.domain.tenant import MeetingOptions, MicrosoftProfile
from shared.graph.bodies import Attendee, MeetingRequest
from shared.graph.client import CallContext, GraphMeetingsClient
from shared.graph.errors import (
    GraphAuthError,
    GraphForbiddenError,
    GraphNotFoundError,
    GraphPolicyMissingError,
    GraphThrottledError,
    GraphTimeoutError,
    GraphTransientError,
)
from shared.graph.session import TimeoutSession
from shared.graph.tokens import MsalTokenSource

pytestmark = pytest.mark.integration

DIRECTORY = "6a1b2c3d-0000-4000-8000-000000000001"
CLIENT_ID = "client-emulated"
SECRET = "emulated-secret"
PROFILE = MicrosoftProfile(DIRECTORY, CLIENT_ID, "EMULATED_SECRET")
CTX = CallContext("tenant-a", "create", "b1")
START = datetime(2026, 12, 24, 13, 0, tzinfo=UTC)


@pytest.fixture
def emulator(local_tls, trust_local_tls):
    instance = GraphEmulator(local_tls).start()
    instance.register_app(DIRECTORY, CLIENT_ID, SECRET)
    yield instance
    instance.stop()


@pytest.fixture
def organizer(emulator):
    return emulator.add_user(DIRECTORY, "organizer@a.example", "Organizer")


def make_client(emulator: GraphEmulator, secret: str = SECRET, timeout: float = 5.0):
    session = TimeoutSession(timeout)
    tokens = MsalTokenSource(
        authority_host=emulator.base_url,
        graph_base_url=emulator.graph_url,
        resolve_secret=lambda _: secret,
        http=session,
        timeout=timeout,
    )
    return GraphMeetingsClient(
        base_url=emulator.graph_url, tokens=tokens, http=session, timeout=timeout
    )


@pytest.fixture
def client(emulator):
    return make_client(emulator)


def request(external_id: str = "tenant-a:b1") -> MeetingRequest:
    return MeetingRequest(
        external_id,
        "Maths A-Level Lesson",
        START,
        START + timedelta(hours=1),
        (Attendee("student@example.com", "Sam"),),
    )


def test_one_external_id_makes_exactly_one_meeting_however_often_called(
    emulator, organizer, client
):
    meetings = [
        client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)
        for _ in range(5)
    ]

    assert len({m.id for m in meetings}) == 1
    assert len({m.join_url for m in meetings}) == 1
    assert [m.created for m in meetings] == [True, False, False, False, False]
    assert len(emulator.live_meetings()) == 1


def test_racing_workers_still_make_one_meeting(emulator, organizer, client):
    barrier = threading.Barrier(6)
    ids: list[str] = []

    def worker() -> None:
        barrier.wait()
        ids.append(
            client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX).id
        )

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(ids) == 6
    assert len(set(ids)) == 1
    assert len(emulator.live_meetings()) == 1


def test_created_meetings_carry_the_options_patched_after_create(emulator, organizer, client):
    client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)

    (meeting,) = emulator.live_meetings()
    assert meeting.lobby_scope == "everyone"
    assert meeting.dial_in_bypass is True
    assert meeting.entry_exit_announced is False
    assert meeting.participants[0]["upn"] == "student@example.com"


def test_a_token_is_requested_once_for_many_calls(emulator, organizer, client):
    for n in range(4):
        client.create_or_get_meeting(
            PROFILE, organizer.id, request(f"t:{n}"), MeetingOptions(), CTX
        )

    assert emulator.calls["token"] == 1
    assert emulator.calls["createOrGet"] == 4


def test_reschedule_patches_the_same_meeting_and_keeps_its_link(emulator, organizer, client):
    created = client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)
    new_start = START + timedelta(days=1)

    moved = client.update_meeting(
        PROFILE,
        organizer.id,
        created.id,
        start=new_start,
        end=new_start + timedelta(hours=1),
        subject=None,
        ctx=CTX,
    )

    assert moved.id == created.id
    assert moved.join_url == created.join_url
    assert moved.start == new_start
    assert client.get_meeting(PROFILE, organizer.id, created.id, CTX).start == new_start


def test_delete_removes_the_meeting_and_a_second_delete_is_done_too(emulator, organizer, client):
    created = client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)

    assert client.delete_meeting(PROFILE, organizer.id, created.id, CTX) is True
    assert client.delete_meeting(PROFILE, organizer.id, created.id, CTX) is False
    assert emulator.live_meetings() == []
    with pytest.raises(GraphNotFoundError):
        client.get_meeting(PROFILE, organizer.id, created.id, CTX)


def test_the_organizer_upn_resolves_to_its_object_id(organizer, client):
    user = client.get_user(PROFILE, "ORGANIZER@a.example", CTX)

    assert user.id == organizer.id
    with pytest.raises(GraphNotFoundError):
        client.get_user(PROFILE, "nobody@a.example", CTX)


def test_an_organizer_whose_upn_starts_with_a_dollar_is_served_end_to_end(emulator, client):
    # GIVEN an organizer whose UPN starts with `$` (Graph wants it as users('$...'))
    upn = "$tutor@a.example"
    organizer = emulator.add_user(DIRECTORY, upn, "Tutor")

    # WHEN it is looked up, gets a meeting (createOrGet, then the options PATCH) and sends mail
    assert client.get_user(PROFILE, upn, CTX).id == organizer.id
    meeting = client.create_or_get_meeting(PROFILE, upn, request(), MeetingOptions(), CTX)
    client.send_mail(PROFILE, upn, {"subject": "Your lesson"}, CTX)

    # THEN each call reached the organizer, over TLS, as Graph would answer it
    assert meeting.created is True
    assert meeting.options_applied is True
    assert [m.id for m in emulator.live_meetings()] == [meeting.id]
    assert emulator.live_meetings()[0].organizer_id == organizer.id
    assert emulator.statuses["getUser:200"] == 1
    assert emulator.statuses["createOrGet:201"] == 1
    assert emulator.statuses["patchMeeting:200"] == 1
    assert emulator.statuses["sendMail:202"] == 1
    assert [m["from"] for m in emulator.mail] == [upn]


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault(operation="createOrGet", status=429, retry_after="0.75"), GraphThrottledError),
        (Fault(operation="createOrGet", status=503), GraphTransientError),
        (
            Fault(operation="createOrGet", status=403, message=POLICY_MISSING_MESSAGE),
            GraphPolicyMissingError,
        ),
        (Fault(operation="createOrGet", status=404), GraphNotFoundError),
        (Fault(operation="token", status=401), GraphAuthError),
    ],
)
def test_each_injected_fault_becomes_its_error_class(emulator, organizer, client, fault, expected):
    emulator.add_fault(fault)

    with pytest.raises(expected) as raised:
        client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)

    if fault.retry_after:
        assert raised.value.retry_after == pytest.approx(0.75)
    assert emulator.live_meetings() == []


def test_a_hanging_graph_is_a_timeout(emulator, organizer):
    client = make_client(emulator, timeout=0.5)
    emulator.add_fault(Fault(operation="getMeeting", hang_seconds=2.0))

    with pytest.raises(GraphTimeoutError):
        client.get_meeting(PROFILE, organizer.id, "any", CTX)


def test_an_organizer_without_the_access_policy_is_refused(emulator, client):
    unpolicied = emulator.add_user(DIRECTORY, "new@a.example", "New", policy_granted=False)

    with pytest.raises(GraphPolicyMissingError):
        client.create_or_get_meeting(PROFILE, unpolicied.id, request(), MeetingOptions(), CTX)


def test_a_wrong_secret_is_an_auth_error(emulator, organizer):
    client = make_client(emulator, secret="wrong")

    with pytest.raises(GraphAuthError, match="AADSTS7000215"):
        client.get_user(PROFILE, organizer.user_principal_name, CTX)


def test_a_share_of_faults_hits_that_share_of_calls(emulator, organizer, client):
    emulator.add_fault(Fault(operation="getUser", status=503, share=0.5))
    outcomes = []
    for _ in range(6):
        try:
            client.get_user(PROFILE, organizer.id, CTX)
            outcomes.append("ok")
        except GraphTransientError:
            outcomes.append("503")

    assert outcomes.count("503") == 3


def test_a_fault_with_a_count_stops_after_it(emulator, organizer, client):
    emulator.add_fault(Fault(operation="createOrGet", status=503, count=1))

    with pytest.raises(GraphTransientError):
        client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)
    meeting = client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)

    assert meeting.created is True
    assert emulator.statuses["createOrGet:503"] == 1
    assert emulator.statuses["createOrGet:201"] == 1


# -- without a server: the same emulator faked at the wire (responses) ---------------------------


@pytest.fixture
def wire():
    """An emulator without a server, answering requests to https://graph.test via responses."""
    instance = GraphEmulator(tls=None)
    instance.register_app(DIRECTORY, CLIENT_ID, SECRET)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        instance.install_responses(rsps)
        yield instance, rsps


def test_without_tls_there_is_no_server_to_start():
    emulator = GraphEmulator(tls=None)

    with pytest.raises(RuntimeError, match="no server"):
        emulator.start()
    with pytest.raises(RuntimeError, match="install_responses"):
        _ = emulator.base_url
    emulator.stop()  # nothing to stop
    with pytest.raises(ValueError, match="https"):
        emulator.install_responses(responses.RequestsMock(), base_url="http://graph.test")


def test_msal_and_the_client_create_a_meeting_through_responses(wire):
    emulator, rsps = wire
    organizer = emulator.add_user(DIRECTORY, "organizer@a.example", "Organizer")
    client = make_client(emulator)

    meeting = client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)
    again = client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)

    assert emulator.base_url == "https://graph.test"
    assert meeting.created is True
    assert again.created is False
    assert again.id == meeting.id
    assert meeting.join_url.startswith("https://teams.microsoft.com/l/meetup-join/")
    assert [m.id for m in emulator.live_meetings()] == [meeting.id]
    assert emulator.calls["discovery"] == 1
    assert emulator.calls["token"] == 1
    assert emulator.statuses["createOrGet:201"] == 1
    assert emulator.statuses["createOrGet:200"] == 1
    urls = [c.request.url for c in rsps.calls]
    assert urls[0] == f"https://graph.test/{DIRECTORY}/v2.0/.well-known/openid-configuration"
    assert urls[1] == f"https://graph.test/{DIRECTORY}/oauth2/v2.0/token"
    assert urls[2] == f"https://graph.test/v1.0/users/{organizer.id}/onlineMeetings/createOrGet"
    created = rsps.calls[2].response
    assert created.status_code == 201
    assert created.headers["Content-Type"] == "application/json"
    assert created.headers["request-id"]


def test_faults_at_the_wire_become_the_same_errors(wire):
    emulator, _ = wire
    organizer = emulator.add_user(DIRECTORY, "organizer@a.example", "Organizer")
    client = make_client(emulator)
    emulator.add_fault(Fault(operation="createOrGet", status=429, retry_after="0.75", count=1))
    emulator.add_fault(Fault(operation="getUser", status=403, message=POLICY_MISSING_MESSAGE))

    with pytest.raises(GraphThrottledError) as throttled:
        client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)
    with pytest.raises(GraphPolicyMissingError):
        client.get_user(PROFILE, organizer.id, CTX)
    with pytest.raises(GraphAuthError, match="AADSTS7000215"):
        make_client(emulator, secret="wrong").get_user(PROFILE, organizer.id, CTX)

    assert throttled.value.retry_after == pytest.approx(0.75)
    assert emulator.live_meetings() == []


def test_a_hang_at_the_wire_is_a_read_timeout_at_once(wire):
    emulator, _ = wire
    organizer = emulator.add_user(DIRECTORY, "organizer@a.example", "Organizer")
    client = make_client(emulator, timeout=5.0)
    emulator.add_fault(Fault(operation="getMeeting", hang_seconds=30.0))
    started = time.monotonic()

    with pytest.raises(GraphTimeoutError):
        client.get_meeting(PROFILE, organizer.id, "any", CTX)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{emulator.graph_url}/users/{organizer.id}/onlineMeetings/x", timeout=2)

    assert time.monotonic() - started < 2.0


def test_a_hang_shorter_than_the_timeout_drops_the_connection(wire):
    emulator, _ = wire
    emulator.add_fault(Fault(operation="getUser", hang_seconds=1.0))

    with pytest.raises(requests.exceptions.ConnectionError) as dropped:
        requests.get(f"{emulator.graph_url}/users/someone", timeout=5)

    assert not isinstance(dropped.value, requests.exceptions.Timeout)


def test_control_calls_work_at_the_wire(wire):
    emulator, _ = wire

    added = requests.post(
        f"{emulator.base_url}/_emulator/faults",
        json={"operation": "getUser", "status": 503},
        timeout=5,
    )
    state = requests.get(f"{emulator.base_url}/_emulator/state", timeout=5).json()

    assert added.status_code == 201
    assert state["faults"][0]["status"] == 503
    assert "getUser" not in state["calls"]  # control calls are not counted


def test_sent_mail_is_kept_with_its_attachments(wire):
    emulator, _ = wire
    sender = emulator.add_user(DIRECTORY, "organizer@a.example", "Organizer")
    attachment = {
        "@odata.type": "#microsoft.graph.fileAttachment",
        "name": "lesson.ics",
        "contentType": "text/calendar",
        "contentBytes": "QkVHSU46VkNBTEVOREFS",
    }
    message = {"subject": "Your lesson", "attachments": [attachment]}

    make_client(emulator).send_mail(PROFILE, sender.user_principal_name, message, CTX)

    (sent,) = emulator.mail
    assert sent["from"] == "organizer@a.example"
    assert sent["message"]["attachments"] == [attachment]


# -- meetings changed by hand in Teams ------------------------------------------------------------


@pytest.fixture
def wire_meeting(wire):
    emulator, _ = wire
    organizer = emulator.add_user(DIRECTORY, "organizer@a.example", "Organizer")
    client = make_client(emulator)
    meeting = client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)
    return emulator, client, organizer, meeting


def test_a_meeting_deleted_by_hand_is_gone_for_graph_without_a_call(wire_meeting):
    emulator, client, organizer, meeting = wire_meeting
    calls = dict(emulator.calls)

    emulator.delete_meeting_by_hand(meeting.id)

    assert emulator.calls == calls
    assert emulator.live_meetings() == []
    with pytest.raises(GraphNotFoundError):
        client.get_meeting(PROFILE, organizer.id, meeting.id, CTX)
    with pytest.raises(KeyError):
        emulator.delete_meeting_by_hand(meeting.id)
    with pytest.raises(KeyError):
        emulator.edit_meeting_by_hand(meeting.id, start=START)


def test_a_meeting_moved_by_hand_shows_the_new_times_without_a_call(wire_meeting):
    emulator, client, organizer, meeting = wire_meeting
    calls = dict(emulator.calls)
    patches = emulator.meetings[meeting.id].patches
    new_start = START + timedelta(days=2, hours=3)

    emulator.edit_meeting_by_hand(meeting.id, start=new_start, end=new_start + timedelta(hours=2))
    emulator.edit_meeting_by_hand(meeting.id, end=new_start + timedelta(minutes=30))

    assert emulator.calls == calls
    assert emulator.meetings[meeting.id].patches == patches
    seen = client.get_meeting(PROFILE, organizer.id, meeting.id, CTX)
    assert seen.start == new_start
    assert seen.end == new_start + timedelta(minutes=30)
    assert seen.join_url == meeting.join_url


def test_a_move_by_hand_must_be_a_valid_span_in_a_time_zone(wire_meeting):
    emulator, _, _, meeting = wire_meeting

    with pytest.raises(ValueError, match="after"):
        emulator.edit_meeting_by_hand(meeting.id, end=START)
    with pytest.raises(ValueError, match="time zone"):
        emulator.edit_meeting_by_hand(meeting.id, start=datetime(2026, 12, 24, 12, 0))
    with pytest.raises(KeyError):
        emulator.edit_meeting_by_hand("no-such-meeting", start=START)


def test_meetings_are_changed_by_hand_over_http(emulator, organizer, client):
    meeting = client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)
    url = f"{emulator.base_url}/_emulator/meetings/{quote(meeting.id, safe='')}"
    calls = dict(emulator.calls)

    moved = requests.patch(
        url,
        json={"startDateTime": "2026-12-26T09:00:00Z", "endDateTime": "2026-12-26T10:00:00Z"},
        timeout=5,
    )
    bad = requests.patch(url, json={"startDateTime": "2026-12-26T11:00:00Z"}, timeout=5)
    unknown_field = requests.patch(url, json={"subject": "x"}, timeout=5)
    deleted = requests.delete(url, timeout=5)
    again = requests.delete(url, timeout=5)

    assert moved.status_code == 200
    assert moved.json()["startDateTime"] == "2026-12-26T09:00:00.0000000Z"
    assert moved.json()["endDateTime"] == "2026-12-26T10:00:00.0000000Z"
    assert bad.status_code == 400
    assert unknown_field.status_code == 400
    assert deleted.status_code == 204
    assert again.status_code == 404
    assert emulator.calls == calls
    with pytest.raises(GraphNotFoundError):
        client.get_meeting(PROFILE, organizer.id, meeting.id, CTX)


# -- attendance reports ---------------------------------------------------------------------


def test_a_report_appears_only_once_published_and_is_read_with_its_records(
    emulator, organizer, client
):
    # GIVEN a meeting a signed-in student and a guest attended, twice for the student
    meeting = client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)
    emulator.attend(meeting.id, "student@example.com", START, START + timedelta(minutes=20))
    emulator.attend(
        meeting.id, "student@example.com", START + timedelta(minutes=25), START + timedelta(hours=1)
    )
    emulator.attend(meeting.id, "Guest Gina", START, START + timedelta(minutes=5))

    # THEN no report is listed before it is published
    assert client.list_attendance_reports(PROFILE, organizer.id, meeting.id, CTX) == []

    # WHEN it is published, THEN it is listed and read with its records
    report_id = emulator.publish_attendance(meeting.id)
    assert client.list_attendance_reports(PROFILE, organizer.id, meeting.id, CTX) == [report_id]
    report = client.get_attendance_report(PROFILE, organizer.id, meeting.id, report_id, CTX)
    assert report.report_id == report_id
    (student, guest) = report.records
    assert (student.email, student.total_seconds, len(student.intervals)) == (
        "student@example.com",
        55 * 60,
        2,
    )
    assert student.intervals[0].join == START
    assert student.intervals[1].leave == START + timedelta(hours=1)
    assert (guest.email, guest.display_name, guest.total_seconds) == (None, "Guest Gina", 300)
    assert (report.meeting_start, report.meeting_end) == (START, START + timedelta(hours=1))
    assert emulator.calls["listAttendanceReports"] == 2
    assert emulator.calls["getAttendanceReport"] == 1


def test_report_calls_fail_like_every_other_call(emulator, organizer, client):
    meeting = client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)
    emulator.add_fault(Fault(operation="listAttendanceReports", status=429, retry_after="2"))

    with pytest.raises(GraphThrottledError) as throttled:
        client.list_attendance_reports(PROFILE, organizer.id, meeting.id, CTX)

    assert throttled.value.retry_after == 2.0
    emulator.clear_faults()
    with pytest.raises(GraphNotFoundError):
        client.get_attendance_report(PROFILE, organizer.id, meeting.id, "no-such-report", CTX)
    with pytest.raises(GraphNotFoundError):
        client.list_attendance_reports(PROFILE, organizer.id, "no-such-meeting", CTX)


def test_without_the_artifact_permission_reports_are_forbidden_but_not_for_want_of_a_policy(
    emulator, organizer, client
):
    meeting = client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)
    emulator.artifacts_granted = False

    with pytest.raises(GraphForbiddenError) as forbidden:
        client.list_attendance_reports(PROFILE, organizer.id, meeting.id, CTX)

    assert not isinstance(forbidden.value, GraphPolicyMissingError)
    assert forbidden.value.status == 403
    # The meeting itself is still there for the app: only its artifacts are out of reach.
    assert client.get_meeting(PROFILE, organizer.id, meeting.id, CTX).id == meeting.id


def test_attendance_is_controlled_over_http(emulator, organizer, client):
    meeting = client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)
    url = f"{emulator.base_url}/_emulator/meetings/{quote(meeting.id, safe='')}/attendance"
    calls = dict(emulator.calls)

    attended = requests.post(
        url,
        json={"who": "Guest Gina", "join": "2026-12-24T13:00:00Z", "leave": "2026-12-24T13:30:00Z"},
        timeout=5,
    )
    backwards = requests.post(
        url,
        json={"who": "x@example.com", "join": "2026-12-24T14:00:00Z", "leave": "2026-12-24T13:00Z"},
        timeout=5,
    )
    published = requests.post(f"{url}/publish", timeout=5)
    nothing_new = requests.post(f"{url}/publish", timeout=5)
    unknown = requests.post(
        f"{emulator.base_url}/_emulator/meetings/nope/attendance/publish", timeout=5
    )
    switched = requests.post(
        f"{emulator.base_url}/_emulator/artifacts", json={"granted": False}, timeout=5
    )

    assert attended.status_code == 204
    assert backwards.status_code == 400
    assert published.status_code == 201
    assert nothing_new.status_code == 400
    assert unknown.status_code == 404
    assert switched.status_code == 204
    assert emulator.artifacts_granted is False
    assert emulator.calls == calls  # control calls are not Graph calls
    (report,) = emulator.meetings[meeting.id].reports
    assert report["id"] == published.json()["reportId"]
    assert report["attendanceRecords"][0]["totalAttendanceInSeconds"] == 1800
