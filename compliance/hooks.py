"""What compliance registers with the lower apps in its AppConfig.ready(), which import nothing of compliance:
the pre-listing check and the submission hook of listings (listings.checks), and the admission screening of
the core (exchange.admission). Adapters like the tasks: they call the services and dispatch the tasks."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from exchange.models import Board, MemberFirm
from listings.models import DataProduct, Revision

from .models import ComplianceCase
from .selectors import firm_screen, listing_subject
from .services.listing import listing_decisions_record, review_holds
from .tasks import listing_assess_task


def compliance_listing_check(revision: Revision) -> list[str]:
    """The pre-listing check compliance registers with listings (listings.checks).

    At approval (the revision is still in review) a prohibited destination refuses, and a hold for review
    does not: the officer reviews during the public notice, on the classification the reviewer confirmed,
    in the case the assessment opens once the approval commits. When the notice ends, the hold refuses until
    the officer clears the case.
    """
    product: DataProduct = revision.product
    if product.board.code != Board.Code.INTERNATIONAL:
        return []  # the domestic board: nothing crosses the border
    if revision.effective_classification == "core":
        return []  # refused by listings' own check (core data is listed on no board), with its own reason
    reasons = []
    recorded = listing_decisions_record(revision)
    for decided, _assessment in recorded:
        if decided.decision["decision"] == "prohibited":
            reasons.append(
                _("It may not be sold to %(country)s: %(reason)s")
                % {"country": decided.destination, "reason": decided.decision["reasons"][0]["text_en"]}
            )
    if not review_holds(recorded):
        return reasons
    case = (
        ComplianceCase.objects.filter(subject=listing_subject(product, revision.number)).order_by("-opened_at").first()
    )
    if case is not None and case.status == ComplianceCase.Status.REFUSED:
        reasons.append(
            _("A compliance officer refused it (case #%(case)d): %(resolution)s")
            % {"case": case.pk, "resolution": case.resolution}
        )
    elif revision.status == Revision.Status.IN_REVIEW:
        if case is None:
            revision_id = revision.pk
            transaction.on_commit(lambda: listing_assess_task.delay(revision_id))
    elif case is None or case.status == ComplianceCase.Status.OPEN:
        reasons.append(
            _("It is held for a compliance officer's review (case #%(case)s).") % {"case": case.pk if case else "…"}
        )
    return reasons


def listing_submitted(revision: Revision) -> None:
    """Submission hook: assess the revision once the submission commits (a task, so the request stays fast)."""
    if revision.product.board.code != Board.Code.INTERNATIONAL:
        return
    revision_id = revision.pk
    transaction.on_commit(lambda: listing_assess_task.delay(revision_id))


def admission_screening(firm: MemberFirm) -> list[str]:
    """The admission check compliance registers with the core (exchange.admission)."""
    matches = firm_screen(firm)
    if not matches:
        return []
    return [
        _("%(firm)s matches the restricted party %(party)s (%(source)s).")
        % {"firm": firm, "party": party.name, "source": party.source_list}
        for party in matches
    ]
