"""The portal's sandbox page: a member of the buyer firm builds an aggregate query with a form (no JavaScript
needed), runs it, and reads the answer as a table and a bar chart drawn on the server (SVG), suppressed rows
counted; the entitlement's recent queries below."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from exchange.exceptions import ApplicationError, NotAllowed
from exchange.selectors import user_membership
from exchange.types import AuthenticatedHttpRequest
from listings.models import DeliveryMode, FieldType

from . import sandbox as engine
from . import selectors
from .models import Entitlement
from .services import downloads
from .services import sandbox as sandbox_service

MEASURE_ROWS = 3
FILTER_ROWS = 3
RECENT_QUERIES = 10
CHART_BARS = 30

FUNCTION_LABELS = {
    "count": gettext_lazy("Count"),
    "count_distinct": gettext_lazy("Count distinct"),
    "sum": gettext_lazy("Sum"),
    "avg": gettext_lazy("Average"),
    "min": gettext_lazy("Minimum (N-th smallest)"),
    "max": gettext_lazy("Maximum (N-th largest)"),
}
OPERATOR_LABELS = {
    "eq": gettext_lazy("equals"),
    "in": gettext_lazy("is one of (comma-separated)"),
    "gte": gettext_lazy("at least"),
    "lte": gettext_lazy("at most"),
    "between": gettext_lazy("between (from, to)"),
}


class SandboxQueryForm(forms.Form):
    """The query as form fields: measure rows (function, field), groups, filter rows (field, operator, value)."""

    limit = forms.IntegerField(
        label=gettext_lazy("Rows at most"), min_value=1, max_value=settings.SANDBOX_MAX_ROWS, initial=100
    )

    def __init__(self, *args: Any, rules: engine.Rules, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rules = rules
        blank = [("", "—")]
        measure_fields = [("", gettext_lazy("(rows)"))] + [
            (name, name) for name in sorted(rules.measures | rules.dimensions)
        ]
        dimensions = [(name, name) for name in sorted(rules.dimensions)]
        for i in range(MEASURE_ROWS):
            self.fields[f"fn_{i}"] = forms.ChoiceField(
                label=_("Function"), choices=blank + list(FUNCTION_LABELS.items()), required=False,
                initial="count" if i == 0 else "",
            )  # fmt: skip
            self.fields[f"field_{i}"] = forms.ChoiceField(label=_("Field"), choices=measure_fields, required=False)
        self.fields["group_by"] = forms.MultipleChoiceField(
            label=_("Group by"),
            choices=dimensions,
            required=False,
            widget=forms.CheckboxSelectMultiple,
        )
        for i in range(FILTER_ROWS):
            self.fields[f"filter_field_{i}"] = forms.ChoiceField(
                label=_("Filter on"), choices=blank + dimensions, required=False
            )
            self.fields[f"filter_op_{i}"] = forms.ChoiceField(
                label=_("Operator"), choices=list(OPERATOR_LABELS.items()), required=False
            )
            self.fields[f"filter_value_{i}"] = forms.CharField(label=_("Value"), max_length=2000, required=False)

    def measure_rows(self) -> list[tuple[Any, Any]]:
        return [(self[f"fn_{i}"], self[f"field_{i}"]) for i in range(MEASURE_ROWS)]

    def filter_rows(self) -> list[tuple[Any, Any, Any]]:
        return [
            (self[f"filter_field_{i}"], self[f"filter_op_{i}"], self[f"filter_value_{i}"]) for i in range(FILTER_ROWS)
        ]

    def _value(self, text: str, field_type: str) -> Any:
        if field_type == FieldType.BOOLEAN:
            lowered = text.strip().lower()
            return {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(lowered, text)
        return text.strip()

    def query(self) -> dict[str, Any]:
        """The engine's JSON query from the cleaned form (the engine checks it)."""
        data = self.cleaned_data
        measures = []
        for i in range(MEASURE_ROWS):
            if data.get(f"fn_{i}"):
                measures.append({"fn": data[f"fn_{i}"], "field": data.get(f"field_{i}") or None})
        filters = []
        for i in range(FILTER_ROWS):
            name = data.get(f"filter_field_{i}")
            if not name:
                continue
            op, text = data.get(f"filter_op_{i}") or "eq", data.get(f"filter_value_{i}", "")
            field_type = self.rules.types.get(name, FieldType.STRING)
            value: Any
            if op in ("in", "between"):
                value = [self._value(part, field_type) for part in text.replace("，", ",").split(",")]
            else:
                value = self._value(text, field_type)
            filters.append({"field": name, "op": op, "value": value})
        return {"measures": measures, "group_by": data.get("group_by", []), "filters": filters, "limit": data["limit"]}


