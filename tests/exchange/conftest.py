"""Fixtures shared by the exchange tests."""

import pytest

from exchange import services
from exchange.models import AuditEvent
from tests.factories import MemberFirmFactory


@pytest.fixture
def trail(ops, boards):
    firm = MemberFirmFactory()
    services.firm_admit(firm=firm, board=boards["domestic"], actor=ops)
    services.audit_record(actor=ops, verb="test.note", target=firm, payload={"amount": "12.50", "达": "中文"})
    return list(AuditEvent.objects.order_by("seq"))
