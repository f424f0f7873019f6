"""List, show and replay poisoned meeting and mail work, after the cause is fixed.

    .venv/bin/python -m scripts.poison list [--queue meeting|mail]
    .venv/bin/python -m scripts.poison show MESSAGE_ID [--queue meeting|mail]
    .venv/bin/python -m scripts.poison replay MESSAGE_ID [--queue meeting|mail]
    .venv/bin/python -m scripts.poison replay --all [--queue meeting|mail]
    .venv/bin/python -m scripts.poison discard MESSAGE_ID [--queue meeting|mail]

Poisoned messages wait in `meeting-ops-parked` and `mail-parked` once the poison queues'
consumers recorded them (and in `meeting-ops-poison` and `mail-poison` until then). A replay
puts the booking's work back on `meeting-ops` or `mail`, and deletes the poisoned message only
once that succeeded; a meeting's work is first asked for afresh, as `POST
/api/v1/bookings/{id}/retry-meeting` does, so that a `failed` meeting is tried again. Storage
comes from `AzureWebJobsStorage` (or `AzureWebJobsStorage__accountName` with a managed
identity), as for the function app. `discard` deletes a message without replaying it (one that
names no booking, say). See docs/operations.md ("Poisoned work").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

# Run as a file (python scripts/poison.py), the repository root is not on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.meeting_metrics import CommandError, storage_from_env
from shared.services.replay import PoisonReplay, ReplayError, read_work
from shared.settings import StorageSettings
from shared.storage.bookings import TableBookingRepository
from shared.storage.errors import StorageError
from shared.storage.poisoned import WORK_KINDS, HeldMessage, PoisonedMessages
from shared.storage.queues import StorageWorkQueue, WorkQueue
from shared.storage.tables import Tables, make_table_service


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "replay" and (args.message_id is None) == (not args.all):
        parser.error("replay takes a MESSAGE_ID or --all")
    try:
        storage = storage_from_env(os.environ)
        kinds = [k for k in WORK_KINDS if args.queue in (None, k.name)]
        sources = [PoisonedMessages(storage, kind) for kind in kinds]
        if args.command == "list":
            return _list(sources)
        if args.command == "show":
            return _show(sources, args.message_id)
        if args.command == "discard":
            return _discard(sources, args.message_id)
        return _replay(storage, sources, None if args.all else args.message_id)
    except (CommandError, StorageError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poison", description="List, show and replay poisoned meeting and mail work."
    )
    queue = argparse.ArgumentParser(add_help=False)
    queue.add_argument(
        "--queue", choices=[k.name for k in WORK_KINDS], help="only this kind (default: both)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", parents=[queue], help="the poisoned messages, one a line")
    show = commands.add_parser("show", parents=[queue], help="one message in full")
    show.add_argument("message_id", metavar="MESSAGE_ID")
    replay = commands.add_parser(
        "replay", parents=[queue], help="put the work back on its queue, then delete the message"
    )
    replay.add_argument("message_id", metavar="MESSAGE_ID", nargs="?")
    replay.add_argument("--all", action="store_true", help="every poisoned message")
    discard = commands.add_parser(
        "discard", parents=[queue], help="delete one message without replaying it"
    )
    discard.add_argument("message_id", metavar="MESSAGE_ID")
    return parser


def _discard(sources: list[PoisonedMessages], message_id: str) -> int:
    for source in sources:
        with source.taken(message_id) as taken:
            for item in taken:
                item.delete()
                print(f"discarded {message_id} ({_what(item.held)})")
                return 0
    print(f"No poisoned message {message_id} (list shows the ids).", file=sys.stderr)
    return 1


def _list(sources: list[PoisonedMessages]) -> int:
    held = [m for source in sources for m in source.peek()]
    if not held:
        print("No poisoned messages.")
        return 0
    print(f"{'ID':<36}  {'QUEUE':<18}  {'INSERTED':<20}  WORK")
    for message in held:
        when = _when(message)
        print(f"{message.message_id:<36}  {message.queue:<18}  {when:<20}  {_what(message)}")
    if any(sum(m.queue == q for m in held) >= 32 for q in {m.queue for m in held}):
        print("(Storage shows the first 32 of each queue; replay --all takes them all.)")
    return 0


def _show(sources: list[PoisonedMessages], message_id: str) -> int:
    found = [m for source in sources for m in source.peek() if m.message_id == message_id]
    if not found:
        print(f"No poisoned message {message_id} (list shows the ids).", file=sys.stderr)
        return 1
    message = found[0]
    try:
        work: object = read_work(message).as_dict()
    except ReplayError as exc:
        work = str(exc)
    print(
        json.dumps(
            {
                "id": message.message_id,
                "kind": message.kind.name,
                "queue": message.queue,
                "insertedOn": _when(message),
                "dequeueCount": message.dequeue_count,
                "work": work,
                "text": message.text,
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    return 0


def _replay(
    storage: StorageSettings, sources: list[PoisonedMessages], message_id: str | None
) -> int:
    bookings = TableBookingRepository(Tables(make_table_service(storage)))
    queues: dict[str, WorkQueue] = {
        kind.name: StorageWorkQueue(storage, queue=kind.queue, poison=kind.poison)
        for kind in WORK_KINDS
    }
    replay = PoisonReplay(bookings, queues, lambda: datetime.now(UTC))
    replayed = refused = 0
    for source in sources:
        done, failed = replay.replay_all(source, message_id)
        for item in done:
            print(f"replayed {item.held.message_id} ({_what(item.held)}): {item.note}")
        for held, why in failed:
            print(f"not replayed {held.message_id}: {why}", file=sys.stderr)
        replayed += len(done)
        refused += len(failed)
        if message_id is not None and (done or failed):
            break
    if message_id is not None and not (replayed or refused):
        print(f"No poisoned message {message_id} (list shows the ids).", file=sys.stderr)
        return 1
    if message_id is None and not (replayed or refused):
        print("No poisoned messages.")
    return 1 if refused else 0


def _when(message: HeldMessage) -> str:
    if message.inserted_on is None:
        return "-"
    return message.inserted_on.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _what(message: HeldMessage) -> str:
    try:
        work = read_work(message)
    except ReplayError as exc:
        return str(exc)
    why = work.reason or "host_poisoned"
    detail = ", ".join(
        part
        for part in (
            work.step,
            str(work.graph_status) if work.graph_status else None,
            work.error_code,
            f"notice {work.notice}" if work.notice else None,
        )
        if part
    )
    return f"{message.kind.name} tenant={work.tenant_id} booking={work.booking_id} {why}" + (
        f" ({detail})" if detail else ""
    )


if __name__ == "__main__":
    sys.exit(main())
