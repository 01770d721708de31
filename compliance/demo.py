"""Demo compliance records for `manage.py seed_demo`: filings in every state (one security assessment inside
its extension window), a provider's counter near the 100,000-individual threshold, a restricted party, a
listing held for an officer's review and a trade held for missing evidence. Through the services throughout,
so the demo has the same audit trail as real use. Safe to run again.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from exchange.models import Board, MemberFirm, User
from listings import services as listing_services
from listings.demo import provide_dataset
from listings.models import Category, DataProduct, Revision

from . import services
from .calendar import SHANGHAI
from .models import ComplianceCase, EvidenceKind, ExportCounter, Filing, RestrictedParty

OFFICER = "officer@exchange.example"
CREDIT = "admin@credit.example"
LINGANG = "admin@lingang.example"
BUYER_ABROAD = "admin@pacific.example"
HELD_TITLE = "US-listed issuers' investor contacts"
REPORTS = [
    ("admin@credit.example", "TPR-2026-CREDIT"),
    ("admin@lingang.example", "TPR-2026-LINGANG"),
    ("admin@supply.example", "TPR-2026-SUPPLY"),
    ("admin@rhein.example", "TPR-2026-RHEIN"),
    ("admin@grid.example", "TPR-2026-GRID"),
]
PI_TITLE = "Consumer credit panel, Yangtze River Delta"

# A demo PDF: enough for the document checks and for a browser to open.
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj "
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 300 144]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def _product(actor: User, title_en: str, title_zh: str, **content: Any) -> DataProduct:
    existing = Revision.objects.filter(product__provider=actor.membership.firm, title_en=title_en).first()
    if existing is not None:
        return existing.product
    dictionary = [
        {"name": "person_id", "type": "string", "description": "Pseudonymous id", "unit": "", "personal": True, "sensitive": False},
        {"name": "score", "type": "integer", "description": "Credit score band", "unit": "", "personal": True, "sensitive": True},
    ]  # fmt: skip
    product = listing_services.product_create(
        actor=actor,
        board=Board.objects.get(code=Board.Code.INTERNATIONAL),
        title_en=title_en,
        title_zh=title_zh,
        summary_en=f"{title_en}: pseudonymised, refreshed monthly.",
        summary_zh=f"{title_zh}：已去标识化，每月更新。",
        category=Category.objects.get(code="finance-credit"),
        tags=["credit", "panel"],
        classification="general",
        contains_personal_info=True,
        coverage_geography="Mainland China",
        update_frequency="monthly",
        delivery_modes=["file", "api"],
        dictionary=dictionary,
        licence_en="Internal credit-risk modelling only.",
        licence_zh="仅限内部信用风险建模。",
        licence_terms={"purposes": ["credit risk assessment"], "territories": ["worldwide"], "onward_transfer": False, "resale": False},
        **content,
    )  # fmt: skip
    listing_services.revision_set_sample(
        product=product, actor=actor, name="sample.csv", content=b"person_id,score\nP0001,7\nP0002,5\n"
    )
    provide_dataset(product, actor, b"person_id,score\n" + b"".join(b"P%04d,%d\n" % (i, i % 10) for i in range(1, 201)))
    listing_services.plan_create(
        product=product, actor=actor, name_en="Annual", kind="subscription", period="year",
        currency="CNY", amount=Decimal("48000.00"),
    )  # fmt: skip
    return product


def _list(product: DataProduct, reviewer: User) -> None:
    if product.listed_revision_id:
        return
    revision = listing_services.product_submit(product=product, actor=product.revisions.first().created_by)  # type: ignore[union-attr]  # seeded
    listing_services.review_start(product=product, actor=reviewer)
    listing_services.review_approve(product=product, actor=reviewer, notes="Demo: registration checked.")
    Revision.objects.filter(pk=revision.pk).update(notice_ends_at=timezone.now() - timedelta(days=1))
    listing_services.notice_conclude(revision_id=revision.pk)
    product.refresh_from_db()


def _filing(actor: User, kind: str, reference: str, issued_on: date, **fields: Any) -> Filing:
    existing = Filing.objects.filter(exporter=actor.membership.firm, reference=reference).first()
    if existing is not None:
        return existing
    return services.filing_submit(
        exporter=actor.membership.firm,
        actor=actor,
        kind=kind,
        reference=reference,
        issued_on=issued_on,
        document_name=f"{reference}.pdf",
        document=PDF,
        all_products=not fields.get("products"),
        **fields,
    )


def seed(*, stdout: Any = None) -> None:
    officer = User.objects.get(email=OFFICER)
    credit = User.objects.get(email=CREDIT)
    lingang = User.objects.get(email=LINGANG)
    reviewer = User.objects.get(email="reviewer@exchange.example")
    today = timezone.localdate(timezone=SHANGHAI)

    # A product with personal information of 60,000 individuals (1,500 sensitive), listed for every destination.
    panel = _product(
        credit, PI_TITLE, "长三角消费信贷面板数据",
        personal_info_subjects=60_000, sensitive_personal_info_subjects=1_500, origin_countries=["CN"],
    )  # fmt: skip
    _list(panel, reviewer)

    def accepted(filing: Filing) -> Filing:
        return services.filing_accept(filing=filing, actor=officer) if filing.status == "submitted" else filing

    # Credit Insight: a security assessment issued ~34 months ago, so its extension window is open now.
    accepted(
        _filing(
            credit,
            EvidenceKind.SECURITY_ASSESSMENT,
            "CAC-SA-2024-0117",
            today.replace(year=today.year - 3) + timedelta(days=50),
        )
    )
    accepted(_filing(credit, EvidenceKind.PIPIA_REPORT, "PIPIA-2026-031", today - timedelta(days=30)))
    accepted(
        _filing(
            credit,
            EvidenceKind.STANDARD_CONTRACT,
            "SC-2026-88",
            today - timedelta(days=60),
            receipt_reference="沪网信备〔2026〕88号",
            receipt_filed_on=today - timedelta(days=55),
            receipt_document_name="SC-2026-88-receipt.pdf",
            receipt_document=PDF,
        )
    )
    _filing(credit, EvidenceKind.CERTIFICATION, "PIPC-2026-0042", today - timedelta(days=10))  # waits for review
    rejected = _filing(credit, EvidenceKind.COMPLIANCE_REPORT, "CR-2026-7", today - timedelta(days=20))
    if rejected.status == "submitted":
        services.filing_reject(filing=rejected, actor=officer, reason="The report is unsigned: upload the signed copy.")
    lapsed = accepted(
        _filing(
            credit,
            EvidenceKind.CERTIFICATION,
            "PIPC-2023-0007",
            today.replace(year=today.year - 3) - timedelta(days=30),
        )
    )
    services.filings_expire(today=today)
    lapsed.refresh_from_db()
    revoked = accepted(_filing(lingang, EvidenceKind.EU_SCC, "EU-SCC-M1-2025", today - timedelta(days=200)))
    if revoked.status == "accepted":
        services.filing_revoke(filing=revoked, actor=officer, reason="Superseded by the 2026 clauses.")
    accepted(_filing(lingang, EvidenceKind.FTZ_REGISTRATION, "LG-DATA-2025-013", today - timedelta(days=300)))

    # Every listed product has a third-party compliance report on file (COMPLIANCE_REPORT_REQUIRED): one for
    # all of each provider's products, filed after they were listed (a report describes the revision it saw).
    for email, number in REPORTS:
        accepted(
            _filing(User.objects.get(email=email), EvidenceKind.COMPLIANCE_REPORT, number, today - timedelta(days=14))
        )

    # Credit Insight's counter this year: 92,000 individuals already exported (the Art 5(4) threshold is 100,000).
    ExportCounter.objects.update_or_create(
        exporter=credit.membership.firm, year=today.year,
        defaults={"personal_info_subjects": 92_000, "sensitive_personal_info_subjects": 0},
    )  # fmt: skip

    # One restricted party, and nobody admitted under its name.
    if not RestrictedParty.objects.filter(source_list="Demo sanctions list").exists():
        services.party_save(
            party=RestrictedParty(
                name="Sanctioned Data Trading FZE", aliases=["SDT FZE"], country="AE",
                source_list="Demo sanctions list", listed_on=date(2025, 6, 1),
            ),
            identifiers=[("other", "DEMO-SDN-0001")],
            actor=officer,
        )  # fmt: skip

    # A listing held for review: US-origin investor contacts offered to every destination (28 CFR 202, R4).
    held = _product(
        credit, HELD_TITLE, "美国上市公司投资者联络数据",
        personal_info_subjects=8_000, sensitive_personal_info_subjects=200, origin_countries=["US"],
    )  # fmt: skip
    if held.revisions.filter(status="draft").exists():
        listing_services.product_submit(product=held, actor=credit)
        services.listing_assess(revision=held.revisions.get())

    # A trade held for missing evidence: the panel to a buyer in Singapore needs consent records on file.
    buyer: MemberFirm = User.objects.get(email=BUYER_ABROAD).membership.firm
    if not ComplianceCase.objects.filter(kind="trade", product=panel).exists():
        services.trade_decide(product=panel, buyer_firm=buyer, delivery="file")

    if stdout is not None:
        stdout.write(
            f"  Compliance: {Filing.objects.count()} filings, "
            f"{ComplianceCase.objects.filter(status='open').count()} open cases, "
            f"{RestrictedParty.objects.count()} restricted party."
        )
