"""The app's queue names. The queue triggers in `functions/` bind to them when the app is
indexed, so they live apart from the queue clients, which the first message needs, not indexing."""

MEETING_OPS_QUEUE = "meeting-ops"
MEETING_OPS_POISON_QUEUE = "meeting-ops-poison"
MAIL_QUEUE = "mail"
MAIL_POISON_QUEUE = "mail-poison"
ATTENDANCE_QUEUE = "attendance"
ATTENDANCE_POISON_QUEUE = "attendance-poison"
