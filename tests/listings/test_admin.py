"""The reviewers' admin: the review queue, what changed, the actions that call the services, objections,
products and the category taxonomy."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import assign_perm

from exchange import roles
from exchange.models import AuditEvent
from listings import services
from listings.models import Category, DataProduct, ListingStatus, Objection, Revision
from tests.factories import (
    DICTIONARY,
    LICENCE_TERMS,
    UserFactory,
    draft_product,
    listed_product,
    listed_product_via_workflow,
    login_as,
    provide_dataset,
)

pytestmark = pytest.mark.django_db
Status = Revision.Status
QUEUE = "admin:listings_revision_changelist"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def domestic_reviewer(boards, staff_groups):
    """A reviewer covering the domestic board only: the role's permissions, but view_board on one board."""
    user = UserFactory(email="dora@exchange.example", is_staff=True)
    role = staff_groups[roles.LISTING_REVIEWERS].permissions.exclude(codename="view_board")
    user.user_permissions.add(*role)
    assign_perm("exchange.view_board", user, boards["domestic"])
    return user


def submitted(provider, board_code="international", **content) -> DataProduct:
    product = draft_product(provider, board_code, **content)
    services.product_submit(product=product, actor=provider)
    return product


def in_review(provider, reviewer, board_code="international", **content) -> DataProduct:
    product = submitted(provider, board_code, **content)
    services.review_start(product=product, actor=reviewer)
    return product


def in_notice(provider, reviewer, **content) -> DataProduct:
    product = in_review(provider, reviewer, **content)
    services.review_approve(product=product, actor=reviewer)
    return product


def open_revision(product: DataProduct) -> Revision:
    revision = services.open_revision(product)
    assert revision is not None
    return revision


def post_action(client, model: str, action: str, objects, query: str = "", **data):
    return client.post(
        reverse(f"admin:listings_{model}_changelist") + query,
        {"action": action, "_selected_action": [o.pk for o in objects], **data},
        follow=True,
    )


def text(response) -> str:
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# --- The queue -----------------------------------------------------------------------------------------


def test_the_queue_shows_open_revisions_of_covered_boards_only(client, provider, reviewer, domestic_reviewer):
    # given a submitted product on each board, a draft and a listed product
    submitted(provider, "domestic", title_en="Shanghai port throughput")
    submitted(provider, "international", title_en="Global container freight index")
    draft_product(provider, "domestic", title_en="Unfinished draft data")
    listed_product(provider, reviewer, "domestic", title_en="Already listed customs data")
    # when the domestic reviewer opens the queue
    login_as(client, domestic_reviewer)
    page = text(client.get(reverse(QUEUE)))
    # then only the domestic pipeline is there
    assert "Shanghai port throughput" in page
    assert "Global container freight index" not in page
    assert "Unfinished draft data" not in page
    assert "Already listed customs data" not in page
    # and asking for every state still stays on the covered board
    page = text(client.get(reverse(QUEUE) + "?status=all"))
    assert "Already listed customs data" in page
    assert "Unfinished draft data" in page
    assert "Global container freight index" not in page
    # a reviewer covering both boards sees both submissions
    login_as(client, reviewer)
    page = text(client.get(reverse(QUEUE)))
    assert "Shanghai port throughput" in page
    assert "Global container freight index" in page
    # with the review actions
    for action in ("start_review", "approve", "reject", "suspend", "reinstate", "delist"):
        assert f'<option value="{action}">' in page
    products_page = text(client.get(reverse("admin:listings_dataproduct_changelist")))
    assert '<option value="suspend">' in products_page


def test_a_revision_of_an_uncovered_board_cannot_be_opened_or_acted_on(client, provider, domestic_reviewer):
    product = submitted(provider, "international", title_en="Global container freight index")
    revision = open_revision(product)
    login_as(client, domestic_reviewer)
    response = client.get(reverse("admin:listings_revision_change", args=[revision.pk]))
    assert response.status_code == 302  # the admin's "does not exist", never the page
    post_action(client, "revision", "start_review", [revision])
    revision.refresh_from_db()
    assert revision.status == Status.SUBMITTED


