import pytest
from django.core.exceptions import ValidationError

from exchange import services
from exchange.models import AuditEvent, MemberFirm
from tests.factories import MemberFirmFactory, make_uscc


@pytest.mark.django_db
class TestFirmCreate:
    def test_creates_the_firms_own_group_and_an_audit_row(self, ops):
        # when
        firm = services.firm_create(
            actor=ops,
            legal_name_en="Lingang Data Co.",
            legal_name_zh="临港数据有限公司",
            country="CN",
            uscc="91310115ma1kdata0x",
            role=MemberFirm.Role.PROVIDER,
        )
        # then
        assert firm.group.name == f"firm:{firm.pk}"
        assert firm.uscc == "91310115MA1KDATA0X"  # stored upper case
        assert firm.kyc_status == MemberFirm.KycStatus.PENDING
        event = AuditEvent.objects.get(verb="firm.create")
        assert event.actor == ops and event.object_id == str(firm.pk)

    def test_mainland_firm_needs_a_uscc(self, ops):
        with pytest.raises(ValidationError) as exc:
            services.firm_create(actor=ops, legal_name_en="No Code Co.", country="CN", role="buyer")
        assert "uscc" in exc.value.message_dict
        assert not MemberFirm.objects.exists()

    def test_foreign_firm_has_no_uscc(self, ops):
        with pytest.raises(ValidationError) as exc:
            services.firm_create(actor=ops, legal_name_en="HK Co.", country="HK", uscc=make_uscc(1), role="buyer")
        assert "uscc" in exc.value.message_dict

    def test_bad_check_character_is_refused_and_nothing_is_saved(self, ops):
        events = AuditEvent.objects.count()
        with pytest.raises(ValidationError) as exc:
            services.firm_create(
                actor=ops, legal_name_en="Typo Co.", country="CN", uscc="911100007109288315", role="buyer"
            )
        assert exc.value.message_dict["uscc"] == ["The check character of this Unified Social Credit Code is wrong."]
        assert not MemberFirm.objects.exists()
        assert AuditEvent.objects.count() == events

    def test_a_uscc_belongs_to_one_firm(self, ops):
        MemberFirmFactory(uscc=make_uscc(7))
        with pytest.raises(ValidationError):
            MemberFirmFactory(uscc=make_uscc(7))

    def test_foreign_firm_may_carry_an_lei(self, ops):
        firm = MemberFirmFactory(country="DE", lei="529900T8BM49AURSDO55")
        assert not firm.is_mainland and firm.lei == "529900T8BM49AURSDO55"


@pytest.mark.django_db
def test_firm_update_audits_what_changed(ops):
    firm = MemberFirmFactory(kyc_status=MemberFirm.KycStatus.PENDING)
    services.firm_update(firm=firm, actor=ops, kyc_status=MemberFirm.KycStatus.VERIFIED)
    event = AuditEvent.objects.filter(verb="firm.update").get()
    assert event.payload == {"changes": {"kyc_status": ["pending", "verified"]}}


@pytest.mark.django_db
def test_a_user_belongs_to_one_firm(ops):
    from exchange.exceptions import ApplicationError
    from tests.factories import member

    user = member(MemberFirmFactory())
    with pytest.raises(ApplicationError) as exc:
        services.membership_add(user=user, firm=MemberFirmFactory(), role="trader", actor=ops)
    assert exc.value.code == "already_member"
