"""The function app: creates the app and registers one blueprint per `functions/` module.

Indexing runs at every cold start, so it imports the routes and triggers and nothing else: a
`functions/` module imports azure.functions, the response wrappers and queue names at its top,
and each handler imports the use cases it calls (and through them the SDKs) on its first call.
tests/unit/test_cold_start.py lists what indexing must not import.
"""

import azure.functions as func

from functions import (
    attendance,
    bookings,
    calendar,
    health,
    mail,
    meeting_ops,
    payments,
    reconcile,
    teams_meetings,
    tutors,
)
from shared import telemetry
from shared.bootstrap import report_settings

# A missing, malformed or unresolved setting is logged once here and answered by health and by
# every function as 503 `misconfigured`: never an app that indexes nothing.
report_settings()
# Traces and metrics to Application Insights when APPLICATIONINSIGHTS_CONNECTION_STRING is set
# (nothing of OpenTelemetry is imported otherwise).
telemetry.configure()

# Keys are not how callers authenticate: every route but health and the Stripe webhook
# (which checks Stripe's signature) validates a bearer JWT.
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(health.bp)
app.register_functions(bookings.bp)
app.register_functions(teams_meetings.bp)
app.register_functions(meeting_ops.bp)
app.register_functions(payments.bp)
app.register_functions(reconcile.bp)
app.register_functions(calendar.bp)
app.register_functions(mail.bp)
app.register_functions(attendance.bp)
app.register_functions(tutors.bp)