def test_the_queue_filters_and_searches(client, provider, reviewer):
    submitted(provider, "domestic", title_en="Shanghai port throughput", title_zh="上海港吞吐量")
    submitted(provider, "international", title_en="Global container freight index", classification="general")
    listed = listed_product(provider, reviewer, "international", title_en="Listed customs flows")
    login_as(client, reviewer)

    page = text(client.get(reverse(QUEUE), {"q": "吞吐量"}))
    assert "Shanghai port throughput" in page
    assert "Global container freight index" not in page

    page = text(client.get(reverse(QUEUE), {"status": "all", "q": listed.certificate_number}))
    assert "Listed customs flows" in page
    assert "Shanghai port throughput" not in page

    page = text(client.get(reverse(QUEUE), {"board": str(listed.board_id)}))
    assert "Global container freight index" in page
    assert "Shanghai port throughput" not in page

    page = text(client.get(reverse(QUEUE), {"status": "all", "confirmed": "general"}))
    assert "Listed customs flows" in page
    assert "Shanghai port throughput" not in page


def test_the_queue_counts_open_objections(client, provider, reviewer, international):
    product = in_notice(provider, reviewer, title_en="Disputed freight data")
    services.objection_lodge(product=product, actor=international, reason="Ours.")
    login_as(client, reviewer)
    response = client.get(reverse(QUEUE))
    assert response.context["cl"].result_list[0].open_objections_n == 1
    assert re.search(r'class="field-open_objections">1<', text(response))


def test_the_queue_costs_the_same_number_of_queries_for_3_and_12_revisions(
    client, provider, reviewer, international, django_assert_max_num_queries
):
    login_as(client, reviewer)
    products = [submitted(provider, title_en=f"Product {i}") for i in range(3)]
    services.review_start(product=products[0], actor=reviewer)
    services.review_approve(product=products[0], actor=reviewer)
    services.objection_lodge(product=products[0], actor=international, reason="Ours.")
    with CaptureQueriesContext(connection) as small:
        assert client.get(reverse(QUEUE)).status_code == 200
    for i in range(3, 12):
        submitted(provider, "domestic" if i % 2 else "international", title_en=f"Product {i}")
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = client.get(reverse(QUEUE))
    assert len(response.context["cl"].result_list) == 12


# --- What changed ------------------------------------------------------------------------------------------


def test_the_change_page_shows_the_submitted_revision_beside_the_listed_one(client, provider, reviewer):
    # given a listed product (walked: the page shows the workflow's audit trail) and a new revision changing
    # its title, dictionary, sample and licence terms
    product = listed_product_via_workflow(provider, reviewer, title_en="China export flows by HS code")
    services.revision_create_draft(product=product, actor=provider)
    dictionary = [
        *DICTIONARY,
        {
            "name": "destination",
            "type": "country",
            "description": "Destination country",
            "unit": "",
            "personal": False,
            "sensitive": False,
        },
    ]
    services.revision_update(
        product=product,
        actor=provider,
        title_en="China export flows by HS code and destination",
        dictionary=dictionary,
        licence_terms={**LICENCE_TERMS, "duration_months": 24},
    )
    services.revision_set_sample(
        product=product,
        actor=provider,
        name="sample.csv",
        content=b"hs_code,month,value_usd,origin,destination\n8471,2026-01-01,1250000.50,CN,DE\n",
    )
    provide_dataset(product, provider, b"hs_code,month,value_usd,origin,destination\n8471,2026-01-01,1,CN,DE\n")
    services.product_submit(product=product, actor=provider)
    revision = open_revision(product)
    # when the reviewer opens it
    login_as(client, reviewer)
    response = client.get(reverse("admin:listings_revision_change", args=[revision.pk]))
    assert response.status_code == 200
    page = text(response)
    # then the changed fields are shown, listed value beside submitted value
    row = re.search(r'data-field="title_en">(.*?)</tr>', page, re.S)
    assert row is not None
    assert "China export flows by HS code</td>" in row.group(1)
    assert "China export flows by HS code and destination</td>" in row.group(1)
    assert 'data-field="summary_en"' not in page  # unchanged fields are not listed
    # the dictionary's new field and the licence term change
    assert re.search(r'listings-added"><td>added</td><td><code>destination</code>', page)
    assert re.search(r"Duration months</th><td[^>]*>12</td><td[^>]*>24</td>", page)
    # the sample preview, and the audit trail newest first
    assert "<td>DE</td>" in page
    trail = re.findall(r"<code>(listing\.[a-z_]+)</code>", page)
    assert trail[0] == "listing.submit"
    assert "listing.listed" in trail
    # the page is read-only: no save button, no form field
    assert 'name="_save"' not in page
    assert 'name="title_en"' not in page


