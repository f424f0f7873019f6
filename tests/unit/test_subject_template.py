"""A tenant's subject template is data: named fields from a fixed list, nothing that runs code
or grows without bound. Refused when saved; a stored one that is not valid any more gives the
default subject, and the meeting is made all the same."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.auth.principal import Principal, Role
from shared.domain.audit import AuditEvent
from shared.domain.booking import MeetingStatus, Participant, ParticipantRole
from shared.domain.subject import (
    FIELDS,
    MAX_SUBJECT_CHARS,
    MAX_TEMPLATE_CHARS,
    SubjectTemplate,
    TemplateError,
)
from shared.services import bookings as use_cases
from shared.services.bookings import Approval
from tests.builders import a_booking
from tests.memory_world import TENANT, memory_world

STAFF = Principal("staff-1", TENANT, frozenset({Role.STAFF}))

BOOKING = a_booking(
    tenant_id=TENANT,
    subject="Maths",
    level="GCSE",
    start=datetime(2026, 12, 3, 10, 0, tzinfo=UTC),
    end=datetime(2026, 12, 3, 11, 0, tzinfo=UTC),
    time_zone="Europe/London",
    participants=(
        Participant("student-1", ParticipantRole.STUDENT, "sam@example.com", "Sam Student"),
        Participant("tutor-1", ParticipantRole.TUTOR, "tia@example.com", "Tia Tutor"),
    ),
)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{subject} {level} Lesson", "Maths GCSE Lesson"),
        ("Tutoring: {subject}", "Tutoring: Maths"),
        ("{subject} with {tutor} for {student}", "Maths with Tia Tutor for Sam Student"),
        ("{subject} on {date} at {time}", "Maths on 2026-12-03 at 10:00"),
        ("Lesson", "Lesson"),
        ("{level}", "GCSE"),
        ("  {subject}   {level}  ", "Maths GCSE"),
    ],
)
def test_a_template_fills_its_named_fields(template, expected):
    assert SubjectTemplate.parse(template).render(BOOKING) == expected


def test_a_template_giving_nothing_falls_back_to_the_booking_subject():
    booking = replace(BOOKING, level=None)
    assert SubjectTemplate.parse("{level}").render(booking) == "Maths"


@pytest.mark.parametrize(
    ("template", "names"),
    [
        ("{x.y} Lesson", "unknown field {x.y}"),
        ("{0}", "unknown field {0}"),
        ("{}", "unknown field {}"),
        ("{subject!r}", "unknown field {subject!r}"),
        ("{subject:x>999999999}", "unknown field {subject:x>999999999}"),
        ("{subject.__class__}", "unknown field"),
        ("{subject[0]}", "unknown field"),
        ("{{subject}}", "brace"),
        ("{{", "brace"),
        ("}", "brace"),
        ("{subject", "brace"),
        ("{teacher}", "unknown field {teacher}"),
        ("x" * 10_000, "10000 characters"),
        ("{subject}\u0000", "control"),
        ("{subject}\n{level}", "control"),
        ("Lesson\u202e", "control"),
        ("", "empty"),
        ("   ", "empty"),
    ],
)
def test_templates_that_are_not_data_are_refused_naming_the_problem(template, names):
    with pytest.raises(TemplateError) as refused:
        SubjectTemplate.parse(template)
    assert names in str(refused.value)


# Any text, with braces, field names and format-string syntax mixed in often.
_pieces = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["{", "}", "{{", "}}", ":", "!r", ">", ".", "[0]", "999999999", *FIELDS]),
    st.sampled_from([f"{{{f}}}" for f in FIELDS]),
)
_templates = st.lists(_pieces, max_size=20).map("".join)


@settings(max_examples=400, deadline=None)
@given(_templates, st.text(min_size=1, max_size=200), st.text(max_size=100))
def test_any_text_is_either_refused_or_renders_within_the_bound(template, subject, level):
    booking = replace(BOOKING, subject=subject, level=level)
    try:
        parsed = SubjectTemplate.parse(template)
    except TemplateError:
        return
    rendered = parsed.render(booking)
    assert len(template) <= MAX_TEMPLATE_CHARS
    assert 0 < len(rendered) <= MAX_SUBJECT_CHARS or not subject.strip()
    assert len(rendered) <= MAX_SUBJECT_CHARS


def test_a_stored_template_that_is_refused_now_gives_the_default_subject(caplog):
    with memory_world() as world:
        # GIVEN a tenant whose template was stored before templates were checked
        tenant = world.tenants.get(TENANT)
        options = replace(tenant.meeting_options, subject_template="{subject:x>999999999}")
        world.tenants.update(replace(tenant, meeting_options=options))
        start = world.clock.now + timedelta(days=3)
        booking = world.bookings.add(
            replace(BOOKING, start=start, end=start + timedelta(hours=1), booking_id="b-tpl")
        )

        # WHEN a booking is approved
        with caplog.at_level(logging.WARNING, logger="meetings.steps"):
            use_cases.approve_booking(STAFF, booking.booking_id, Approval(), world.deps)

        # THEN the meeting is made, with the default subject; a warning and an audit record say why
        stored = world.booking(booking.booking_id)
        assert stored.meeting.status is MeetingStatus.CREATED
        (meeting,) = world.emulator.live_meetings()
        assert meeting.subject == "Maths GCSE Lesson"
        warnings = [
            json.loads(r.getMessage())
            for r in caplog.records
            if "subject_template" in r.getMessage()
        ]
        assert {w["event"] for w in warnings} == {"subject_template_refused"}
        events = [r.event for r in world.audit.list_for_booking(TENANT, booking.booking_id)]
        assert AuditEvent.SUBJECT_TEMPLATE_REFUSED in events
        assert AuditEvent.MEETING_ATTACHED in events
