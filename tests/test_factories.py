"""`listed_product` writes a listed product's rows directly; this holds those rows to what the workflow leaves.

Every column of the product, its revision, its plans, its object permissions and its listing assessments is
compared (new columns are compared as soon as they exist), except the keys and moments that differ between
any two products: ids, the row's own creation time, the sample file's random name (its shape and bytes are
compared instead). The written product has no audit trail of the workflow: tests of the trail walk it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.db.models import Model
from django.utils import timezone

from compliance.models import Assessment, ComplianceCase
from listings.models import DataProduct, DataProductGroupObjectPermission, DataProductUserObjectPermission
from tests.factories import listed_product, listed_product_via_workflow

pytestmark = pytest.mark.django_db

MOMENTS = ("created_at", "updated_at", "submitted_at", "decided_at", "notice_ends_at", "listed_at")


def _columns(row: Model, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The row's stored columns (as the database gives them back), keys and moments left out."""
    names = [f.attname for f in row._meta.concrete_fields if f.attname not in ("id", *MOMENTS, *skip)]
    return dict(type(row).objects.filter(pk=row.pk).values(*names).get())


def _state(product: DataProduct) -> dict[str, Any]:
    product = DataProduct.objects.select_related("listed_revision").get(pk=product.pk)
    revision = product.listed_revision
    assert revision is not None
    revisions = list(product.revisions.all())
    return {
        "product": _columns(product, skip=("listed_revision_id", "certificate_number")),
        "certificate": re.sub(rf"-{product.pk:07d}$", "-<pk>", product.certificate_number or ""),
        "certificate_year": str(timezone.localtime(product.listed_at).year) in (product.certificate_number or ""),
        "revisions": [(r.pk == revision.pk, r.number, r.status) for r in revisions],
        "revision": _columns(revision, skip=("product_id", "sample")),
        "moments": {
            # Set, and in the workflow's order (the notice ended just before the listing).
            "submitted <= decided": revision.submitted_at <= revision.decided_at,
            "notice ended before listing": revision.notice_ends_at <= revision.listed_at,
            "revision listed when the product was": revision.listed_at == product.listed_at,
        },
        "sample": (
            re.sub(r"-[0-9a-f]{12}\.", "-<token>.", revision.sample.name.replace(f"/{product.pk}/", "/<pk>/")),
            revision.sample.open("rb").read(),
        ),
        "plans": sorted(
            tuple(sorted(_columns(plan, skip=("product_id",)).items())) for plan in product.plans.order_by("pk")
        ),
        "group_perms": sorted(
            (p.group_id, p.permission.codename)
            for p in DataProductGroupObjectPermission.objects.filter(content_object=product)
        ),
        "user_perms": list(DataProductUserObjectPermission.objects.filter(content_object=product)),
        "assessments": sorted(
            (
                a["destination"],
                a["purpose"],
                a["revision_number"],
                a["decision"],
                repr(a["rules"]),
                repr(a["reasons"]),
                repr(a["evidence"]),
                repr(a["inputs"]),
                a["rule_version"],
                a["ftz_list_version"],
                a["delivery"],
                a["as_of"],
                a["buyer_firm_id"],
            )
            for a in Assessment.objects.filter(product=product).values()
        ),
        "cases": ComplianceCase.objects.filter(product=product).count(),
    }


CONTENTS = [
    pytest.param("international", {}, id="international"),
    pytest.param("domestic", {}, id="domestic"),
    # Content that product_create cleans (lower-case destinations) and another category and delivery.
    pytest.param(
        "international",
        {"export_destinations": ["us", "SG"], "delivery_modes": ["sandbox", "file"], "tags": ["reinsurance"]},
        id="international-cleaned",
    ),
]


@pytest.mark.parametrize(("board_code", "content"), CONTENTS)
def test_the_written_rows_equal_the_workflows(provider, reviewer, board_code, content):
    # given one product taken through the workflow and one written directly, with the same content
    walked = listed_product_via_workflow(provider, reviewer, board_code, **content)
    written = listed_product(provider, reviewer, board_code, **content)
    # then their rows are the same, column by column
    walked_state, written_state = _state(walked), _state(written)
    assert written_state == walked_state
    assert walked_state["product"]["listing_status"] == "listed"
    assert walked_state["certificate"] == f"DPR-{board_code[0].upper()}-{timezone.localtime().year}-<pk>"
    assert walked_state["group_perms"] == [(provider.membership.firm.group_id, "change_dataproduct")]
    assert walked_state["revision"]["search_text"]
    if connection.vendor == "postgresql":
        assert walked_state["revision"]["search_vector"]
    if board_code == "international":
        assert walked_state["assessments"]