def test_a_first_submission_is_compared_with_nothing(client, provider, reviewer):
    product = submitted(provider, title_en="Brand new product")
    login_as(client, reviewer)
    page = text(client.get(reverse("admin:listings_revision_change", args=[open_revision(product).pk])))
    assert "First registration" in page
    assert re.search(r'data-field="title_en">.*?<td class="listings-old">—</td>', page, re.S)


# --- Actions -------------------------------------------------------------------------------------------------


def test_start_review_then_approve_with_a_confirmed_classification(client, provider, reviewer):
    product = submitted(provider)
    revision = open_revision(product)
    login_as(client, reviewer)

    response = post_action(client, "revision", "start_review", [revision])
    assert "Review started for 1 revision." in messages_of(response)
    revision.refresh_from_db()
    assert revision.status == Status.IN_REVIEW
    assert revision.reviewer == reviewer

    # the approval asks first: the classification (declared by the provider) and notes
    response = post_action(client, "revision", "approve", [revision])
    page = text(response)
    assert response.status_code == 200
    assert f'name="classification_{revision.pk}"' in page
    assert 'name="apply"' in page
    revision.refresh_from_db()
    assert revision.status == Status.IN_REVIEW

    response = post_action(
        client, "revision", "approve", [revision], apply="1", notes="Checked the sources.",
        **{f"classification_{revision.pk}": "important"},
    )  # fmt: skip
    assert "1 revision approved for public notice." in messages_of(response)
    revision.refresh_from_db()
    assert revision.status == Status.IN_NOTICE
    assert revision.confirmed_classification == "important"
    assert revision.review_notes == "Checked the sources."
    assert revision.notice_ends_at > timezone.now() + timedelta(days=2)


def test_approving_a_revision_not_in_review_shows_the_refusal_and_changes_nothing(client, provider, reviewer):
    product = submitted(provider)
    revision = open_revision(product)
    login_as(client, reviewer)
    response = post_action(
        client, "revision", "approve", [revision], apply="1", **{f"classification_{revision.pk}": "general"}
    )
    assert response.status_code == 200
    [message] = messages_of(response)
    assert "has no revision that is In review" in message
    revision.refresh_from_db()
    assert revision.status == Status.SUBMITTED
    assert not AuditEvent.objects.filter(verb="listing.approve").exists()


def test_a_refusal_for_one_does_not_stop_the_others(client, provider, reviewer):
    ready = submitted(provider, title_en="Ready product")
    taken = in_review(provider, reviewer, title_en="Already taken product")
    login_as(client, reviewer)
    response = post_action(client, "revision", "start_review", [open_revision(ready), open_revision(taken)])
    found = messages_of(response)
    assert any("Already taken product" in m and "Submitted" in m for m in found)
    assert "Review started for 1 revision." in found
    assert open_revision(ready).status == Status.IN_REVIEW


def test_reject_asks_for_reasons_and_gives_the_provider_a_new_draft(client, provider, reviewer):
    product = in_review(provider, reviewer)
    revision = open_revision(product)
    login_as(client, reviewer)

    response = post_action(client, "revision", "reject", [revision], apply="1", reason="   ")
    assert 'name="reason"' in text(response)
    assert "This field is required." in text(response)
    revision.refresh_from_db()
    assert revision.status == Status.IN_REVIEW

    response = post_action(client, "revision", "reject", [revision], apply="1", reason="The sample is synthetic.")
    assert "1 revision rejected." in messages_of(response)
    revision.refresh_from_db()
    assert revision.status == Status.REJECTED
    assert revision.review_notes == "The sample is synthetic."
    assert open_revision(product).status == Status.DRAFT


