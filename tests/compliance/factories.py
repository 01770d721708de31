"""Factories for compliance records, through the services as in production."""

from __future__ import annotations

from datetime import date
from typing import Any

from compliance import services
from compliance.models import Filing
from exchange.models import User
from listings.models import DataProduct, Revision

FTZ_HEADER = "code,sector,scenario,category,tags,personal_info_only,mechanism,description_en,description_zh\n"


def ftz_csv(*rows: str) -> str:
    """An FTZ negative-list import file: the header and `rows`, one line each."""
    return FTZ_HEADER + "".join(f"{row}\n" for row in rows)


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def with_pi(product: DataProduct, pi: int, sensitive: int = 0) -> DataProduct:
    """Test set-up only: set the listed revision's counts (a revision is immutable through the services)."""
    Revision.objects.filter(pk=product.listed_revision_id).update(
        contains_personal_info=True, personal_info_subjects=pi, sensitive_personal_info_subjects=sensitive
    )
    product.refresh_from_db()
    return product


def filing(
    filer: User,
    kind: str,
    *,
    products: list[DataProduct] | None = None,
    issued_on: date = date(2026, 1, 5),
    accepted_by: User | None = None,
    **fields: Any,
) -> Filing:
    """A filing by a member of the exporter (all its products unless `products`), accepted if `accepted_by`."""
    firm = filer.membership.firm
    if kind != "standard_contract":
        # Packs of evidence are filed with the same keywords; only a contract has a receipt.
        fields.pop("receipt_reference", None), fields.pop("receipt_filed_on", None)
    elif fields.get("receipt_reference") and "receipt_document" not in fields:
        fields.update(receipt_document_name="receipt.pdf", receipt_document=PDF)
    result = services.filing_submit(
        exporter=firm,
        actor=filer,
        kind=kind,
        reference=fields.pop("reference", f"REF-{kind}"),
        issued_on=issued_on,
        document_name=fields.pop("document_name", f"{kind}.pdf"),
        document=fields.pop("document", PDF),
        products=products or [],
        all_products=not products,
        **fields,
    )
    if accepted_by is not None:
        result = services.filing_accept(filing=result, actor=accepted_by)
    return result
