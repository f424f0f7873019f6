"""Listing by index: a page of bookings costs what the page holds, pages chain to every booking
exactly once in a stable order, and the indexes never go stale (a save deletes the rows its
previous version had). The contract runs on Azurite and on the in-memory repository; the costs
are counted on Azurite, at the transport (requests) and by the repository (entities read)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from shared.domain.booking import Booking, BookingStatus, MeetingState, Participant
from shared.domain.booking import ParticipantRole as Role
from shared.settings import StorageSettings
from shared.storage.bookings import (
    BookingQuery,
    TableBookingRepository,
    booking_to_entity,
    rows_for,
)
from shared.storage.memory import InMemoryBookingRepository
from shared.storage.tables import Tables, make_table_service
from shared.storage.wire import WIRE
from tests.builders import T0, a_booking

pytestmark = pytest.mark.integration

TENANT = "tenant-a"
STATUSES = (BookingStatus.PENDING, BookingStatus.CONFIRMED, BookingStatus.CANCELLED)


@pytest.fixture(params=["table", "memory"])
def bookings(request):
    if request.param == "memory":
        return InMemoryBookingRepository()
    return TableBookingRepository(request.getfixturevalue("tables"))


def a_listed_booking(i: int, **changes: Any) -> Booking:
    """Booking `i`: three to each hour (equal starts on purpose), statuses in turn, student
    `i % 4` and tutor-1."""
    start = T0 + timedelta(hours=i // 3)
    listed: dict[str, Any] = {
        "booking_id": f"b{i:05d}",
        "status": STATUSES[i % 3],
        "start": start,
        "end": start + timedelta(hours=1),
        "participants": (
            Participant(f"student-{i % 4}", Role.STUDENT, "s@example.com"),
            Participant("tutor-1", Role.TUTOR, "t@example.com"),
        ),
    }
    return a_booking(**{**listed, **changes})


def chain(list_page, query: BookingQuery) -> list[list[str]]:
    """Every page's booking ids, following each page to the next."""
    pages = []
    while True:
        page = list_page(query)
        pages.append([b.booking_id for b in page.bookings])
        if page.next_after is None:
            return pages
        query = replace(query, after=page.next_after)


def expected(added: list[Booking], keep) -> list[str]:
    return [b.booking_id for b in sorted(added, key=lambda b: (b.start, b.booking_id)) if keep(b)]


