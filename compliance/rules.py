"""The cross-border rules engine: a pure function from plain inputs to a decision.

This module is the exchange's reading of China's data-export law as a table (docs/compliance-rules.md):
it imports nothing from Django and touches no database, so that counsel can read and test it on its own.
Rules are data, evaluated in the specification's order; the first that matches decides. Numbers that are
platform policy rather than law come in a `Policy`, which the Django side fills from settings.

    decide(parse_input({...}), Policy()) -> Decision
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

RULE_VERSION = "2026.1"

MAINLAND = "CN"
# ISO 3166-1 alpha-2 (the 249 officially assigned codes), so that a typo can never make a Chinese exporter
# "foreign" and relax the decision.
ISO_COUNTRIES = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
    BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
    EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
    HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
    LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
    NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
    SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
    TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    """.split()  # noqa: SIM905 (a block of codes reads better than 249 quoted strings)
)
# The US DOJ bulk-data rule (28 CFR 202) treats China, Hong Kong and Macau as one country of concern.
CHINA_LINKED_COUNTRIES = frozenset({"CN", "HK", "MO"})
EU_REGIME = "EU"
US_REGIME = "US"

CLASSIFICATIONS = ("general", "important", "core")
IMPORTANT_SOURCES = ("none", "notified", "published", "ftz_list", "self_identified")
ORIGINS = ("cn", "foreign_only", "mixed")
BUYER_TYPES = ("commercial", "foreign_authority")
DELIVERIES = ("file", "api", "sandbox_results_only", "sandbox_remote_raw")
EXEMPTIONS = ("none", "art3", "art4", "art5_1", "art5_2", "art5_3")
DECISIONS = (
    "prohibited",
    "hold_for_review",
    "security_assessment",
    "contract_or_certification",
    "exempt",
    "no_transfer",
)
# From the strictest to the most relaxed: how "monotone" is measured.
STRICTNESS = {name: rank for rank, name in enumerate(DECISIONS)}


@dataclass(frozen=True)
class Policy:
    """Thresholds (Provisions Art 5(4), 7, 8) and validity periods; settings may move them, law permitting."""

    pi_exempt_below: int = 100_000
    pi_security_assessment_from: int = 1_000_000
    sensitive_security_assessment_from: int = 10_000
    assessment_validity_years: int = 3
    certificate_validity_years: int = 3
    extension_window_working_days: int = 60
    contract_filing_working_days: int = 10


# --- Inputs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    classification: str
    origin: str
    important_source: str = "none"
    personal_info_subjects: int = 0
    sensitive_personal_info_subjects: int = 0
    origin_regimes: tuple[str, ...] = ()
    anonymised_output: bool = False


@dataclass(frozen=True)
class Exporter:
    country: str
    is_ciio: bool = False
    ytd_personal_info_subjects: int = 0
    ytd_sensitive_personal_info_subjects: int = 0
    ftz: str | None = None
    ftz_scenario_covered: bool = False
    ftz_list_item: dict[str, str] | None = None


@dataclass(frozen=True)
class Trade:
    buyer_country: str
    delivery: str
    buyer_type: str = "commercial"
    buyer_restricted: bool = False
    exemption_claimed: str = "none"
    # Not in the specification's table: an ownership link the exchange knows of (None: judged by country).
    buyer_china_linked: bool | None = None


@dataclass(frozen=True)
class Inputs:
    product: Product
    exporter: Exporter
    trade: Trade
    as_of: dt.date

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        data["product"]["origin_regimes"] = list(self.product.origin_regimes)
        return data


