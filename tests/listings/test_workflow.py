"""The listing workflow, transition by transition: who may do it, what it records, what it refuses."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from exchange.exceptions import ApplicationError, InvalidTransition, NotAllowed
from exchange.models import AuditEvent
from listings import checks, services
from listings.models import DataProduct, ListingStatus, Objection, Revision
from tests.factories import (
    SAMPLE_CSV,
    approved_past_notice,
    draft_product,
    listed_product_via_workflow,
    member,
    product_content,
    product_in_review,
)

pytestmark = pytest.mark.django_db
Status = Revision.Status


def verbs(product):
    return list(
        AuditEvent.objects.filter(object_type="listings.dataproduct", object_id=str(product.pk))
        .order_by("created_at", "id")
        .values_list("verb", flat=True)
    )


def test_the_whole_way_to_listed(provider, reviewer):
    # given a draft with a sample and a plan
    product = draft_product(provider)
    assert product.revisions.get().status == Status.DRAFT
    # when it goes through review and notice
    services.product_submit(product=product, actor=provider)
    services.review_start(product=product, actor=reviewer)
    revision = services.review_approve(product=product, actor=reviewer, confirmed_classification="general")
    assert revision.status == Status.IN_NOTICE
    assert revision.notice_ends_at - timezone.now() > timedelta(days=2, hours=23)
    # the notice has not ended: the periodic task leaves it alone
    assert services.notice_conclude(revision_id=revision.pk) is None
    Revision.objects.filter(pk=revision.pk).update(notice_ends_at=timezone.now() - timedelta(minutes=1))
    assert services.notice_conclude(revision_id=revision.pk) is not None
    # then
    product.refresh_from_db()
    assert product.listing_status == ListingStatus.LISTED
    assert product.listed_revision_id == revision.pk
    year = timezone.localtime().year
    assert product.certificate_number == f"DPR-I-{year}-{product.pk:07d}"
    assert verbs(product) == [
        "listing.create", "listing.sample", "listing.dataset_upload", "listing.dataset_valid", "listing.plan_create",
        "listing.submit", "listing.review_start", "listing.approve", "listing.listed",
    ]  # fmt: skip
    # and concluding again changes nothing
    assert services.notice_conclude(revision_id=revision.pk) is None


def test_a_submitted_revision_never_changes(provider):
    product = draft_product(provider)
    revision = services.product_submit(product=product, actor=provider)
    revision.title_en = "Something else"
    with pytest.raises(PermissionError):
        revision.save()
    with pytest.raises(InvalidTransition):
        services.revision_update(product=product, actor=provider, title_en="Something else")
    assert Revision.objects.get(pk=revision.pk).title_en == "China export flows by HS code"


def test_submitting_needs_a_sample_and_a_plan(provider):
    product = draft_product(provider, plan=False, sample=False)
    with pytest.raises(ApplicationError) as exc:
        services.product_submit(product=product, actor=provider)
    assert exc.value.code == "incomplete"
    assert len(exc.value.details["missing"]) == 2
    assert product.revisions.get().status == Status.DRAFT


def test_editing_a_listed_product_makes_a_new_revision_while_the_listed_one_stays_on_sale(provider, reviewer):
    product = listed_product_via_workflow(provider, reviewer)
    listed = product.listed_revision
    draft = services.revision_create_draft(product=product, actor=provider)
    services.revision_update(product=product, actor=provider, title_en="China export flows, with 2025 data")
    product.refresh_from_db()
    assert draft.number == 2 and product.listed_revision_id == listed.pk
    assert product.listing_status == ListingStatus.LISTED
    assert Revision.objects.get(pk=listed.pk).title_en == "China export flows by HS code"
    # the new revision goes through review and notice again, then replaces the old one
    services.product_submit(product=product, actor=provider)
    services.review_start(product=product, actor=reviewer)
    services.review_approve(product=product, actor=reviewer)
    draft.refresh_from_db()
    Revision.objects.filter(pk=draft.pk).update(notice_ends_at=timezone.now() - timedelta(seconds=1))
    services.notice_conclude(revision_id=draft.pk)
    product.refresh_from_db()
    assert product.listed_revision_id == draft.pk
    assert Revision.objects.get(pk=listed.pk).status == Status.SUPERSEDED
    assert product.certificate_number.endswith(f"{product.pk:07d}")


def test_only_one_revision_is_open_at_a_time(provider, reviewer):
    product = listed_product_via_workflow(provider, reviewer)
    services.revision_create_draft(product=product, actor=provider)
    with pytest.raises(InvalidTransition):
        services.revision_create_draft(product=product, actor=provider)


def test_rejection_returns_a_draft_with_the_reasons(provider, reviewer):
    product = product_in_review(provider, reviewer)
    with pytest.raises(ApplicationError):
        services.review_reject(product=product, actor=reviewer, reasons="  ")
    rejected = services.review_reject(product=product, actor=reviewer, reasons="The sample has no 2025 rows.")
    assert rejected.status == Status.REJECTED and rejected.review_notes == "The sample has no 2025 rows."
    draft = services.open_revision(product)
    assert draft.status == Status.DRAFT and draft.number == 2 and draft.title_en == rejected.title_en
    assert draft.sample.name == rejected.sample.name
    services.product_submit(product=product, actor=provider)


def test_an_objection_pauses_the_notice_until_a_reviewer_decides(provider, reviewer, international):
    product = product_in_review(provider, reviewer)
    revision = services.review_approve(product=product, actor=reviewer)
    objection = services.objection_lodge(product=product, actor=international, reason="This is our customs data.")
    revision.refresh_from_db()
    assert revision.status == Status.OBJECTED
    # paused: the end of the notice passes, nothing is listed
    Revision.objects.filter(pk=revision.pk).update(notice_ends_at=timezone.now() - timedelta(minutes=1))
    assert services.notice_conclude(revision_id=revision.pk) is None
    # dismissed: the notice resumes for at least a day
    services.objection_resolve(objection=objection, actor=reviewer, uphold=False, resolution="Licensed from customs.")
    revision.refresh_from_db()
    assert revision.status == Status.IN_NOTICE
    assert revision.notice_ends_at > timezone.now() + timedelta(hours=23)
    assert Objection.objects.get().status == Objection.Status.DISMISSED


def test_a_firm_objects_again_only_once_its_objection_is_decided(provider, reviewer, international):
    product = product_in_review(provider, reviewer)
    services.review_approve(product=product, actor=reviewer)
    first = services.objection_lodge(product=product, actor=international, reason="Ours.")
    with pytest.raises(ApplicationError) as exc:
        services.objection_lodge(product=product, actor=international, reason="Ours, again.")
    assert exc.value.code == "objection_already_open"
    # once dismissed, the firm may object to the same revision again (with a new reason)
    services.objection_resolve(objection=first, actor=reviewer, uphold=False, resolution="Licensed.")
    second = services.objection_lodge(product=product, actor=international, reason="New evidence.")
    assert list(Objection.objects.filter(status=Objection.Status.OPEN)) == [second]


def test_an_upheld_objection_rejects_the_revision(provider, reviewer, international):
    product = product_in_review(provider, reviewer)
    services.review_approve(product=product, actor=reviewer)
    objection = services.objection_lodge(product=product, actor=international, reason="Scraped from our site.")
    services.objection_resolve(objection=objection, actor=reviewer, uphold=True, resolution="Source not licensed.")
    objection.refresh_from_db()
    assert objection.status == Objection.Status.UPHELD
    assert product.revisions.get(number=1).status == Status.REJECTED
    assert services.open_revision(product).status == Status.DRAFT


def test_who_may_object(provider, reviewer, domestic, international):
    product = product_in_review(provider, reviewer)
    services.review_approve(product=product, actor=reviewer)
    with pytest.raises(NotAllowed):
        services.objection_lodge(product=product, actor=provider, reason="x")  # its own
    with pytest.raises(NotAllowed):
        services.objection_lodge(product=product, actor=domestic, reason="x")  # not on the international board
    with pytest.raises(ApplicationError):
        services.objection_lodge(product=product, actor=international, reason="   ")


@pytest.mark.parametrize("actor_name", ["domestic", "international", "clerk", "officer"])
def test_only_reviewers_review(request, provider, actor_name):
    actor = request.getfixturevalue(actor_name)
    product = draft_product(provider)
    services.product_submit(product=product, actor=provider)
    with pytest.raises(NotAllowed):
        services.review_start(product=product, actor=actor)


def test_a_reviewer_for_one_board_reviews_that_board_only(provider, boards, staff_groups):
    from guardian.shortcuts import assign_perm

    from exchange import roles
    from tests.factories import UserFactory

    domestic_reviewer = UserFactory(is_staff=True)
    domestic_reviewer.user_permissions.add(
        *staff_groups[roles.LISTING_REVIEWERS].permissions.filter(codename="review_dataproduct")
    )
    assign_perm("exchange.view_board", domestic_reviewer, boards["domestic"])
    international_product = draft_product(provider, "international")
    domestic_product = draft_product(provider, "domestic")
    for product in (international_product, domestic_product):
        services.product_submit(product=product, actor=provider)
    with pytest.raises(NotAllowed):
        services.review_start(product=international_product, actor=domestic_reviewer)
    services.review_start(product=domestic_product, actor=domestic_reviewer)


def test_analysts_and_other_firms_cannot_edit(provider, domestic):
    product = draft_product(provider)
    analyst = member(provider.membership.firm, "analyst")
    for actor in (analyst, domestic):
        with pytest.raises(NotAllowed):
            services.revision_update(product=product, actor=actor, title_en="Mine now")
        with pytest.raises(NotAllowed):
            services.product_submit(product=product, actor=actor)


def test_a_buyer_firm_cannot_create_products(international):
    from tests.factories import ensure_categories

    ensure_categories()
    with pytest.raises(NotAllowed):
        services.product_create(actor=international, board=_board(), **product_content())


def _board():
    from tests.factories import board

    return board("international")


def test_a_provider_lists_only_on_boards_it_is_admitted_to(provider, boards):
    from tests.factories import MemberFirmFactory, admit, ensure_categories

    ensure_categories()
    firm = admit(MemberFirmFactory(role="provider"), "domestic")
    seller = member(firm, "trader")
    with pytest.raises(NotAllowed):
        services.product_create(actor=seller, board=boards["international"], **product_content())
    assert not DataProduct.objects.exists()


def test_core_data_is_never_approved(provider, reviewer):
    product = product_in_review(provider, reviewer)
    with pytest.raises(ApplicationError) as exc:
        services.review_approve(product=product, actor=reviewer, confirmed_classification="core")
    assert exc.value.code == "pre_listing_check_failed"
    assert exc.value.details["reasons"] == ["Core data is never listed on the exchange."]
    assert services.open_revision(product).status == Status.IN_REVIEW


def test_a_registered_check_adds_its_reasons(provider, reviewer):
    product = product_in_review(provider, reviewer)
    checks.register_pre_listing_check("test.extra", lambda revision: ["No assessment on file."])
    try:
        with pytest.raises(ApplicationError) as exc:
            services.review_approve(product=product, actor=reviewer)
        assert exc.value.details["reasons"] == ["No assessment on file."]
    finally:
        checks.unregister_pre_listing_check("test.extra")


def test_a_decision_lands_only_on_the_revision_the_reviewer_saw(provider, reviewer):
    product = draft_product(provider)
    services.product_submit(product=product, actor=provider)
    with pytest.raises(InvalidTransition, match="no longer the one"):
        services.review_start(product=product, actor=reviewer, number=7)
    services.review_start(product=product, actor=reviewer, number=1)


def test_delisting_withdraws_the_revision_on_its_way(provider, reviewer, international):
    product = listed_product_via_workflow(provider, reviewer)
    services.revision_create_draft(product=product, actor=provider)
    services.product_submit(product=product, actor=provider)
    services.review_start(product=product, actor=reviewer)
    revision = services.review_approve(product=product, actor=reviewer)
    objection = services.objection_lodge(product=product, actor=international, reason="Stale data.")
    services.product_delist(product=product, actor=reviewer, reason="Provider exits.")
    revision.refresh_from_db()
    objection.refresh_from_db()
    assert revision.status == Status.WITHDRAWN
    assert objection.status == Objection.Status.DISMISSED
    assert services.notice_conclude(revision_id=revision.pk) is None
    assert DataProduct.objects.get(pk=product.pk).listed_revision.number == 1


def test_a_resolved_objection_cannot_be_upheld_later(provider, reviewer, international):
    product = product_in_review(provider, reviewer)
    services.review_approve(product=product, actor=reviewer)
    objection = services.objection_lodge(product=product, actor=international, reason="x")
    services.objection_resolve(objection=objection, actor=reviewer, uphold=False, resolution="Unfounded.")
    with pytest.raises(InvalidTransition):
        services.objection_resolve(objection=objection, actor=reviewer, uphold=True, resolution="Changed my mind.")
    assert services.open_revision(product).status == Status.IN_NOTICE


def test_categories_are_saved_and_audited_through_the_service(ops):
    from listings.models import Category

    category = services.category_save(category=Category(code="health", name_en="Health", name_zh="健康"), actor=ops)
    category.is_active = False
    services.category_save(category=category, actor=ops)
    category.code = "medical"
    with pytest.raises(ApplicationError):
        services.category_save(category=category, actor=ops)
    assert AuditEvent.objects.filter(verb__startswith="category.").count() == 2


def test_the_checks_run_again_when_the_notice_ends(provider, reviewer):
    product, revision = approved_past_notice(provider, reviewer)
    checks.register_pre_listing_check("test.lapsed", lambda revision: ["The assessment lapsed."])
    try:
        assert services.notice_conclude(revision_id=revision.pk) is None
    finally:
        checks.unregister_pre_listing_check("test.lapsed")
    assert "listing.listing_blocked" in verbs(product)
    product.refresh_from_db()
    assert product.listing_status == ListingStatus.UNLISTED
    assert services.notice_conclude(revision_id=revision.pk) is not None


def test_the_provider_losing_its_admission_blocks_the_listing(provider, reviewer, ops, boards):
    from exchange import services as exchange_services

    product = product_in_review(provider, reviewer)
    exchange_services.firm_revoke(firm=provider.membership.firm, board=boards["international"], actor=ops)
    with pytest.raises(ApplicationError) as exc:
        services.review_approve(product=product, actor=reviewer)
    assert "not admitted" in exc.value.message


def test_suspend_reinstate_delist(provider, reviewer, domestic):
    product = listed_product_via_workflow(provider, reviewer)
    with pytest.raises(NotAllowed):
        services.product_suspend(product=product, actor=domestic, reason="x")
    services.product_suspend(product=product, actor=reviewer, reason="Complaint under investigation.")
    assert DataProduct.objects.get(pk=product.pk).listing_status == ListingStatus.SUSPENDED
    with pytest.raises(InvalidTransition):
        services.product_suspend(product=product, actor=reviewer, reason="again")
    services.product_reinstate(product=product, actor=reviewer)
    services.product_delist(product=product, actor=provider, reason="Discontinued.")
    assert DataProduct.objects.get(pk=product.pk).listing_status == ListingStatus.DELISTED
    with pytest.raises(InvalidTransition):
        services.product_reinstate(product=product, actor=reviewer)
    with pytest.raises(InvalidTransition):
        services.revision_create_draft(product=product, actor=provider)


def test_withdrawing_before_review(provider, reviewer):
    product = draft_product(provider)
    services.product_submit(product=product, actor=provider)
    services.product_withdraw(product=product, actor=provider)
    assert services.open_revision(product) is None
    draft = services.revision_create_draft(product=product, actor=provider)
    assert draft.number == 2


def test_two_reviewers_racing_cannot_both_start(provider, reviewer):
    product = draft_product(provider)
    services.product_submit(product=product, actor=provider)
    stale = services.open_revision(product)
    services.review_start(product=product, actor=reviewer)
    with pytest.raises(InvalidTransition):
        services._revision_move(product, stale, Status.IN_REVIEW, actor=reviewer, verb="review_start")


class TestBadInput:
    def test_malformed_dictionary(self, provider):
        bad = [
            {"name": "a", "type": "string"},
            {"name": "A", "type": "string"},  # duplicate, case-insensitive
            {"name": "1x", "type": "string"},
            {"name": "b", "type": "blob"},
            {"name": "c", "type": "string", "personal": False, "sensitive": True},
        ]
        from tests.factories import ensure_categories

        ensure_categories()
        with pytest.raises(ValidationError) as exc:
            services.product_create(actor=provider, board=_board(), **product_content(dictionary=bad))
        # each problem under the field of the dictionary it is about, as the API keys them
        codes = {key: [e.code for e in errors] for key, errors in exc.value.error_dict.items()}
        assert codes == {
            "dictionary.1.name": ["duplicate_name"],
            "dictionary.2.name": ["invalid_name"],
            "dictionary.3.type": ["invalid_type"],
            "dictionary.4.sensitive": ["sensitive_not_personal"],
        }
        assert not DataProduct.objects.exists()

    def test_personal_fields_need_counts(self, provider):
        dictionary = [
            {"name": "name", "type": "string", "personal": True},
            {"name": "diagnosis", "type": "string", "personal": True, "sensitive": True},
        ]
        from tests.factories import ensure_categories

        ensure_categories()
        with pytest.raises(ValidationError) as exc:
            services.product_create(actor=provider, board=_board(), **product_content(dictionary=dictionary))
        assert "contains_personal_info" in exc.value.message_dict
        with pytest.raises(ValidationError) as exc:
            services.product_create(
                actor=provider,
                board=_board(),
                **product_content(dictionary=dictionary, contains_personal_info=True, personal_info_subjects=5000),
            )
        assert "sensitive_personal_info_subjects" in exc.value.message_dict
        assert not DataProduct.objects.exists()

    @pytest.mark.parametrize(
        "name, content, code",
        [
            ("sample.csv", b"hs_code,month\n8471,2026-01-01\n", "sample_columns"),
            ("sample.csv", b"hs_code,month,value_usd,origin\n8471,January,12,CN\n", "sample_values"),
            ("sample.csv", b"hs_code,month,value_usd,origin\n8471,2026-01-01,lots,CN\n", "sample_values"),
            ("sample.csv", b"hs_code,month,value_usd,origin\n8471,2026-01-01,1,XX\n", "sample_values"),
            ("sample.csv", b"hs_code,month,value_usd,origin\n", "sample_empty"),
            ("sample.json", b'[{"hs_code": "1"}]', "sample_columns"),
            ("sample.json", b'{"not": "a list"}', "sample_json"),
            ("sample.json", b"not json", "sample_json"),
            ("sample.xlsx", b"PK\x03\x04", "sample_type"),
            ("sample.csv", b"\xff\xfe\x00b\x00a\x00d", "sample_encoding"),
        ],
    )
    def test_samples_that_do_not_match_the_dictionary(self, provider, name, content, code):
        product = draft_product(provider, sample=False)
        with pytest.raises(ValidationError) as exc:
            services.revision_set_sample(product=product, actor=provider, name=name, content=content)
        assert exc.value.error_dict["sample"][0].code == code
        assert not product.revisions.get().sample

    def test_an_oversize_sample(self, provider, settings):
        settings.LISTING_SAMPLE_MAX_BYTES = 100
        product = draft_product(provider, sample=False)
        with pytest.raises(ValidationError) as exc:
            services.revision_set_sample(product=product, actor=provider, name="s.csv", content=SAMPLE_CSV * 5)
        assert exc.value.error_dict["sample"][0].code == "sample_size"

    def test_a_json_sample_and_its_preview(self, provider):
        product = draft_product(provider, sample=False)
        content = b'[{"hs_code": "8471", "month": "2026-01-01", "value_usd": 12.5, "origin": "CN"}]'
        revision = services.revision_set_sample(product=product, actor=provider, name="s.json", content=content)
        assert revision.sample_preview == [
            {"hs_code": "8471", "month": "2026-01-01", "value_usd": "12.5", "origin": "CN"}
        ]

    def test_changing_the_dictionary_drops_the_sample_checked_against_the_old_one(self, provider):
        product = draft_product(provider)
        services.revision_update(product=product, actor=provider, dictionary=[{"name": "x", "type": "string"}])
        revision = product.revisions.get()
        assert not revision.sample and revision.sample_preview == []

    @pytest.mark.parametrize(
        "fields, error_field",
        [
            ({"currency": "USD"}, "currency"),  # the domestic board settles in CNY only
            ({"currency": "EUR"}, "currency"),
            ({"amount": Decimal("-1")}, "amount"),
            ({"amount": Decimal("0")}, "amount"),
            ({"amount": Decimal("100000000.01")}, "amount"),
            ({"amount": Decimal("1.001")}, "amount"),
            ({"kind": "one_off"}, "period"),
            ({"kind": "metered", "unit_price": None}, "included_calls"),
        ],
    )
    def test_bad_prices_are_refused_and_nothing_is_saved(self, provider, fields, error_field):
        from listings.models import PricePlan

        product = draft_product(provider, "domestic", plan=False)
        plan = {"name_en": "Plan", "kind": "subscription", "period": "year", "currency": "CNY", "amount": Decimal("10")}
        plan.update(fields)
        with pytest.raises(ValidationError) as exc:
            services.plan_create(product=product, actor=provider, **plan)
        assert error_field in exc.value.message_dict
        assert not PricePlan.objects.exists()

    def test_a_metered_plan(self, provider):
        product = draft_product(provider, plan=False)
        plan = services.plan_create(
            product=product, actor=provider, name_en="Pay as you go", kind="metered", period="month",
            currency="USD", amount=Decimal("100.00"), included_calls=10000, unit_price=Decimal("0.004500"),
        )  # fmt: skip
        assert plan.unit_price == Decimal("0.0045")

    def test_private_offers_go_to_firms_that_may_trade_there(self, provider, domestic, international):
        product = draft_product(provider, plan=False)
        with pytest.raises(ValidationError) as exc:
            services.plan_create(
                product=product, actor=provider, name_en="For you", kind="one_off", currency="CNY",
                amount=Decimal("500"), buyer_code=domestic.membership.firm.uscc,
            )  # fmt: skip
        assert "buyer_code" in exc.value.message_dict
        plan = services.plan_create(
            product=product, actor=provider, name_en="For you", kind="one_off", currency="CNY",
            amount=Decimal("500"), buyer_code=international.membership.firm.lei,
        )  # fmt: skip
        assert plan.is_private


def test_retiring_a_plan(provider):
    product = draft_product(provider)
    plan = product.plans.get()
    services.plan_retire(plan=plan, actor=provider)
    with pytest.raises(InvalidTransition):
        services.plan_retire(plan=plan, actor=provider)
