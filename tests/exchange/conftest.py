"""Fixtures shared by the exchange tests."""

import pytest

from exchange import services
from exchange.models import AuditEvent
from tests.factories import MemberFirmFactory


@pytest.fixture(params=[1, 3], ids=["chain1", "chain3"])
def audit_chain(request, monkeypatch) -> int:
    """The chain a test's appends go to: chain 1 (whose hashes leave the chain out, as they did before there
    were chains) and another (whose hashes cover it). Ask for it before any fixture that records events."""
    monkeypatch.setattr(services.audit_affinity, "chain", request.param)
    return request.param


@pytest.fixture
def trail(audit_chain, ops, boards):
    firm = MemberFirmFactory()
    services.firm_admit(firm=firm, board=boards["domestic"], actor=ops)
    services.audit_record(actor=ops, verb="test.note", target=firm, payload={"amount": "12.50", "达": "中文"})
    events = list(AuditEvent.objects.order_by("seq"))
    assert {event.chain for event in events} == {audit_chain}  # one chain, the whole trail
    return events