class InvalidInput(ValueError):
    """The input does not fit the specification; `errors` maps each field's path to what is wrong."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


REQUIRED = {("product", "classification"), ("product", "origin"), ("exporter", "country"), ("trade", "buyer_country"), ("trade", "delivery")}  # fmt: skip
CHOICES = {
    ("product", "classification"): CLASSIFICATIONS,
    ("product", "important_source"): IMPORTANT_SOURCES,
    ("product", "origin"): ORIGINS,
    ("trade", "buyer_type"): BUYER_TYPES,
    ("trade", "delivery"): DELIVERIES,
    ("trade", "exemption_claimed"): EXEMPTIONS,
}
GROUPS = {"product": Product, "exporter": Exporter, "trade": Trade}


def _country(value: Any) -> str | None:
    if isinstance(value, str) and value.upper() in ISO_COUNTRIES:
        return value.upper()
    return None


def parse_input(raw: Any) -> Inputs:
    """Validate and normalise the specification's input object. Omitted fields take their neutral value
    (0, false, "none", null, []); a missing group, an unknown field or value, a negative count or a wrong
    type is an InvalidInput naming every problem at once."""
    errors: dict[str, str] = {}
    if not isinstance(raw, dict):
        raise InvalidInput({"": "the input is a JSON object with the groups product, exporter, trade and as_of"})
    unknown_top = set(raw) - {*GROUPS, "as_of"}
    for key in sorted(unknown_top):
        errors[key] = "unknown key"
    as_of = raw.get("as_of")
    parsed_date = None
    if not isinstance(as_of, str):
        errors["as_of"] = "required: the decision's date as YYYY-MM-DD"
    else:
        try:
            if len(as_of) != 10 or as_of[4] != "-" or as_of[7] != "-":
                raise ValueError(as_of)
            parsed_date = dt.date.fromisoformat(as_of)
        except ValueError:
            errors["as_of"] = "not a date (YYYY-MM-DD)"
    groups: dict[str, dict[str, Any]] = {}
    for group_name, cls in GROUPS.items():
        group = raw.get(group_name)
        if not isinstance(group, dict):
            errors[group_name] = "missing group" if group is None else "must be an object"
            continue
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key in sorted(set(group) - set(known)):
            errors[f"{group_name}.{key}"] = "unknown field"
        for name, spec in known.items():
            path = f"{group_name}.{name}"
            if name not in group:
                if (group_name, name) in REQUIRED:
                    errors[path] = "required"
                continue  # the dataclass default is the specification's neutral value
            value = group[name]
            if value is None:
                if "None" in str(spec.type):
                    values[name] = None
                else:
                    errors[path] = "required" if (group_name, name) in REQUIRED else "cannot be null"
                continue
            problem = _check(group_name, name, spec.type, value)  # type: ignore[arg-type]  # a str: the module has postponed annotations
            if problem:
                errors[path] = problem
                continue
            if name in ("country", "buyer_country"):
                value = _country(value)
            if name == "ftz_list_item" and value is not None:
                value = {"id": str(value["id"]), "mechanism": value["mechanism"]}
            if name == "origin_regimes":
                value = tuple(sorted({str(v).upper() for v in value}))
            values[name] = value
        groups[group_name] = values
    product = groups.get("product", {})
    if product.get("classification") == "important" and product.get("important_source", "none") == "none":
        # Provisions Art 2: data counts as important when the authorities notified or published it (or a zone's
        # list names it, or the provider identified it for review): "important" without a source is incomplete.
        errors.setdefault(
            "product.important_source",
            "important data needs its source (notified, published, ftz_list, self_identified)",
        )
    if errors:
        raise InvalidInput(errors)
    assert parsed_date is not None
    return Inputs(
        product=Product(**groups["product"]),
        exporter=Exporter(**groups["exporter"]),
        trade=Trade(**groups["trade"]),
        as_of=parsed_date,
    )


def _check(group: str, name: str, annotation: str, value: Any) -> str | None:
    if (group, name) in CHOICES:
        options = CHOICES[(group, name)]
        return None if value in options else f"one of {', '.join(options)}"
    if annotation == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return "a whole number"
        return None if value >= 0 else "cannot be negative"
    if annotation in ("bool", "bool | None"):
        return None if isinstance(value, bool) or value is None else "true or false"
    if name in ("country", "buyer_country"):
        return None if _country(value) else "an ISO 3166-1 alpha-2 country code"
    if name == "origin_regimes":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            return 'a list of regime codes, e.g. ["EU"]'
        return None
    if name == "ftz":
        return None if value is None or (isinstance(value, str) and value) else "a zone code or null"
    if name == "ftz_list_item":
        if value is None:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("id"), str) or not value["id"]:
            return 'null or {"id": "<item code>", "mechanism": "<a decision value>"}'
        if value.get("mechanism") not in DECISIONS:
            return 'null or {"id": "<item code>", "mechanism": "<a decision value>"}'
        return None
    return None


# --- Rules -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What the rules test, derived once from the inputs."""

    inputs: Inputs
    policy: Policy

    @property
    def outbound(self) -> bool:
        return self.inputs.exporter.country == MAINLAND

    @property
    def abroad(self) -> bool:
        # Hong Kong, Macau and Taiwan count as outside the mainland.
        return self.inputs.trade.buyer_country != MAINLAND

    @property
    def has_pi(self) -> bool:
        p = self.inputs.product
        return p.personal_info_subjects > 0 or p.sensitive_personal_info_subjects > 0

    @property
    def n(self) -> int:
        return self.inputs.exporter.ytd_personal_info_subjects + self.inputs.product.personal_info_subjects

    @property
    def s(self) -> int:
        return (
            self.inputs.exporter.ytd_sensitive_personal_info_subjects
            + self.inputs.product.sensitive_personal_info_subjects
        )

    @property
    def china_linked_buyer(self) -> bool:
        t = self.inputs.trade
        return t.buyer_china_linked if t.buyer_china_linked is not None else t.buyer_country in CHINA_LINKED_COUNTRIES

    @property
    def important(self) -> bool:
        return self.inputs.product.classification == "important"


