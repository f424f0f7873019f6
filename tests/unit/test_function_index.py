"""function_app indexes as the host will index it: unique names, the expected triggers."""

from __future__ import annotations

import function_app

EXPECTED = {
    "health": ("httpTrigger", "v1/health", {"GET"}),
    "bookings_create": ("httpTrigger", "v1/bookings", {"POST"}),
    "bookings_list": ("httpTrigger", "v1/bookings", {"GET"}),
    "bookings_get": ("httpTrigger", "v1/bookings/{id}", {"GET"}),
    "bookings_approve": ("httpTrigger", "v1/bookings/{id}/approve", {"POST"}),
    "bookings_decline": ("httpTrigger", "v1/bookings/{id}/decline", {"POST"}),
    "bookings_cancel": ("httpTrigger", "v1/bookings/{id}/cancel", {"POST"}),
    "bookings_reschedule": ("httpTrigger", "v1/bookings/{id}/reschedule", {"POST"}),
    "bookings_generate_meeting": ("httpTrigger", "v1/bookings/{id}/generate-meeting", {"POST"}),
    "bookings_retry_meeting": ("httpTrigger", "v1/bookings/{id}/retry-meeting", {"POST"}),
    "teams_capability": ("httpTrigger", "v1/teams-meetings/capability", {"GET"}),
    "teams_settings_get": ("httpTrigger", "v1/teams-meetings/settings", {"GET"}),
    "teams_settings_put": ("httpTrigger", "v1/teams-meetings/settings", {"PUT"}),
    "teams_verify_organizer": ("httpTrigger", "v1/teams-meetings/verify-organizer", {"POST"}),
    "meeting_ops": ("queueTrigger", None, set()),
    "meeting_ops_poison": ("queueTrigger", None, set()),
    "reconcile": ("timerTrigger", None, set()),
    "payments_webhook": ("httpTrigger", "v1/payments/webhook", {"POST"}),
    "bookings_calendar": ("httpTrigger", "v1/bookings/{id}/calendar.ics", {"GET"}),
    "mail": ("queueTrigger", None, set()),
    "mail_poison": ("queueTrigger", None, set()),
    "mail_sweep": ("timerTrigger", None, set()),
    "attendance": ("queueTrigger", None, set()),
    "attendance_poison": ("queueTrigger", None, set()),
    "bookings_complete": ("httpTrigger", "v1/bookings/{id}/complete", {"POST"}),
    "tutor_preferences_get": ("httpTrigger", "v1/tutors/{id}/meeting-preferences", {"GET"}),
    "tutor_preferences_put": ("httpTrigger", "v1/tutors/{id}/meeting-preferences", {"PUT"}),
}


def index():
    # The library refuses to index one app twice, so use the host's cached index when present.
    functions = getattr(function_app.app, "_local_host_index", None)
    if functions is None:
        functions = list(function_app.app.get_functions())
        function_app.app._local_host_index = functions  # type: ignore[attr-defined]
    return functions


def test_function_names_are_unique():
    names = [fn.get_function_name() for fn in index()]

    assert len(names) == len(set(names))


def test_every_function_has_the_expected_trigger():
    found = {}
    for fn in index():
        trigger = fn.get_trigger().get_dict_repr()
        methods = {str(getattr(m, "value", m)) for m in trigger.get("methods") or []}
        found[fn.get_function_name()] = (trigger["type"], trigger.get("route"), methods)

    assert found == EXPECTED


def test_http_routes_have_no_api_prefix_of_their_own():
    # The host adds extensions.http.routePrefix ("api"); a route starting with it would double it.
    for fn in index():
        route = fn.get_trigger().get_dict_repr().get("route") or ""
        assert not route.startswith("api/")


def test_queues_and_timer_are_bound_to_their_names_and_setting():
    triggers = {fn.get_function_name(): fn.get_trigger().get_dict_repr() for fn in index()}

    assert triggers["meeting_ops"]["queueName"] == "meeting-ops"
    assert triggers["meeting_ops_poison"]["queueName"] == "meeting-ops-poison"
    assert triggers["reconcile"]["schedule"] == "%RECONCILE_SCHEDULE%"
    assert triggers["mail"]["queueName"] == "mail"
    assert triggers["mail_poison"]["queueName"] == "mail-poison"
    assert triggers["mail_sweep"]["schedule"] == "%RECONCILE_SCHEDULE%"
    assert triggers["attendance"]["queueName"] == "attendance"
    assert triggers["attendance_poison"]["queueName"] == "attendance-poison"


def test_a_malformed_application_insights_setting_leaves_every_function_indexed():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "garbage",
    }
    indexed = subprocess.run(
        [sys.executable, "-c", "import function_app; print(len(function_app.app.get_functions()))"],
        env=env,
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
    )

    assert indexed.returncode == 0, indexed.stderr
    assert int(indexed.stdout.strip()) >= 20
    assert "telemetry_unavailable" in indexed.stderr