@pytest.mark.parametrize(
    ("filters", "keep"),
    [
        ({}, lambda b: True),
        ({"status": BookingStatus.CONFIRMED}, lambda b: b.status is BookingStatus.CONFIRMED),
        (
            {"start_from": T0 + timedelta(hours=2), "start_to": T0 + timedelta(hours=6)},
            lambda b: T0 + timedelta(hours=2) <= b.start < T0 + timedelta(hours=6),
        ),
    ],
    ids=["all", "status", "window"],
)
def test_pages_chain_to_every_booking_exactly_once_in_start_order(bookings, filters, keep):
    # GIVEN 26 bookings, three to each start, in another order than they list
    added = [bookings.add(a_listed_booking(i)) for i in reversed(range(26))]
    bookings.add(a_listed_booking(99, tenant_id="tenant-b"))

    # WHEN the staff list and tutor-1's and student-1's are followed page by page, 4 at a time
    query = BookingQuery(limit=4, **filters)
    staff = chain(lambda q: bookings.list_for_tenant(TENANT, q), query)
    tutor = chain(lambda q: bookings.list_for_participant(TENANT, "tutor-1", q), query)
    student = chain(lambda q: bookings.list_for_participant(TENANT, "student-1", q), query)

    # THEN each lists its bookings once each, by start then id, in full pages but the last
    for pages, wanted in (
        (staff, expected(added, keep)),
        (tutor, expected(added, keep)),
        (student, expected(added, lambda b: keep(b) and int(b.booking_id[1:]) % 4 == 1)),
    ):
        assert [i for page in pages for i in page] == wanted
        assert all(len(page) == 4 for page in pages[:-1])
        assert len(pages[-1]) <= 4
        assert len(pages) == max(1, -(-len(wanted) // 4))


def test_the_last_page_says_there_is_no_next(bookings):
    for i in range(4):
        bookings.add(a_listed_booking(i))

    assert bookings.list_for_tenant(TENANT, BookingQuery(limit=4)).next_after is None
    assert bookings.list_for_tenant(TENANT, BookingQuery(limit=3)).next_after is not None
    assert bookings.list_for_tenant("tenant-b", BookingQuery()).bookings == []


def test_a_listed_booking_reads_as_the_booking_but_cannot_be_saved_unread(bookings):
    booking = bookings.add(a_listed_booking(1, internal_notes="Needs the lab"))

    (listed,) = bookings.list_for_tenant(TENANT, BookingQuery()).bookings

    assert listed == bookings.get(TENANT, booking.booking_id)
    assert listed.version == 1
    assert listed.etag is None  # a copy's ETag would not guard the booking


def test_a_moved_booking_lists_once_at_its_new_start_and_not_at_the_old(bookings):
    # GIVEN a confirmed booking that wants a meeting, moved twice (each save on the last's result)
    booking = bookings.add(
        a_listed_booking(1, status=BookingStatus.CONFIRMED, meeting=MeetingState(wanted=True))
    )
    later = T0 + timedelta(days=2)
    moved = bookings.update(replace(booking, start=later, end=later + timedelta(hours=1)))
    latest = T0 + timedelta(days=4)
    moved = bookings.update(replace(moved, start=latest, end=latest + timedelta(hours=1)))

    # THEN every index shows it once, at its last start only
    def ids(page):
        return [b.booking_id for b in page.bookings]

    everything = BookingQuery()
    assert ids(bookings.list_for_tenant(TENANT, everything)) == [booking.booking_id]
    assert ids(bookings.list_for_participant(TENANT, "tutor-1", everything)) == [booking.booking_id]
    old = BookingQuery(start_from=T0, start_to=T0 + timedelta(days=3))
    assert ids(bookings.list_for_tenant(TENANT, old)) == []
    assert ids(bookings.list_for_participant(TENANT, "student-1", old)) == []
    assert bookings.list_starting_between(TENANT, T0, T0 + timedelta(days=3)) == []
    (listed,) = bookings.list_for_tenant(TENANT, everything).bookings
    assert listed.start == latest
    assert [
        b.booking_id for b in bookings.list_starting_between(TENANT, T0, latest + timedelta(1))
    ] == [booking.booking_id]


def test_a_removed_assignee_and_a_cancelled_meeting_leave_no_index_rows(bookings):
    booking = bookings.add(
        a_listed_booking(
            1,
            status=BookingStatus.CONFIRMED,
            assignee_id="technician-9",
            meeting=MeetingState(wanted=True),
        )
    )

    bookings.update(replace(booking, assignee_id=None, status=BookingStatus.CANCELLED))

    assert bookings.list_for_participant(TENANT, "technician-9", BookingQuery()).bookings == []
    assert bookings.list_starting_between(TENANT, T0, T0 + timedelta(days=1)) == []
    (listed,) = bookings.list_for_tenant(TENANT, BookingQuery()).bookings
    assert listed.status is BookingStatus.CANCELLED


def test_a_table_save_deletes_the_index_rows_its_previous_version_had(tables):
    # GIVEN a booking with a meeting wanted, moved once
    repo = TableBookingRepository(tables)
    booking = repo.add(
        a_listed_booking(1, status=BookingStatus.CONFIRMED, meeting=MeetingState(wanted=True))
    )
    later = T0 + timedelta(days=2)
    moved = repo.update(replace(booking, start=later, end=later + timedelta(hours=1)))

    # THEN besides its "needs work" marker, the partition holds the booking and one row of
    # each index, all at the new start
    rows = sorted(
        e["RowKey"] for e in tables.table("bookings").list_entities() if e["Kind"] != "reconcile"
    )
    stamp = "2026-12-26T13:00:00"
    assert rows == sorted(
        [
            "b|b00001",
            f"t|{stamp}.000000Z|b00001",
            f"u|student-1|{stamp}.000000Z|b00001",
            f"u|tutor-1|{stamp}.000000Z|b00001",
            f"s|{stamp}Z|b00001",
        ]
    )
    assert set(moved.index_rows) == set(rows) - {"b|b00001"}


# -- what a page costs -----------------------------------------------------------------------


def requests_sent() -> int:
    """Storage requests this process has sent, counted at the wire (`shared.storage.wire`)."""
    return sum(WIRE.snapshot().values())


def bulk_load(tables: Tables, count: int) -> None:
    """`count` bookings written as bulk transactions of their rows (each as `add` writes it),
    a few at once."""
    table = tables.table("bookings")
    batches: list[list[dict]] = [[]]
    for i in range(count):
        rows = rows_for(replace(a_listed_booking(i), version=1))
        if len(batches[-1]) + len(rows) > 100:
            batches.append([])
        batches[-1] += rows
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda b: table.submit_transaction([("upsert", r) for r in b]), batches))