@dataclass(frozen=True)
class Rule:
    id: str
    applies: Callable[[Facts], bool]
    decision: Callable[[Facts], str]
    text_en: str
    text_zh: str
    source: str
    evidence: Callable[[Facts], list[dict[str, Any]]] = field(default=lambda facts: [])


def _const(value: str) -> Callable[[Facts], str]:
    return lambda facts: value


def _ev(kind: str, validity: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "validity": validity, **extra}


def _pi_basics(facts: Facts) -> list[dict[str, Any]]:
    """Provisions Art 10: notice, separate consent and the PIPIA for every export of PI, exempt or not."""
    if not facts.has_pi:
        return []
    return [
        _ev("pipia_report", "kept 3 years; redone when the product changes"),
        _ev("consent_record", "per product revision"),
    ]


def _security_assessment(facts: Facts) -> list[dict[str, Any]]:
    years = facts.policy.assessment_validity_years
    window = facts.policy.extension_window_working_days
    return [
        _ev(
            "security_assessment",
            f"{years} years from issue; extension window opens {window} PRC working days before expiry",
        ),
        *_pi_basics(facts),
    ]


def _contract_or_certification(facts: Facts) -> list[dict[str, Any]]:
    return [
        _ev(
            "standard_contract",
            f"filing receipt due within {facts.policy.contract_filing_working_days} working days of the contract; "
            "re-filed on change",
            alternatives=["certification"],
        ),
        *_pi_basics(facts),
    ]


def _ftz_mechanism(facts: Facts) -> str:
    item = facts.inputs.exporter.ftz_list_item
    return item["mechanism"] if item else "exempt"


def _ftz_evidence(facts: Facts) -> list[dict[str, Any]]:
    decision = _ftz_mechanism(facts)
    mechanism = {"security_assessment": _security_assessment, "contract_or_certification": _contract_or_certification}
    extra = mechanism[decision](facts) if decision in mechanism else _pi_basics(facts)
    zone = _ev("ftz_registration", "re-checked when the zone's list changes", zone=facts.inputs.exporter.ftz)
    return [zone, *[e for e in extra if e["kind"] != zone["kind"]]]


