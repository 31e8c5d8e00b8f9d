"""Fixtures of the Airtable emulator's own tests: one running emulator per test module, reset
for each test, and pyairtable clients pointed at it. Test modules import what they use."""

from __future__ import annotations

from collections.abc import Iterator

import pyairtable
import pytest

from reconciler.emulators.airtable import AirtableEmulator

TOKEN = "test-token"


@pytest.fixture(scope="module")
def server() -> Iterator[AirtableEmulator]:
    """One running emulator for the module (stopping a server takes half a second)."""
    emulator = AirtableEmulator(TOKEN, rate_limit=0, lockout=0.5)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def em(server: AirtableEmulator) -> AirtableEmulator:
    """The emulator, reset to a fresh base, without rate limiting (limit tests set their own)."""
    server.reset()
    return server


@pytest.fixture
def api(em: AirtableEmulator) -> Iterator[pyairtable.Api]:
    """A pyairtable client pointed at the emulator, with no retries."""
    client = pyairtable.Api(TOKEN, endpoint_url=em.url, retry_strategy=None)
    yield client
    client.session.close()


@pytest.fixture
def leads(em: AirtableEmulator, api: pyairtable.Api) -> pyairtable.Table:
    """The Leads table through pyairtable."""
    return api.table(em.base_id, "Leads")
