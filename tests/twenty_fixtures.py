"""Fixtures of the Twenty emulator's own tests: one running emulator per test module, reset for
each test, and an authenticated HTTP client. Test modules import what they use."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from reconciler.emulators.twenty import TwentyEmulator


def serve() -> Iterator[TwentyEmulator]:
    """A running emulator without rate limiting, stopped afterwards (for module fixtures)."""
    server = TwentyEmulator(rate_per_minute=0)
    server.start()
    yield server
    server.stop()


def connect(em: TwentyEmulator) -> Iterator[httpx.Client]:
    """An HTTP client authenticated for ``em``, closed afterwards."""
    with httpx.Client(base_url=em.url, headers={"Authorization": "Bearer test-key"}) as http:
        yield http


@pytest.fixture(scope="module")
def shared_server() -> Iterator[TwentyEmulator]:
    """One running emulator for the whole module (stopping one is slow)."""
    yield from serve()


@pytest.fixture
def em(shared_server: TwentyEmulator) -> TwentyEmulator:
    """The shared emulator, reset to its initial state."""
    shared_server.reset()
    return shared_server


@pytest.fixture
def client(em: TwentyEmulator) -> Iterator[httpx.Client]:
    """An authenticated HTTP client for ``em``."""
    yield from connect(em)