def test_acting_on_an_old_revision_is_refused(client, provider, reviewer):
    # a rejected revision is history: actions on it never reach the product's current revision
    product = in_review(provider, reviewer)
    rejected = open_revision(product)
    services.review_reject(product=product, actor=reviewer, reasons="Fix it.")
    services.product_submit(product=product, actor=provider)
    login_as(client, reviewer)
    response = post_action(client, "revision", "start_review", [rejected], query="?status=all")
    assert any("no longer under review" in m for m in messages_of(response))
    assert open_revision(product).status == Status.SUBMITTED


def test_the_change_page_buttons_run_the_actions_and_come_back(client, provider, reviewer):
    product = submitted(provider)
    revision = open_revision(product)
    change_url = reverse("admin:listings_revision_change", args=[revision.pk])
    login_as(client, reviewer)
    page = text(client.get(change_url))
    assert 'value="start_review"' in page
    assert 'value="approve"' not in page  # not in review yet
    response = client.post(
        reverse(QUEUE) + "?status=all",
        {"action": "start_review", "_selected_action": [revision.pk], "_from_change": "1"},
    )
    assert response.status_code == 302
    assert response["Location"] == change_url
    revision.refresh_from_db()
    assert revision.status == Status.IN_REVIEW
    page = text(client.get(change_url))
    assert 'value="approve"' in page
    assert 'value="reject"' in page


def test_suspend_reinstate_and_delist_products(client, provider, reviewer):
    product = listed_product(provider, reviewer)
    login_as(client, reviewer)

    response = post_action(client, "dataproduct", "suspend", [product], apply="1", reason="")
    assert "This field is required." in text(response)
    product.refresh_from_db()
    assert product.listing_status == ListingStatus.LISTED

    response = post_action(client, "dataproduct", "reinstate", [product], apply="1", reason="Why not.")
    assert any("Only a suspended product can be reinstated" in m for m in messages_of(response))

    response = post_action(client, "dataproduct", "suspend", [product], apply="1", reason="Licence dispute.")
    assert "1 product suspended." in messages_of(response)
    product.refresh_from_db()
    assert product.listing_status == ListingStatus.SUSPENDED

    response = post_action(client, "dataproduct", "reinstate", [product], apply="1", reason="Dispute settled.")
    assert "1 product reinstated." in messages_of(response)

    response = post_action(client, "dataproduct", "delist", [product], apply="1", reason="Provider left.")
    assert "1 product delisted." in messages_of(response)
    product.refresh_from_db()
    assert product.listing_status == ListingStatus.DELISTED
    event = AuditEvent.objects.filter(verb="listing.delisted", object_id=str(product.pk)).get()
    assert event.actor == reviewer
    assert event.payload["reason"] == "Provider left."


def test_the_queue_suspends_the_product_of_a_revision(client, provider, reviewer):
    product = listed_product(provider, reviewer)
    login_as(client, reviewer)
    response = post_action(
        client, "revision", "suspend", [product.listed_revision], query="?status=all", apply="1", reason="Checks."
    )
    assert "1 product suspended." in messages_of(response)
    product.refresh_from_db()
    assert product.listing_status == ListingStatus.SUSPENDED