def test_a_page_costs_what_it_holds_not_what_the_tenant_has(azurite):
    queries = {
        "staff": (None, BookingQuery(limit=20)),
        "staff, confirmed": (None, BookingQuery(limit=20, status=BookingStatus.CONFIRMED)),
        "staff, one day": (
            None,
            BookingQuery(limit=20, start_from=T0 + timedelta(days=1), start_to=T0 + timedelta(2)),
        ),
        "tutor-1": ("tutor-1", BookingQuery(limit=20)),
        "tutor-1, pending": ("tutor-1", BookingQuery(limit=20, status=BookingStatus.PENDING)),
    }
    cost: dict[int, dict[str, tuple[int, int]]] = {}
    for count in (100, 4000):
        # GIVEN a tenant with `count` bookings
        service = make_table_service(StorageSettings(connection_string=azurite.connection_string))
        tables = Tables(service, prefix=f"t{uuid.uuid4().hex[:10]}")
        bulk_load(tables, count)
        repo = TableBookingRepository(tables)
        cost[count] = {}
        for name, (participant, query) in queries.items():
            # WHEN a page of 20 is listed, and the next page after it
            reads, requests = tables.reads, requests_sent()
            if participant is None:
                page = repo.list_for_tenant(TENANT, query)
                repo.list_for_tenant(TENANT, replace(query, after=page.next_after))
            else:
                page = repo.list_for_participant(TENANT, participant, query)
                repo.list_for_participant(
                    TENANT, participant, replace(query, after=page.next_after)
                )
            assert len(page.bookings) == 20
            cost[count][name] = (tables.reads - reads, requests_sent() - requests)

    # THEN each costs the same at 4,000 bookings as at 100: one request and 21 rows a page
    for name in queries:
        (reads_100, requests_100), (reads_4000, requests_4000) = cost[100][name], cost[4000][name]
        assert reads_4000 <= 1.5 * reads_100, name
        assert requests_4000 <= 1.5 * requests_100, name
        assert (reads_4000, requests_4000) == (42, 2), name


# -- bookings stored before the listing indexes ----------------------------------------------


def test_reindex_lists_bookings_of_the_older_layout_once_and_drops_its_rows(tables):
    # GIVEN a booking stored as the older layout did: no IndexRows, key-only p| and s| rows
    repo = TableBookingRepository(tables)
    booking = a_listed_booking(1, status=BookingStatus.CONFIRMED, meeting=MeetingState(wanted=True))
    entity = booking_to_entity(replace(booking, version=1))
    del entity["IndexRows"]
    old_rows = [
        {"PartitionKey": TENANT, "RowKey": rk, "Kind": kind, "BookingId": booking.booking_id}
        for rk, kind in (
            ("p|student-1|b00001", "participant"),
            ("p|tutor-1|b00001", "participant"),
            ("s|2026-12-24T13:00:00Z|b00001", "start"),
        )
    ]
    tables.table("bookings").submit_transaction([("upsert", r) for r in [entity, *old_rows]])
    assert repo.list_for_tenant(TENANT, BookingQuery()).bookings == []

    # WHEN it is reindexed, twice
    first, again = repo.reindex(TENANT), repo.reindex(TENANT)

    # THEN it lists once everywhere, the old participant rows are gone, and it saves as any other
    assert (first, again) == (1, 0)
    ids = [b.booking_id for b in repo.list_for_tenant(TENANT, BookingQuery()).bookings]
    assert ids == [booking.booking_id]
    assert [
        b.booking_id for b in repo.list_for_participant(TENANT, "tutor-1", BookingQuery()).bookings
    ] == ids
    assert [b.booking_id for b in repo.list_starting_between(TENANT, T0, T0 + timedelta(1))] == ids
    keys = {e["RowKey"] for e in tables.table("bookings").list_entities()}
    assert not any(k.startswith("p|") for k in keys)
    stored = repo.get(TENANT, booking.booking_id)
    later = T0 + timedelta(days=2)
    repo.update(replace(stored, start=later, end=later + timedelta(hours=1)))
    assert repo.list_starting_between(TENANT, T0, T0 + timedelta(1)) == []


def test_a_page_chain_during_moves_lists_each_unmoved_booking_once_in_order(tables):
    # GIVEN 40 bookings, the odd ones moved back and forth across the whole range meanwhile
    bookings = TableBookingRepository(tables)
    added = [bookings.add(a_listed_booking(i)) for i in range(40)]
    still = [b.booking_id for b in sorted(added, key=lambda b: (b.start, b.booking_id))][::2]
    moving = {b.booking_id for b in added} - set(still)
    stop = False

    def move() -> int:
        moves = 0
        while not stop:
            for booking in added:
                if booking.booking_id not in moving:
                    continue
                current = bookings.get(TENANT, booking.booking_id)
                jump = timedelta(days=-30 if current.start > T0 + timedelta(days=1) else 30)
                bookings.update(
                    replace(current, start=current.start + jump, end=current.end + jump)
                )
                moves += 1
        return moves

    # WHEN staff and a participant follow page chains of 7 while the moves go on
    with ThreadPoolExecutor(1) as pool:
        mover = pool.submit(move)
        try:
            chains = [chain(lambda q: bookings.list_for_tenant(TENANT, q), BookingQuery(limit=7))]
            chains += [
                chain(
                    lambda q: bookings.list_for_participant(TENANT, "tutor-1", q),
                    BookingQuery(limit=7),
                )
                for _ in range(3)
            ]
        finally:
            stop = True
        assert mover.result() > 0

    # THEN each chain lists every booking that did not move exactly once, in start order
    for pages in chains:
        seen = [bid for page in pages for bid in page]
        assert [bid for bid in seen if bid not in moving] == still
        assert all(len(page) <= 7 for page in pages)
