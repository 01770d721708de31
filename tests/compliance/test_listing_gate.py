"""The gate on listings: an assessment on file per destination, prohibited destinations refused, holds cleared
by an officer before the product is listed; the domestic board untouched."""

from datetime import timedelta

import pytest
from django.utils import timezone

from compliance import services
from compliance.models import Assessment, ComplianceCase
from exchange.exceptions import ApplicationError
from listings import services as listing_services
from listings.models import ListingStatus, Revision
from tests.factories import draft_product, listed_product_via_workflow

pytestmark = pytest.mark.django_db


def submitted(provider, reviewer, **content):
    product = draft_product(provider, **content)
    listing_services.product_submit(product=product, actor=provider)
    listing_services.review_start(product=product, actor=reviewer)
    return product, product.revisions.get()


def end_notice(revision):
    Revision.objects.filter(pk=revision.pk).update(notice_ends_at=timezone.now() - timedelta(seconds=1))
    return listing_services.notice_conclude(revision_id=revision.pk)


def test_listing_puts_an_assessment_on_file_for_each_destination(provider, reviewer):
    # given a product to be sold to the United States and Singapore only
    product = listed_product_via_workflow(provider, reviewer, export_destinations=["us", "SG"])
    # then each destination was decided for listing, on the listed revision
    on_file = Assessment.objects.filter(product=product, purpose="listing")
    assert sorted(on_file.values_list("destination", "decision")) == [("SG", "exempt"), ("US", "exempt")]
    assert set(on_file.values_list("revision_number", flat=True)) == {product.listed_revision.number}


def test_every_destination_is_decided_by_three_probes(provider, reviewer):
    product = listed_product_via_workflow(provider, reviewer)
    decided = dict(Assessment.objects.filter(product=product, purpose="listing").values_list("destination", "decision"))
    assert decided == {"CN": "no_transfer", "HK": "exempt", "US": "exempt"}


def test_an_unchanged_decision_is_not_stored_twice(provider, reviewer):
    product = listed_product_via_workflow(provider, reviewer)
    before = Assessment.objects.filter(product=product).count()
    services.listing_assess(revision=product.listed_revision)
    assert Assessment.objects.filter(product=product).count() == before


def test_the_domestic_board_needs_no_assessment(provider, reviewer):
    product = listed_product_via_workflow(provider, reviewer, board_code="domestic")
    assert product.listing_status == ListingStatus.LISTED
    assert not Assessment.objects.filter(product=product).exists()


def test_a_hold_opens_a_case_and_blocks_the_listing_until_an_officer_clears_it(
    provider, reviewer, officer, django_capture_on_commit_callbacks
):
    # given US-origin data, offered to every destination (a China-linked buyer falls under 28 CFR 202)
    with django_capture_on_commit_callbacks(execute=True):
        product, revision = submitted(provider, reviewer, origin_countries=["US"])
    case = ComplianceCase.objects.get(kind="listing")
    assert case.status == "open" and case.rules[0] == "R4" and case.destination == "CN"
    # when the reviewer approves, the public notice starts (the officer reviews meanwhile)...
    listing_services.review_approve(product=product, actor=reviewer)
    # ...but the notice ends without listing while the case is open
    assert end_notice(revision) is None
    product.refresh_from_db()
    assert product.listing_status == ListingStatus.UNLISTED
    # then the officer clears it and the next run lists it
    services.case_clear(case=case, actor=officer, resolution="Aggregated trade data: not covered data.")
    assert end_notice(revision) is not None
    product.refresh_from_db()
    assert product.listing_status == ListingStatus.LISTED


def test_a_refused_case_blocks_the_approval(provider, reviewer, officer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        product, _revision = submitted(provider, reviewer, origin_countries=["US"])
    services.case_refuse(case=ComplianceCase.objects.get(), actor=officer, resolution="Bulk US personal data.")
    with pytest.raises(ApplicationError) as exc:
        listing_services.review_approve(product=product, actor=reviewer)
    assert "refused" in exc.value.details["reasons"][0]


def test_destinations_limited_to_where_no_hold_applies_need_no_case(provider, reviewer):
    product = listed_product_via_workflow(provider, reviewer, origin_countries=["US"], export_destinations=["SG", "JP"])
    assert product.listing_status == ListingStatus.LISTED
    assert not ComplianceCase.objects.exists()


def test_a_reviewer_confirming_important_data_sends_it_to_an_officer(
    provider, reviewer, officer, django_capture_on_commit_callbacks
):
    # given data the provider declared general; the reviewer confirms it as important (no authority named it)
    product, revision = submitted(provider, reviewer)
    with django_capture_on_commit_callbacks(execute=True):
        listing_services.review_approve(product=product, actor=reviewer, confirmed_classification="important")
    # then the assessment after the approval holds it for an officer (R7) in a listing case
    case = ComplianceCase.objects.get(kind="listing")
    assert case.rules == ["R7"]
    assert end_notice(revision) is None


def test_the_submission_queues_the_assessment_after_commit(provider, reviewer, django_capture_on_commit_callbacks):
    product = draft_product(provider)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        listing_services.product_submit(product=product, actor=provider)
    assert len(callbacks) == 1
    assert not Assessment.objects.exists()  # nothing before the commit
    callbacks[0]()
    assert Assessment.objects.filter(product=product, purpose="listing").count() == 3
