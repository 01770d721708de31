"""What the rules engine wrote: assessments and the yearly export counters. Never changed once written."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from exchange.admin_kit import ReadOnlyAdminMixin

from ..models import Assessment, ExportCounter
from .shared import ADMIN_CSS


def _json(value: Any) -> str:
    return format_html('<pre class="compliance-json">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False))


# --- Assessments and counters ----------------------------------------------------------------------------


# What an assessment was decided on, shown both in the list and on the page.
_ASSESSMENT_COLUMNS = [
    "purpose",
    "decision",
    "rule_list",
    "product",
    "revision_number",
    "buyer_firm",
    "destination",
    "delivery",
    "as_of",
    "rule_version",
]


@admin.register(Assessment)
class AssessmentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every decision of the rules engine, with what it was decided on. Never changed once written."""

    list_display = ["id", "created_at", *_ASSESSMENT_COLUMNS]
    list_filter = ["purpose", "decision", "rule_version"]
    list_select_related = ["product__listed_revision", "buyer_firm"]
    raw_id_fields = ["product", "buyer_firm"]
    search_fields = ["product__revisions__title_en", "product__revisions__title_zh", "product__certificate_number"]
    search_help_text = _("Product title (English or Chinese) or registration certificate number.")
    show_full_result_count = False
    date_hierarchy = "created_at"
    fields = [
        *_ASSESSMENT_COLUMNS,
        "ftz_list_version",
        "created_at",
        "reasons_display",
        "evidence_display",
        "inputs_display",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # fields here are plain names

    class Media:
        css = {"all": [ADMIN_CSS]}

    @admin.display(description=_("rules"))
    def rule_list(self, assessment: Assessment) -> str:
        return ", ".join(assessment.rules) or "—"

    @admin.display(description=_("reasons"))
    def reasons_display(self, assessment: Assessment) -> str:
        rows = format_html_join(
            "",
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (r.get("rule", ""), r.get("text_en", ""), r.get("text_zh", ""), r.get("source", ""))
                for r in assessment.reasons
            ),
        )
        return format_html(
            '<table class="listings-table"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>'
            "<tbody>{}</tbody></table>",
            gettext("Rule"),
            gettext("English"),
            gettext("Chinese"),
            gettext("Source"),
            rows,
        )

    @admin.display(description=_("evidence"))
    def evidence_display(self, assessment: Assessment) -> str:
        return _json(assessment.evidence)

    @admin.display(description=_("inputs"))
    def inputs_display(self, assessment: Assessment) -> str:
        return _json(assessment.inputs)


@admin.register(ExportCounter)
class ExportCounterAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["exporter", "year", "personal_info_subjects", "sensitive_personal_info_subjects", "updated_at"]
    list_filter = ["year"]
    list_select_related = ["exporter"]
    raw_id_fields = ["exporter"]
    search_fields = ["exporter__legal_name_en", "exporter__legal_name_zh"]
    readonly_fields = ["exporter", "year", "personal_info_subjects", "sensitive_personal_info_subjects", "updated_at"]
