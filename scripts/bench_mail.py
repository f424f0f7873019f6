"""What one e-mail costs to make, and what the mail path does under load.

1. Rendering: the approval e-mail (text + HTML through jinja2), its invite (icalendar) and the
   MIME message, for `n` bookings: median and 95th percentile microseconds per e-mail, and sizes.
2. Delivery: `bookings` approvals through the real worker on in-memory storage, with Graph
   sendMail at the wire (the emulator through `responses`) failing a `--fail` share of calls
   with 503: e-mails sent, sendMail calls, and e-mails per recipient and change (must be 1).
3. Pacing: how long the pacer makes 60 sends from one mailbox wait at 30 a minute (simulated
   clock; the seconds a worker would wait, not wall time).

    .venv/bin/python scripts/bench_mail.py [--n 500] [--bookings 50] [--fail 0.3]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localdev.graph_emulator import Fault
from shared.domain.booking import BookingStatus, MeetingState
from shared.domain.notices import Notice, NoticeKind
from shared.mail.ics import Organizer, invite
from shared.mail.messages import OutgoingMail, to_mime
from shared.mail.rendering import MailRenderer, recipients
from shared.mail.transports import SendPacer
from shared.services import bookings as use_cases
from shared.services.bookings import Approval
from tests.builders import a_booking
from tests.mail_world import TENANT, mail_world
from tests.unit.test_mail_delivery import STAFF

NOW = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)
JOIN = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0?context=%7b%7d"


def rendering(n: int) -> dict[str, float]:
    renderer = MailRenderer()
    booking = a_booking(
        status=BookingStatus.CONFIRMED,
        meeting=MeetingState(wanted=True, meeting_id="m1", join_url=JOIN),
    )
    notice = Notice(NoticeKind.APPROVED, 1, 0, NOW)
    person = recipients(booking)[0]
    timings: list[float] = []
    size = ics_size = 0
    for _ in range(n):
        started = time.perf_counter()
        rendered = renderer.render(booking, notice, person, "Tenant A")
        ics = invite(
            booking, kind=notice.kind, sequence=0, organizer=Organizer("o@a.example"), now=NOW
        )
        mime = to_mime(
            OutgoingMail(
                "k",
                "o@a.example",
                "A",
                person.email,
                person.name,
                rendered.subject,
                rendered.text,
                rendered.html,
                ics,
                "REQUEST",
                NOW,
            )
        ).as_bytes()
        timings.append((time.perf_counter() - started) * 1e6)
        size, ics_size = len(mime), len(ics)
    timings.sort()
    print(f"rendering: {n} approval e-mails (text + HTML + invite + MIME)")
    median, p95 = statistics.median(timings), timings[int(0.95 * n)]
    print(f"  median {median:.0f} us, p95 {p95:.0f} us per e-mail")
    print(f"  sizes: message {size} bytes, invite {ics_size} bytes")
    return {"median_us": median, "p95_us": p95, "message_bytes": size, "invite_bytes": ics_size}


def delivery(bookings: int, fail: float) -> dict[str, float]:
    with mail_world() as mw:
        mw.world.emulator.add_fault(Fault(operation="sendMail", status=503, share=fail))
        ids = []
        for i in range(bookings):
            start = mw.world.clock.now + timedelta(days=3, hours=i)
            booking = a_booking(tenant_id=TENANT, start=start, end=start + timedelta(hours=1))
            ids.append(mw.world.bookings.add(booking).booking_id)
        started = time.perf_counter()
        for booking_id in ids:
            use_cases.approve_booking(STAFF, booking_id, Approval(), mw.deps)
        handled = mw.drain(rounds=100 * bookings)
        wall = time.perf_counter() - started
        per: Counter[tuple[str, str, int]] = Counter()
        for m in mw.world.emulator.mail:
            raw = base64.b64decode(m["message"]["attachments"][0]["contentBytes"])
            event: Any = icalendar.Calendar.from_ical(raw).walk("VEVENT")[0]
            to = m["message"]["toRecipients"][0]["emailAddress"]["address"]
            per[(to, str(event["UID"]), int(event["SEQUENCE"]))] += 1
        print(f"delivery: {bookings} approvals, sendMail failing {fail:.0%} of calls with 503")
        print(
            f"  e-mails sent {len(mw.world.emulator.mail)} (expected {2 * bookings}), "
            f"sendMail calls {mw.world.emulator.calls['sendMail']}, mail messages handled {handled}"
        )
        print(
            f"  e-mails per recipient and change: max {max(per.values())}, min {min(per.values())}"
        )
        print(f"  wall time {wall:.2f} s (simulated clock: retries and sleeps cost no real time)")
        return {
            "sent": len(mw.world.emulator.mail),
            "expected": 2 * bookings,
            "send_calls": mw.world.emulator.calls["sendMail"],
            "max_per_change": max(per.values()),
            "min_per_change": min(per.values()),
            "wall_s": wall,
        }


def pacing() -> dict[str, float]:
    clock = [0.0]
    pacer = SendPacer(30, clock=lambda: clock[0])
    waited = 0.0
    for _ in range(60):
        pause = pacer.take("organizer@a.example")
        while pause:
            clock[0] += pause
            waited += pause
            pause = pacer.take("organizer@a.example")
    print(
        f"pacing: 60 sends from one mailbox at 30/min finish at t={clock[0]:.1f} s "
        f"(waited {waited:.1f} s in all; none refused)"
    )
    return {"sends": 60, "finished_at_s": clock[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--bookings", type=int, default=50)
    parser.add_argument("--fail", type=float, default=0.3)
    args = parser.parse_args()
    rendering(args.n)
    delivery(args.bookings, args.fail)
    pacing()


if __name__ == "__main__":
    main()