OUTBOUND_RULES: tuple[Rule, ...] = (
    Rule("R1", lambda f: f.inputs.product.classification == "core", _const("prohibited"),
         "Core data may not be traded or exported.", "核心数据不得交易或出境。", "DSL Art 21"),
    Rule("R2", lambda f: f.inputs.trade.buyer_type == "foreign_authority" and f.abroad, _const("prohibited"),
         "Data for a foreign judicial or law-enforcement body needs the approval of the competent PRC authority.",
         "向外国司法或者执法机构提供数据，须经中华人民共和国主管机关批准。", "DSL Art 36",
         lambda f: [_ev("prc_approval", "per request", lifts="R2")]),
    Rule("R3", lambda f: f.inputs.trade.buyer_restricted, _const("prohibited"),
         "The buyer is on the restricted-party list.", "数据需求方在受限主体名单上。", "PIPL Art 42; sanctions policy"),
    Rule("R4", lambda f: US_REGIME in f.inputs.product.origin_regimes and f.china_linked_buyer,
         _const("hold_for_review"),
         "US-origin data for a China-linked buyer: review under the US bulk-data rule.",
         "美国来源数据提供给与中国关联的买方：须依美国大宗数据规则审查。", "28 CFR 202"),
    Rule("R5", lambda f: not f.abroad, _const("no_transfer"),
         "The buyer is in mainland China: no cross-border transfer; records are still kept.",
         "数据需求方在中国境内：不涉及数据出境；仍须留存交易记录。", "DSL Art 33"),
    Rule("R6", lambda f: f.inputs.trade.delivery == "sandbox_results_only" and f.inputs.product.anonymised_output
         and f.inputs.product.classification == "general",
         _const("exempt"),
         "Only anonymised results leave the in-country sandbox.", "仅匿名化结果离开境内数据沙箱。", "Results only leave the sandbox"),
    Rule("R7", lambda f: f.inputs.product.important_source == "self_identified", _const("hold_for_review"),
         "The provider itself identified the data as important: a compliance officer reviews it.",
         "数据提供方自行识别为重要数据：由合规专员审查。", "GB/T 43697-2024; Provisions Art 2"),
    Rule("R8", lambda f: f.inputs.product.origin == "foreign_only" and f.inputs.trade.exemption_claimed == "art4",
         _const("exempt"),
         "Personal information collected abroad and sent abroad again with nothing from China added: exempt.",
         "境外收集、在境内处理后向境外提供且未引入境内个人信息或重要数据：免予申报。", "Provisions Art 4",
         lambda f: [_ev("lineage_proof", "per product revision"), *_pi_basics(f)]),
    Rule("R9", lambda f: f.inputs.trade.exemption_claimed in ("art5_1", "art5_2", "art5_3"), _const("hold_for_review"),
         "An Art 5(1)-(3) exemption is claimed: a compliance officer reviews whether it applies to a sale.",
         "主张第五条第一至三项豁免：由合规专员审查其是否适用于数据交易。", "Provisions Art 5"),
    Rule("R10", lambda f: f.inputs.exporter.is_ciio and (f.has_pi or f.important), _const("security_assessment"),
         "A critical information infrastructure operator exports personal information or important data.",
         "关键信息基础设施运营者向境外提供个人信息或重要数据。", "Provisions Art 7(1)", _security_assessment),
    Rule("R11", lambda f: f.important and f.inputs.product.important_source in ("notified", "published", "ftz_list"),
         _const("security_assessment"),
         "Important data, as notified or published by the authorities.", "经告知或公布的重要数据。",
         "Provisions Art 7(2)", _security_assessment),
    Rule("R12", lambda f: bool(f.inputs.exporter.ftz) and not f.inputs.exporter.is_ciio and f.inputs.exporter.ftz_scenario_covered,
         _ftz_mechanism,
         "The exporter is registered in a free trade zone whose list covers this scenario.",
         "数据处理者注册于自由贸易试验区，且该区负面清单覆盖此场景。", "Provisions Art 6", _ftz_evidence),
    Rule("R13", lambda f: not f.has_pi, _const("exempt"),
         "No personal information: no export mechanism is needed.", "不含个人信息：无需履行数据出境手续。",
         "Provisions Art 3; PIPL Art 38 applies to personal information only"),
    Rule("R14", lambda f: f.n >= f.policy.pi_security_assessment_from or f.s >= f.policy.sensitive_security_assessment_from,
         _const("security_assessment"),
         "Since 1 January: personal information of 1,000,000 or more individuals, or sensitive personal information of 10,000 or more.",
         "自当年1月1日起累计向境外提供100万人以上个人信息或1万人以上敏感个人信息。", "Provisions Art 7(2)",
         _security_assessment),
    Rule("R15", lambda f: f.n >= f.policy.pi_exempt_below or f.s >= 1, _const("contract_or_certification"),
         "Since 1 January: personal information of 100,000 to 999,999 individuals, or sensitive personal information of fewer than 10,000.",
         "自当年1月1日起累计向境外提供10万人以上、不满100万人个人信息或不满1万人敏感个人信息。", "Provisions Art 8",
         _contract_or_certification),
    Rule("R16", lambda f: True, _const("exempt"),
         "Since 1 January: personal information of fewer than 100,000 individuals, none sensitive.",
         "自当年1月1日起累计向境外提供不满10万人个人信息（不含敏感个人信息）。", "Provisions Art 5(4)", _pi_basics),
)  # fmt: skip

