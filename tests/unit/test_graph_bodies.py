"""Graph request bodies follow Graph's documentation and the meeting options of SPEC §2."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.domain.tenant import (
    AllowedPresenters,
    LobbyBypassScope,
    MeetingChatMode,
    MeetingOptions,
)
from shared.graph.bodies import (
    Attendee,
    MeetingRequest,
    create_or_get_body,
    graph_time,
    options_body,
    options_match,
    reschedule_body,
)

START = datetime(2025, 12, 24, 13, 0, tzinfo=UTC)


def test_create_or_get_carries_only_the_fields_graph_accepts():
    request = MeetingRequest(
        external_id="tenant-a:b1",
        subject="Computer Science A-Level Lesson",
        start=START,
        end=START + timedelta(hours=1),
        attendees=(Attendee("student@example.com", "Sam"), Attendee("tutor@example.com")),
    )

    body = create_or_get_body(request)

    assert body == {
        "externalId": "tenant-a:b1",
        "subject": "Computer Science A-Level Lesson",
        "startDateTime": "2025-12-24T13:00:00Z",
        "endDateTime": "2025-12-24T14:00:00Z",
        "participants": {
            "attendees": [
                {
                    "upn": "student@example.com",
                    "role": "attendee",
                    "identity": {"user": {"displayName": "Sam"}},
                },
                {"upn": "tutor@example.com", "role": "attendee"},
            ]
        },
    }
    assert set(body) <= {
        "externalId",
        "subject",
        "startDateTime",
        "endDateTime",
        "participants",
        "chatInfo",
    }


def test_times_are_sent_in_utc_whatever_offset_they_came_with():
    new_york = timezone(timedelta(hours=-5))

    assert graph_time(datetime(2025, 12, 24, 8, 0, tzinfo=new_york)) == "2025-12-24T13:00:00Z"


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="offset"):
        graph_time(datetime(2025, 12, 24, 8, 0))


def test_a_meeting_must_end_after_it_starts():
    with pytest.raises(ValueError, match="end after"):
        create_or_get_body(MeetingRequest("x", "s", START, START))
    with pytest.raises(ValueError, match="end after"):
        reschedule_body(START, START - timedelta(minutes=1))


def test_default_options_are_seed_000s_lobby_bypass_for_everyone():
    assert options_body(MeetingOptions()) == {
        "lobbyBypassSettings": {"scope": "everyone", "isDialInBypassEnabled": True},
        "allowedPresenters": "everyone",
        "allowMeetingChat": "enabled",
        "isEntryExitAnnounced": False,
        "recordAutomatically": False,
    }


def test_options_match_detects_a_meeting_that_still_has_graph_defaults():
    graph_default = {
        "lobbyBypassSettings": {"scope": "organization", "isDialInBypassEnabled": False},
        "allowedPresenters": "everyone",
        "allowMeetingChat": "enabled",
        "isEntryExitAnnounced": True,
    }
    wanted = MeetingOptions()

    assert not options_match(graph_default, wanted)
    assert options_match(options_body(wanted), wanted)
    assert not options_match(
        options_body(wanted), MeetingOptions(allow_meeting_chat=MeetingChatMode.DISABLED)
    )
    assert not options_match(
        options_body(wanted), MeetingOptions(lobby_bypass_scope=LobbyBypassScope.ORGANIZER)
    )


def test_reschedule_sends_start_and_end_together_and_subject_only_when_given():
    assert reschedule_body(START, START + timedelta(hours=2)) == {
        "startDateTime": "2025-12-24T13:00:00Z",
        "endDateTime": "2025-12-24T15:00:00Z",
    }
    assert reschedule_body(START, START + timedelta(hours=1), "New")["subject"] == "New"


BY_ROLE = MeetingOptions(allowed_presenters=AllowedPresenters.ROLE_IS_PRESENTER)
PEOPLE = (Attendee("student@example.com"), Attendee("tutor@example.com", presenter=True))


def test_presenters_by_role_send_every_attendee_with_their_role_in_the_options_patch():
    body = options_body(BY_ROLE, PEOPLE)
    assert body["allowedPresenters"] == "roleIsPresenter"
    assert body["participants"] == {
        "attendees": [
            {"upn": "student@example.com", "role": "attendee"},
            {"upn": "tutor@example.com", "role": "presenter"},
        ]
    }


def test_other_presenter_options_send_no_participants():
    assert "participants" not in options_body(MeetingOptions(), PEOPLE)
    assert "participants" not in options_body(BY_ROLE)


def test_a_meeting_whose_tutor_is_not_a_presenter_does_not_match_presenters_by_role():
    meeting = options_body(BY_ROLE)
    as_sent = {**meeting, **options_body(BY_ROLE, PEOPLE)}
    downgraded = {
        **meeting,
        "participants": {
            "attendees": [
                {"upn": "Student@example.com", "role": "attendee"},
                {"upn": "tutor@example.com", "role": "attendee"},
            ]
        },
    }
    assert options_match(as_sent, BY_ROLE, PEOPLE)
    assert not options_match(downgraded, BY_ROLE, PEOPLE)
    assert options_match(downgraded, BY_ROLE)  # without attendees, roles are not compared
