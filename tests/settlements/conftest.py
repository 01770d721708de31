"""The ledger's invariants hold after every test of this package: each test ends with them checked against the
database (settlements.selectors.ledger_problems), and those between orders and their entitlements, before its transaction is rolled back or its tables flushed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from settlements.selectors import entitlement_problems, ledger_problems


@pytest.fixture(autouse=True)
def ledger_sound(db) -> Iterator[None]:
    # Depends on `db` (transactional when the test is marked so): set up after it, so torn down before it.
    yield
    assert ledger_problems() == []
    assert entitlement_problems() == []