INBOUND_RULES: tuple[Rule, ...] = (
    OUTBOUND_RULES[0],  # R1: core data is traded by no one here
    OUTBOUND_RULES[2],  # R3: restricted parties
    OUTBOUND_RULES[3],  # R4: US-origin data, China-linked buyer
    Rule("I1", lambda f: f.has_pi and EU_REGIME in f.inputs.product.origin_regimes and not f.abroad, _const("hold_for_review"),
         "EU-origin personal information sold to a buyer in China: GDPR Chapter V safeguards must be on file.",
         "欧盟来源个人信息出售给中国境内买方：须备有《通用数据保护条例》第五章规定的保障措施。",
         "GDPR Art 46; Commission Decision 2021/914",
         lambda f: [_ev("eu_scc", "reviewed when the law changes", module="1"),
                    _ev("transfer_impact_assessment", "reviewed when the law changes")]),
    Rule("I2", lambda f: True, _const("no_transfer"),
         "The data does not leave mainland China: no export from China's side.", "数据不从中国境内出境：不涉及中方出境手续。",
         "DSL Art 33"),
)  # fmt: skip

ART10 = {
    "rule": "A10",
    "text_en": "Notice, separate consent and a PIPIA apply to every export of personal information, exempt or not.",
    "text_zh": "无论是否免予申报，向境外提供个人信息均须履行告知、取得单独同意并开展个人信息保护影响评估。",
    "source": "Provisions Art 10; PIPL Arts 39, 55-56",
}


@dataclass(frozen=True)
class Decision:
    decision: str
    rules: list[str]
    reasons: list[dict[str, str]]
    evidence: list[dict[str, Any]]
    rule_version: str
    direction: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(inputs: Inputs, policy: Policy | None = None) -> Decision:
    """First matching rule wins. Deterministic: the same inputs and policy give the same decision."""
    policy = policy or Policy()
    facts = Facts(inputs, policy)
    if facts.outbound:
        rules, direction = OUTBOUND_RULES, ("outbound" if facts.abroad else "domestic")
    else:
        rules, direction = INBOUND_RULES, ("inbound" if not facts.abroad else "foreign")
    rule = next(r for r in rules if r.applies(facts))
    decision = rule.decision(facts)
    reasons = [{"rule": rule.id, "text_en": rule.text_en, "text_zh": rule.text_zh, "source": rule.source}]
    fired = [rule.id]
    evidence = rule.evidence(facts)
    # Art 10 whenever personal information may leave: exempt, under a mechanism, or held for review (if the
    # review clears it). Not when nothing leaves (R5, and R6's anonymised results) nor when it is prohibited.
    if facts.outbound and facts.abroad and facts.has_pi and decision != "prohibited" and rule.id not in ("R5", "R6"):
        reasons.append(dict(ART10))
        fired.append("A10")
        kinds = {e["kind"] for e in evidence}
        evidence += [e for e in _pi_basics(facts) if e["kind"] not in kinds]
    return Decision(
        decision=decision,
        rules=fired,
        reasons=reasons,
        evidence=evidence,
        rule_version=RULE_VERSION,
        direction=direction,
    )


def assess(raw: Any, policy: Policy | None = None) -> dict[str, Any]:
    """The engine's JSON face: the specification's input object in, the decision object out."""
    return decide(parse_input(raw), policy).as_dict()