def _chart(answer: engine.Answer) -> dict[str, Any] | None:
    """A horizontal bar chart of the first numeric measure by the groups' values (the first CHART_BARS rows)."""
    groups = [i for i, c in enumerate(answer.columns) if c["kind"] == "group"]
    measures = [i for i, c in enumerate(answer.columns) if c["kind"] == "measure"]
    if not groups or not measures or not answer.rows:
        return None
    index = measures[0]
    points = []
    for row in answer.rows[:CHART_BARS]:
        try:
            value = float(row[index]) if row[index] is not None else 0.0
        except (TypeError, ValueError):
            return None
        points.append((" · ".join(str(row[g]) for g in groups), value))
    peak = max((abs(v) for _, v in points), default=0.0) or 1.0
    bar_height, width, label_width = 22, 640, 180
    plot = width - label_width - 90
    bars = [
        {
            "y": i * bar_height,
            "label": label[:28],
            "value": value,
            "width": max(1, round(abs(value) / peak * plot)),
            "text_x": label_width + max(1, round(abs(value) / peak * plot)) + 6,
        }
        for i, (label, value) in enumerate(points)
    ]
    return {
        "measure": answer.columns[index]["name"],
        "bars": bars,
        "width": width,
        "height": len(bars) * bar_height + 4,
        "label_width": label_width,
        "bar_height": bar_height - 6,
    }


@login_required
@require_http_methods(["GET", "POST"])
def entitlement_sandbox(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """The sandbox page of an entitlement of the member's firm (another firm's: 404). A POST runs the query (it is
    metered and logged); a GET shows the form and the recent queries."""
    membership = user_membership(request.user)
    if membership is None:
        raise PermissionDenied(_("Only members of a firm trade on the exchange; exchange staff work in the admin."))
    entitlement: Entitlement = selectors.entitlement_get_for_firm(firm_id=membership.firm_id, pk=pk)
    context: dict[str, Any] = {"entitlement": entitlement, "refusal": None, "answer": None, "chart": None}
    status = 200
    if entitlement.delivery_mode != DeliveryMode.SANDBOX:
        context["refusal"] = _("This entitlement is not to sandbox delivery: its data is used another way.")
        return render(request, "settlements/sandbox.html", context, status=409)
    dataset = downloads.deliverable_dataset(entitlement)
    revision = dataset.revision if dataset is not None else entitlement.revision
    try:
        rules = engine.Rules.of(revision)
    except ApplicationError as exc:
        context["refusal"] = exc.message
        return render(request, "settlements/sandbox.html", context, status=exc.status_code)
    form = SandboxQueryForm(request.POST or None, rules=rules)
    if request.method == "POST" and form.is_valid():
        try:
            answer = sandbox_service.sandbox_query(entitlement=entitlement, user=request.user, query=form.query())
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from exc
        except ApplicationError as exc:
            context["refusal"] = exc.message
            context["refusal_at"] = exc.details.get("at", "")
            status = exc.status_code
        else:
            context["answer"] = answer
            context["chart"] = _chart(answer)
    elif request.method == "POST":
        status = 400
    context.update(
        form=form,
        rules=rules,
        usable=selectors.entitlement_usable(entitlement),
        recent=list(selectors.sandbox_query_list(entitlement=entitlement)[:RECENT_QUERIES]),
        function_labels=FUNCTION_LABELS,
    )
    return render(request, "settlements/sandbox.html", context, status=status)
