"""Reading ahead: items come in order with the producer's state as it stood after each, at most
``ahead`` items early; an error comes where its item would have; closing leaves no thread."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from reconciler.engine.prefetch import SWITCH_INTERVAL, Prefetch


class Listing:
    """A listing that notes how far it has been read, and whether it was closed."""

    def __init__(self, pages: int, *, fail_at: int | None = None) -> None:
        self.pages = pages
        self.fail_at = fail_at
        self.produced = 0
        self.closed = False
        self.read_further = threading.Event()

    def __iter__(self) -> Iterator[int]:
        try:
            for number in range(self.pages):
                if number == self.fail_at:
                    raise RuntimeError(f"page {number} could not be read")
                self.produced = number + 1
                self.read_further.set()
                yield number
        finally:
            self.closed = True


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "prefetch"]


def test_prefetch__every_item_in_order_with_the_state_after_it() -> None:
    listing = Listing(5)
    with Prefetch(iter(listing), lambda: listing.produced) as ahead:
        assert list(ahead) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    assert listing.closed and not _prefetch_threads()


def test_prefetch__an_empty_listing_ends_at_once() -> None:
    with Prefetch(iter(Listing(0)), lambda: None) as ahead:
        assert list(ahead) == []


@pytest.mark.parametrize("ahead", [1, 2])
def test_prefetch__reads_at_most_ahead_items_early(ahead: int) -> None:
    consumed = 0
    listing = Listing(50)
    source = iter(listing)

    def checked() -> Iterator[int]:
        for number in source:
            # Taken but not yet counted by the consumer: one more than the buffer holds.
            assert number - consumed <= ahead + 1, f"item {number} read too early"
            yield number

    with Prefetch(checked(), lambda: None, ahead=ahead) as items:
        for item, _ in items:
            if item == 0:  # hold the first item until the producer is as far as it may go
                while listing.produced < ahead + 2:
                    listing.read_further.wait(5)
                    listing.read_further.clear()
            consumed += 1
    assert consumed == 50


def test_prefetch__an_error_is_raised_after_the_items_before_it() -> None:
    listing = Listing(5, fail_at=2)
    got = []
    with (
        pytest.raises(RuntimeError, match="page 2 could not be read"),
        Prefetch(iter(listing), lambda: None) as ahead,
    ):
        for item, _ in ahead:
            got.append(item)
    assert got == [0, 1]
    assert not _prefetch_threads()


def test_prefetch__closing_early_stops_the_thread_and_closes_the_listing() -> None:
    listing = Listing(1000)
    with Prefetch(iter(listing), lambda: None) as ahead:
        for item, _ in ahead:
            if item == 3:
                break
    assert listing.closed
    assert listing.produced < 10
    assert not _prefetch_threads()


def test_prefetch__an_error_in_the_consumer_leaves_no_thread() -> None:
    listing = Listing(1000)
    with pytest.raises(ValueError), Prefetch(iter(listing), lambda: None) as ahead:
        for _ in ahead:
            raise ValueError("the page could not be applied")
    assert listing.closed and not _prefetch_threads()


def test_prefetch__the_lock_changes_hands_quickly_while_a_listing_is_read_ahead() -> None:
    """While any reading thread runs, the interpreter's switch interval is SWITCH_INTERVAL (the
    consumer, back from the database, gets the lock without waiting out 5 ms); the one before
    comes back when the last reading thread stops, however it stopped."""
    before = sys.getswitchinterval()
    assert before > SWITCH_INTERVAL
    first = Prefetch(iter(Listing(3)), lambda: None)
    assert sys.getswitchinterval() == SWITCH_INTERVAL
    with pytest.raises(ValueError), Prefetch(iter(Listing(1000)), lambda: None) as second:
        assert sys.getswitchinterval() == SWITCH_INTERVAL
        for _ in second:
            raise ValueError("the page could not be applied")
    assert sys.getswitchinterval() == SWITCH_INTERVAL  # the first still reads
    assert [item for item, _ in first] == [0, 1, 2]
    first.close()
    first.close()  # closing again changes nothing
    assert sys.getswitchinterval() == before