@pytest.mark.parametrize("persona", ["officer", "clerk"])
def test_staff_without_the_review_permission_get_no_actions(request, client, provider, reviewer, persona):
    product = in_review(provider, reviewer)
    revision = open_revision(product)
    listed = listed_product(provider, reviewer, title_en="Listed one")
    login_as(client, request.getfixturevalue(persona))
    queue = client.get(reverse(QUEUE))
    if persona == "officer":  # compliance officers read revisions; settlement clerks do not
        assert queue.status_code == 200
        assert 'value="approve"' not in text(queue)
        assert 'value="start_review"' not in text(queue)
        page = text(client.get(reverse("admin:listings_revision_change", args=[revision.pk])))
        assert "What changed" in page
        assert 'name="_from_change"' not in page
    else:
        assert queue.status_code == 403
    post_action(client, "revision", "approve", [revision], apply="1", **{f"classification_{revision.pk}": "general"})
    post_action(client, "revision", "reject", [revision], apply="1", reason="No.")
    products_page = client.get(reverse("admin:listings_dataproduct_changelist"))
    assert products_page.status_code == 200
    assert 'value="suspend"' not in text(products_page)
    post_action(client, "dataproduct", "delist", [listed], apply="1", reason="No.")
    revision.refresh_from_db()
    listed.refresh_from_db()
    assert revision.status == Status.IN_REVIEW
    assert listed.listing_status == ListingStatus.LISTED


def test_members_are_sent_to_the_admin_login(client, provider, reviewer):
    product = submitted(provider)
    login_as(client, provider)
    for url in (
        reverse(QUEUE),
        reverse("admin:listings_revision_change", args=[open_revision(product).pk]),
        reverse("admin:listings_dataproduct_changelist"),
        reverse("admin:listings_objection_changelist"),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    response = post_action(client, "revision", "start_review", [open_revision(product)])
    assert open_revision(product).status == Status.SUBMITTED


def test_nothing_is_added_changed_or_deleted_by_hand(client, provider, reviewer, superuser):
    product = submitted(provider)
    revision = open_revision(product)
    login_as(client, superuser)
    for model, obj in (("revision", revision), ("dataproduct", product)):
        assert client.get(reverse(f"admin:listings_{model}_add")).status_code == 403
        assert client.get(reverse(f"admin:listings_{model}_delete", args=[obj.pk])).status_code == 403
        changelist = text(client.get(reverse(f"admin:listings_{model}_changelist") + "?status=all"))
        assert "delete_selected" not in changelist
    page = text(client.get(reverse("admin:listings_revision_change", args=[revision.pk])))
    assert 'name="_save"' not in page
    # a forged change post does nothing either
    response = client.post(reverse("admin:listings_revision_change", args=[revision.pk]), {"title_en": "Forged"})
    assert response.status_code == 403
    revision.refresh_from_db()
    assert revision.title_en != "Forged"


def test_the_product_page_links_its_revisions_and_shows_plans_and_trail(client, provider, reviewer):
    # Walked: the page shows the workflow's audit trail.
    product = listed_product_via_workflow(provider, reviewer, title_en="Listed customs flows")
    login_as(client, reviewer)
    page = text(client.get(reverse("admin:listings_dataproduct_change", args=[product.pk])))
    assert f"product__id__exact={product.pk}" in page
    assert "12000.00" in page  # the plan, read-only
    assert 'name="plans-0-amount"' not in page
    assert "listing.listed" in page
    assert 'value="suspend"' in page
    revisions = client.get(reverse(QUEUE) + f"?status=all&product__id__exact={product.pk}")
    assert [r.pk for r in revisions.context["cl"].result_list] == [product.listed_revision_id]


def test_the_product_list_stays_on_covered_boards(client, provider, reviewer, domestic_reviewer):
    listed_product(provider, reviewer, "international", title_en="International listed data")
    listed_product(provider, reviewer, "domestic", title_en="Domestic listed data")
    login_as(client, domestic_reviewer)
    page = text(client.get(reverse("admin:listings_dataproduct_changelist")))
    assert "Domestic listed data" in page
    assert "International listed data" not in page


# --- Objections ----------------------------------------------------------------------------------------------


def test_dismissing_an_objection_resumes_the_notice(client, provider, reviewer, international):
    product = in_notice(provider, reviewer)
    objection = services.objection_lodge(product=product, actor=international, reason="This is our data.")
    login_as(client, reviewer)

    response = post_action(client, "objection", "dismiss", [objection], apply="1", resolution="")
    assert 'name="resolution"' in text(response)
    objection.refresh_from_db()
    assert objection.status == Objection.Status.OPEN

    response = post_action(client, "objection", "dismiss", [objection], apply="1", resolution="Licensed.")
    assert "1 objection dismissed." in messages_of(response)
    objection.refresh_from_db()
    assert objection.status == Objection.Status.DISMISSED
    assert objection.resolved_by == reviewer
    assert open_revision(product).status == Status.IN_NOTICE

    response = post_action(client, "objection", "dismiss", [objection], apply="1", resolution="Again.")
    assert any("already resolved" in m for m in messages_of(response))


def test_upholding_an_objection_rejects_the_revision(client, provider, reviewer, international, domestic):
    product = in_notice(provider, reviewer)
    revision = open_revision(product)
    first = services.objection_lodge(product=product, actor=international, reason="Scraped from our site.")
    login_as(client, reviewer)
    response = post_action(client, "objection", "uphold", [first], apply="1", resolution="Source not licensed.")
    assert "1 objection upheld." in messages_of(response)
    first.refresh_from_db()
    revision.refresh_from_db()
    assert first.status == Objection.Status.UPHELD
    assert revision.status == Status.REJECTED
    assert open_revision(product).status == Status.DRAFT
    # the revision's page lists it
    page = text(client.get(reverse("admin:listings_revision_change", args=[revision.pk])))
    assert "Scraped from our site." in page
    assert "Source not licensed." in page


def test_staff_without_the_review_permission_cannot_resolve_objections(client, provider, reviewer, international, ops):
    product = in_notice(provider, reviewer)
    objection = services.objection_lodge(product=product, actor=international, reason="Ours.")
    login_as(client, ops)
    post_action(client, "objection", "uphold", [objection], apply="1", resolution="Yes.")
    objection.refresh_from_db()
    assert objection.status == Objection.Status.OPEN


# --- Categories ------------------------------------------------------------------------------------------------


def test_categories_are_deactivated_never_deleted(client, ops, provider):
    submitted(provider)  # a revision uses the "trade" category
    category = Category.objects.get(code="trade")
    login_as(client, ops)
    page = text(client.get(reverse("admin:listings_category_changelist")))
    assert "delete_selected" not in page
    assert client.get(reverse("admin:listings_category_delete", args=[category.pk])).status_code == 403
    response = client.post(
        reverse("admin:listings_category_changelist"),
        {"action": "deactivate", "_selected_action": [category.pk]},
        follow=True,
    )
    assert "1 category deactivated." in messages_of(response)
    category.refresh_from_db()
    assert not category.is_active
    assert AuditEvent.objects.filter(verb="category.update", object_id=str(category.pk)).exists()


def test_categories_are_added_and_edited_with_an_audit_row(client, ops):
    login_as(client, ops)
    response = client.post(
        reverse("admin:listings_category_add"),
        {"code": "weather", "name_en": "Weather", "name_zh": "气象", "position": "90", "is_active": "on"},
    )
    assert response.status_code == 302
    category = Category.objects.get(code="weather")
    response = client.post(
        reverse("admin:listings_category_change", args=[category.pk]),
        {"code": "renamed", "name_en": "Weather and climate", "name_zh": "气象", "position": "90"},
    )
    assert response.status_code == 302
    category.refresh_from_db()
    assert category.code == "weather"  # read-only once created
    assert category.name_en == "Weather and climate"
    assert not category.is_active
    verbs = list(
        AuditEvent.objects.filter(object_type="listings.category", object_id=str(category.pk))
        .order_by("created_at", "id")
        .values_list("verb", flat=True)
    )
    assert verbs == ["category.create", "category.update"]


def test_reviewers_read_the_taxonomy_but_do_not_change_it(client, reviewer):
    login_as(client, reviewer)
    assert client.get(reverse("admin:listings_category_changelist")).status_code == 200
    category = Category.objects.get(code="trade")
    client.post(
        reverse("admin:listings_category_changelist"), {"action": "deactivate", "_selected_action": [category.pk]}
    )
    category.refresh_from_db()
    assert category.is_active
