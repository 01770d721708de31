"""Validation of a product's content: the data dictionary, the licence terms, the sample file.

Each validator raises django.core.exceptions.ValidationError keyed by field, so that forms, the API and
the services all report the same message in the same place.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import re
from collections.abc import Callable, Collection, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_countries import countries

from exchange.selectors import group_board_access

from .models import DataProduct, DeliveryMode, FieldType, ImportantSource, PricePlan, Revision, SandboxRole

FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Names the data's engine gives columns of its own (the data gateway pages by DuckDB's `file_row_number`).
RESERVED_NAMES = frozenset({"file_row_number"})
MAX_FIELDS = 500
MAX_TAGS = 20
MAX_TAG_LENGTH = 40
MAX_COUNTRIES = 300
SAMPLE_FORMATS = ("csv", "json")
WORLDWIDE = "worldwide"
# The values of a licence's `territories`: "worldwide", or countries by their ISO code.
TERRITORY_CHOICES = [(WORLDWIDE, gettext_lazy("Worldwide")), *countries]

Errors = dict[str, list[ValidationError]]


def field_error(field: str, messages: str | list[str], code: str) -> ValidationError:
    """A ValidationError for one field whose messages keep a machine-readable code."""
    items = messages if isinstance(messages, list) else [messages]
    return ValidationError({field: [ValidationError(str(m), code=code) for m in items]})


def _add(errors: Errors, field: str, message: str, code: str) -> None:
    errors.setdefault(field, []).append(ValidationError(message, code=code))


def merge_errors(errors: Errors, exc: ValidationError) -> None:
    """Add a ValidationError's messages, with their codes, under the keys it names."""
    for key, items in (exc.error_dict if hasattr(exc, "error_dict") else {"__all__": exc.error_list}).items():
        errors.setdefault(key, []).extend(items)


def clean_dictionary(value: Any) -> list[dict[str, Any]]:
    """A list of fields {name, type, description, unit, personal, sensitive, identifier, sandbox}; names unique,
    types known; at most one `identifier` (the person's, so personal), which has no `sandbox` role (it is never an
    output); `sandbox` "" (not in the sandbox), "measure" (aggregated) or "dimension" (grouped and filtered by).

    The errors of one field of the dictionary are keyed by its position and attribute (`dictionary.1.name`), as
    the API's shape checks key theirs."""
    if not isinstance(value, list) or not value:
        raise field_error("dictionary", _("Describe at least one field."), "dictionary_empty")
    if len(value) > MAX_FIELDS:
        raise field_error("dictionary", _("At most %(n)d fields.") % {"n": MAX_FIELDS}, "dictionary_size")
    errors: Errors = {}
    cleaned: list[dict[str, Any]] = []
    seen: set[str] = set()
    identifier_at: str | None = None
    for index, field in enumerate(value):
        at = f"dictionary.{index}"
        if not isinstance(field, dict):
            _add(errors, at, _("A field is an object."), "not_an_object")
            continue
        name = str(field.get("name", "")).strip()
        field_type = str(field.get("type", "")).strip()
        if not FIELD_NAME.match(name):
            _add(
                errors,
                f"{at}.name",
                _("“%(name)s” is not a valid name (letters, digits and _, starting with a letter or _).")
                % {"name": name[:80]},
                "invalid_name",
            )
        elif name.lower() in RESERVED_NAMES:
            _add(
                errors,
                f"{at}.name",
                _("“%(name)s” is a name the exchange keeps for its own use in the data: choose another.")
                % {"name": name},
                "reserved_name",
            )
        elif name.lower() in seen:
            _add(
                errors,
                f"{at}.name",
                _("The name “%(name)s” is used twice (names are compared ignoring case).") % {"name": name},
                "duplicate_name",
            )
        seen.add(name.lower())
        if field_type not in FieldType.values:
            _add(
                errors,
                f"{at}.type",
                _("Unknown type “%(type)s” (one of %(types)s).")
                % {"type": field_type[:40], "types": ", ".join(FieldType.values)},
                "invalid_type",
            )
        personal = field.get("personal", False)
        sensitive = field.get("sensitive", False)
        identifier = field.get("identifier", False)
        role = field.get("sandbox", "")
        if role is None:
            role = ""
        for flag, flag_value in (("personal", personal), ("sensitive", sensitive), ("identifier", identifier)):
            if not isinstance(flag_value, bool):
                _add(errors, f"{at}.{flag}", _("True or false."), "not_a_boolean")
        if not isinstance(role, str) or role not in SandboxRole.values:
            _add(
                errors, f"{at}.sandbox", _("The sandbox's use of a field is empty, “measure” or “dimension”."),
                "invalid_sandbox_role",
            )  # fmt: skip
            role = ""
        if not isinstance(personal, bool) or not isinstance(sensitive, bool) or not isinstance(identifier, bool):
            continue
        if sensitive and not personal:
            _add(
                errors, f"{at}.sensitive", _("Sensitive personal information is personal information."),
                "sensitive_not_personal",
            )  # fmt: skip
        if identifier:
            if not personal:
                _add(
                    errors, f"{at}.identifier", _("The person's identifier is personal information."),
                    "identifier_not_personal",
                )  # fmt: skip
            if identifier_at is not None:
                _add(
                    errors, f"{at}.identifier", _("Only one field is the person's identifier."), "identifier_twice"
                )  # fmt: skip
            identifier_at = identifier_at or at
            if role:
                _add(
                    errors, f"{at}.sandbox",
                    _("The person's identifier is never a sandbox's output: it is neither a measure nor a dimension."),
                    "identifier_not_output",
                )  # fmt: skip
        cleaned.append(
            {
                "name": name,
                "type": field_type,
                "description": str(field.get("description", "")).strip()[:500],
                "unit": str(field.get("unit", "")).strip()[:50],
                "personal": personal,
                "sensitive": sensitive,
                "identifier": identifier,
                "sandbox": role,
            }
        )
    if errors:
        raise ValidationError(errors)
    return cleaned


def clean_sandbox_min_individuals(value: Any) -> int:
    """The product's sandbox threshold: a whole number from the platform's minimum up."""
    low, high = settings.SANDBOX_MIN_INDIVIDUALS, settings.SANDBOX_MAX_MIN_INDIVIDUALS
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise field_error(
            "sandbox_min_individuals",
            _("Between %(low)d (the exchange's minimum) and %(high)d individuals.") % {"low": low, "high": high},
            "sandbox_threshold_invalid",
        )
    return value


def clean_licence_terms(value: Any) -> dict[str, Any]:
    """{purposes: [..], territories: ["worldwide"|ISO codes], duration_months: int|null, onward_transfer, resale},
    each term's errors keyed by its path (`licence_terms.duration_months`)."""
    if not isinstance(value, dict):
        raise field_error("licence_terms", _("The licence terms are an object."), "licence_invalid")
    errors: Errors = {}
    purposes = value.get("purposes")
    if not isinstance(purposes, list) or not purposes or not all(isinstance(p, str) and p.strip() for p in purposes):
        _add(errors, "licence_terms.purposes", _("List the permitted purposes."), "purposes_missing")
        purposes = []
    territories = value.get("territories")
    if not isinstance(territories, list) or not territories:
        _add(
            errors, "licence_terms.territories",
            _("List the territories where the data may be used (or “worldwide”)."), "territories_missing",
        )  # fmt: skip
        territories = []
    else:
        territories = [
            str(t).strip().upper() if str(t).strip().lower() != WORLDWIDE else WORLDWIDE for t in territories
        ]
        unknown = [t for t in territories if t != WORLDWIDE and t not in countries]
        if unknown:
            _add(
                errors, "licence_terms.territories",
                _("Unknown territory: %(codes)s.") % {"codes": ", ".join(unknown[:5])}, "unknown_territory",
            )  # fmt: skip
    duration = value.get("duration_months")
    if duration is not None and (
        not isinstance(duration, int) or isinstance(duration, bool) or not 1 <= duration <= 120
    ):
        _add(
            errors, "licence_terms.duration_months", _("The licence lasts 1 to 120 months, or has no end (null)."),
            "duration_invalid",
        )  # fmt: skip
    flags = {}
    for flag in ("onward_transfer", "resale"):
        flag_value = value.get(flag, False)
        if not isinstance(flag_value, bool):
            _add(errors, f"licence_terms.{flag}", _("True or false."), "not_a_boolean")
        flags[flag] = bool(flag_value)
    if errors:
        raise ValidationError(errors)
    return {
        "purposes": [p.strip()[:200] for p in purposes],
        "territories": sorted(set(territories)),
        "duration_months": duration,
        **flags,
    }


def clean_delivery_modes(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise field_error("delivery_modes", _("Offer at least one delivery mode."), "delivery_empty")
    errors: Errors = {}
    for index, mode in enumerate(value):
        if mode not in DeliveryMode.values:
            _add(
                errors, f"delivery_modes.{index}",
                _("Unknown delivery mode: %(mode)s.") % {"mode": str(mode)[:40]}, "delivery_invalid",
            )  # fmt: skip
    if errors:
        raise ValidationError(errors)
    return [m for m in DeliveryMode.values if m in value]


def clean_tags(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise field_error("tags", _("At most %(n)d tags.") % {"n": MAX_TAGS}, "tags_invalid")
    tags: list[str] = []
    for tag in value:
        tag = str(tag).strip()
        if not tag or len(tag) > MAX_TAG_LENGTH:
            raise field_error("tags", _("Tags have 1 to %(n)d characters.") % {"n": MAX_TAG_LENGTH}, "tags_invalid")
        if tag.lower() not in {t.lower() for t in tags}:
            tags.append(tag)
    return tags


def _country_codes(field: str, value: list[Any], code: str, *, skip_blank: bool = False) -> list[str]:
    errors: Errors = {}
    codes: set[str] = set()
    for index, item in enumerate(value):
        text = str(item).strip().upper()
        if not text and skip_blank:
            continue
        if text not in countries:
            _add(errors, f"{field}.{index}", _("Unknown country: %(code)s.") % {"code": str(item)[:10]}, code)
        codes.add(text)
    if errors:
        raise ValidationError(errors)
    return sorted(codes)


def clean_origin_countries(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise field_error("origin_countries", _("Say where the data was collected."), "origin_empty")
    return _country_codes("origin_countries", value, "origin_invalid")


def clean_export_destinations(value: Any) -> list[str]:
    """Where buyers may receive the product; an empty list means every country."""
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise field_error("export_destinations", _("A list of country codes."), "destinations_invalid")
    return _country_codes("export_destinations", value, "destinations_invalid", skip_blank=True)


# Each field's own rules, by field.
CONTENT_CLEANERS = {
    "dictionary": clean_dictionary,
    "licence_terms": clean_licence_terms,
    "delivery_modes": clean_delivery_modes,
    "tags": clean_tags,
    "origin_countries": clean_origin_countries,
    "export_destinations": clean_export_destinations,
    "sandbox_min_individuals": clean_sandbox_min_individuals,
}

# The rules between a revision's fields, each with the fields it reads: a rule is not checked while one of
# them is already refused, since its message would be about a value the caller must change anyway.
_COVERAGE = frozenset({"coverage_start", "coverage_end"})
_PERSONAL = frozenset(
    {"dictionary", "contains_personal_info", "personal_info_subjects", "sensitive_personal_info_subjects"}
)
_IMPORTANCE = frozenset({"classification", "important_source"})


def revision_rule_errors(revision: Revision, *, refused: Collection[str] = ()) -> Errors:
    """Every rule between fields the revision breaks (each checked on every save of a draft and again at
    submission), leaving out those that read a field in `refused`."""
    errors: Errors = {}
    refused_roots = {key.split(".", 1)[0] for key in refused}

    def checked(fields: frozenset[str]) -> bool:
        return not fields & refused_roots

    start, end = revision.coverage_start, revision.coverage_end
    if checked(_COVERAGE) and start and end and start > end:
        _add(errors, "coverage_end", _("The coverage ends before it starts."), "coverage_reversed")
    if checked(_PERSONAL):
        personal = any(f.get("personal") for f in revision.dictionary)
        sensitive = any(f.get("sensitive") for f in revision.dictionary)
        if personal and not revision.contains_personal_info:
            _add(
                errors, "contains_personal_info",
                _("The dictionary has personal fields: the product contains personal information."),
                "personal_info_undeclared",
            )  # fmt: skip
        if revision.contains_personal_info:
            if revision.personal_info_subjects + revision.sensitive_personal_info_subjects == 0:
                _add(
                    errors, "personal_info_subjects",
                    _("Say how many individuals the personal information covers."), "subjects_missing",
                )  # fmt: skip
            if sensitive and revision.sensitive_personal_info_subjects == 0:
                _add(
                    errors, "sensitive_personal_info_subjects",
                    _("The dictionary has sensitive fields: say how many individuals they cover."), "subjects_missing",
                )  # fmt: skip
            if revision.sensitive_personal_info_subjects and not sensitive:
                _add(
                    errors, "dictionary", _("Mark which fields hold the sensitive personal information."),
                    "sensitive_fields_missing",
                )  # fmt: skip
        elif revision.personal_info_subjects or revision.sensitive_personal_info_subjects:
            _add(
                errors, "contains_personal_info",
                _("Individuals are counted, so the product contains personal information."),
                "personal_info_undeclared",
            )  # fmt: skip
    if checked(_IMPORTANCE):
        if revision.classification == "important" and revision.important_source == ImportantSource.NONE:
            _add(errors, "important_source", _("Say why the data is important."), "important_source_missing")
        if revision.classification != "important" and revision.important_source != ImportantSource.NONE:
            _add(
                errors, "important_source", _("Only important data has a reason for being important."),
                "important_source_unexpected",
            )  # fmt: skip
    if checked(frozenset({"category"})) and revision.category_id and not revision.category.is_active:
        _add(errors, "category", _("This category is no longer in use."), "category_inactive")
    return errors


def content_check(
    content: Mapping[str, Any],
    *,
    base: Revision | None = None,
    refused: Collection[str] = (),
    between: bool = True,
) -> tuple[dict[str, Any], Errors]:
    """The content cleaned, and every rule it breaks at once: each field's own and those between fields, on the
    draft `base` with the content applied (on a new revision's defaults without one).

    `refused` names the fields the caller already refused (the API's shape checks): they are not cleaned, and
    the rules that read them are left out. Without `between`, only each field's own rules are checked (for an
    edit with no draft to apply it to)."""
    cleaned = {name: value for name, value in content.items() if name not in refused}
    errors: Errors = {}
    for name, cleaner in CONTENT_CLEANERS.items():
        if name in cleaned:
            try:
                cleaned[name] = cleaner(cleaned[name])
            except ValidationError as exc:
                merge_errors(errors, exc)
                del cleaned[name]
    if not between:
        return cleaned, errors
    revision = copy.copy(base) if base is not None else Revision()
    for name, value in cleaned.items():
        setattr(revision, name, value)
    rules = revision_rule_errors(revision, refused={*refused, *errors, *(set(content) - set(cleaned))})
    for key, items in rules.items():
        errors.setdefault(key, []).extend(items)
    return cleaned, errors


# --- Price plans -------------------------------------------------------------------------------------

PRIVATE_OFFER_REFUSAL = gettext_lazy("No firm that may trade on this board has this code.")


def plan_rule_errors(product: DataProduct, plan: PricePlan, *, refused: Collection[str] = ()) -> Errors:
    """Every rule the plan breaks, leaving out those that read a field in `refused` (already refused by the
    caller's shape checks). `plan.buyer_firm` is the firm its `buyer_code` names, if any."""
    errors: Errors = {}

    def checked(*fields: str) -> bool:
        return not set(fields) & set(refused)

    def add(field: str, message: str, code: str) -> None:
        _add(errors, field, message, code)

    if checked("currency") and plan.currency not in product.board.settlement_currencies:
        add(
            "currency",
            _("The %(board)s settles in %(currencies)s only.")
            % {"board": product.board.name, "currencies": ", ".join(product.board.settlement_currencies)},
            "currency_not_settled",
        )
    for field in ("amount", "unit_price"):
        value = getattr(plan, field)
        if value is None or not checked(field):
            continue
        if not isinstance(value, Decimal) or not value.is_finite():
            add(field, _("Enter a number."), "not_a_number")
        elif value < 0:
            add(field, _("A price cannot be negative."), "price_negative")
        elif value > settings.LISTING_MAX_PRICE:
            add(
                field,
                _("A price above %(max)s is not accepted.") % {"max": settings.LISTING_MAX_PRICE},
                "price_too_high",
            )
    metered_only = _("Only metered plans have included calls and a unit price.")
    if checked("kind", "amount") and plan.kind and plan.kind != PricePlan.Kind.METERED and plan.amount == 0:
        add("amount", _("Free data is not sold here: a plan has a price above zero."), "price_zero")
    if plan.kind == PricePlan.Kind.ONE_OFF:
        if checked("kind", "period") and plan.period:
            add("period", _("A one-off plan has no billing period."), "period_unexpected")
        if checked("kind", "included_calls", "unit_price") and (
            plan.included_calls is not None or plan.unit_price is not None
        ):
            add("kind", metered_only, "metered_only")
    elif plan.kind and checked("kind", "period") and not plan.period:
        add("period", _("Choose monthly or annual billing."), "period_missing")
    if (
        plan.kind == PricePlan.Kind.SUBSCRIPTION
        and checked("kind", "included_calls", "unit_price")
        and (plan.included_calls is not None or plan.unit_price is not None)
    ):
        add("kind", metered_only, "metered_only")
    if plan.kind == PricePlan.Kind.METERED:
        if checked("kind", "included_calls") and plan.included_calls is None:
            add("included_calls", _("Say how many calls a period includes (0 for none)."), "included_calls_missing")
        if checked("kind", "unit_price") and plan.unit_price is None:
            add("unit_price", _("Set the price per call beyond those included."), "unit_price_missing")
    if plan.buyer_code and checked("buyer_code"):
        buyer = plan.buyer_firm
        if buyer is not None and buyer.pk == product.provider_id:
            add("buyer_code", _("A private offer is for another firm."), "private_offer_own_firm")
        elif (
            buyer is None
            or not buyer.is_kyc_verified
            or product.board_id not in group_board_access(group=buyer.group_id).tradable
        ):
            # The same words whether no firm has the code or the firm may not trade here: a provider learns
            # nothing about who is a member where.
            add("buyer_code", str(PRIVATE_OFFER_REFUSAL), "private_offer_refused")
    return errors


# --- Samples ------------------------------------------------------------------------------------------


# A number beyond ±10^18 or with more than 18 decimal places is a typo or an attempt to break whoever reads
# the sample: `1e99999999999` is a valid literal that becomes infinity (or an overflow) downstream.
NUMBER_DIGITS = 18
BOOLEAN_WORDS = {"true", "false", "1", "0", "yes", "no"}


def _integer_ok(number: int) -> bool:
    return -(10**NUMBER_DIGITS) < number < 10**NUMBER_DIGITS


def _decimal_ok(number: Decimal) -> bool:
    # adjusted() and as_tuple() need no context: no rounding, no overflow for an exponent of 99999999999.
    if not number.is_finite():
        return False
    _sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite
    # Trailing zeros are no precision: 1.0e-18 has 18 decimal places, not 19.
    for digit in reversed(digits):
        if digit != 0 or exponent >= 0:
            break
        exponent += 1
    return number.adjusted() < NUMBER_DIGITS and -exponent <= NUMBER_DIGITS


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# Python's int(), Decimal() and fromisoformat() also take "1_000", Arabic-Indic and full-width digits,
# "20260101" and week dates; a sample's reader (any CSV tool) takes none of them. Plain ASCII forms only.
INTEGER_TEXT = re.compile(r"[+-]?[0-9]+", re.ASCII)
DECIMAL_TEXT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)
DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
DATETIME_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:?[0-9]{2})?", re.ASCII
)


def check_text(value: str, field_type: str) -> bool:
    """A CSV cell (always text) against its field's type; an empty cell is a missing value."""
    text = value.strip()
    if not text:
        return True
    try:
        if field_type == FieldType.INTEGER:
            return bool(INTEGER_TEXT.fullmatch(text)) and _integer_ok(int(text))
        if field_type == FieldType.DECIMAL:
            return bool(DECIMAL_TEXT.fullmatch(text)) and _decimal_ok(Decimal(text))
        if field_type == FieldType.BOOLEAN:
            return text.lower() in BOOLEAN_WORDS
        if field_type == FieldType.DATE:
            if not DATE_TEXT.fullmatch(text):
                return False
            date.fromisoformat(text)
        elif field_type == FieldType.DATETIME:
            if not DATETIME_TEXT.fullmatch(text):
                return False
            datetime.fromisoformat(text)
        elif field_type == FieldType.COUNTRY:
            return text.upper() in countries
        elif field_type == FieldType.CURRENCY:
            return bool(re.fullmatch(r"[A-Z]{3}", text))
    except (ValueError, InvalidOperation):
        return False
    return True


def check_json(value: Any, field_type: str) -> bool:
    """A JSON value against its field's type: a number for a number field, true or false for a yes/no field,
    text for the others (checked as a CSV cell is), null for a missing value. No type takes an object or a list."""
    if value is None:
        return True
    if field_type == FieldType.INTEGER:
        return type(value) is int and _integer_ok(value)
    if field_type == FieldType.DECIMAL:
        if type(value) is int:
            return _integer_ok(value)
        return isinstance(value, Decimal) and _decimal_ok(value)
    if field_type == FieldType.BOOLEAN:
        return isinstance(value, bool)
    return isinstance(value, str) and check_text(value, field_type)


def _shown(value: Any) -> str:
    """A value as the provider wrote it, shortened for a message."""
    if value is None or isinstance(value, (bool, dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)[:40]
    return str(value)[:40]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: Python reads them, RFC 8259 has no such numbers


def json_loads(text: str) -> Any:
    """JSON as a sample or a dataset holds it: decimals exact, NaN and Infinity refused (ValueError)."""
    return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)


def parse_sample(*, name: str, content: bytes, dictionary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check a sample against the dictionary; answer its rows. Raises ValidationError({"sample": ...})."""
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension not in SAMPLE_FORMATS:
        raise field_error("sample", _("A sample is a .csv or .json file."), "sample_type")
    if len(content) > settings.LISTING_SAMPLE_MAX_BYTES:
        raise field_error(
            "sample",
            _("A sample is at most %(kib)d KiB.") % {"kib": settings.LISTING_SAMPLE_MAX_BYTES // 1024},
            "sample_size",
        )
    if not dictionary:
        raise field_error(
            "sample", _("Describe the fields in the dictionary before uploading a sample."), "sample_needs_dictionary"
        )
    try:
        text = content.decode("utf-8-sig")
        if "\x00" in text:
            raise UnicodeDecodeError("utf-8", content, 0, 1, "NUL character")  # text has none; PostgreSQL stores none
    except UnicodeDecodeError:
        raise field_error("sample", _("The sample must be UTF-8 text."), "sample_encoding") from None
    names = [f["name"] for f in dictionary]
    places: list[int] = []  # where each row is: its line in a CSV file, its position in a JSON list
    if extension == "csv":
        reader = csv.reader(io.StringIO(text))
        try:
            header = next(reader)
        except (StopIteration, csv.Error):
            raise field_error("sample", _("The CSV sample is empty."), "sample_empty") from None
        header = [h.strip() for h in header]
        if sorted(header) != sorted(names):
            raise field_error(
                "sample",
                _("The CSV header must name exactly the dictionary's fields. Missing: %(missing)s; unknown: %(extra)s.")
                % {
                    "missing": ", ".join(n for n in names if n not in header) or "—",
                    "extra": ", ".join(h for h in header if h not in names)[:200] or "—",
                },
                "sample_columns",
            )
        try:
            rows = []
            for line_number, values in enumerate(reader, start=2):
                if not values:
                    continue
                if len(values) != len(header):
                    raise field_error(
                        "sample",
                        _("Line %(line)d has %(got)d values, not %(want)d.")
                        % {"line": line_number, "got": len(values), "want": len(header)},
                        "sample_row",
                    )
                rows.append(dict(zip(header, values, strict=True)))
                places.append(line_number)
                if len(rows) > settings.LISTING_SAMPLE_MAX_ROWS:
                    break
        except csv.Error as exc:
            raise field_error(
                "sample", _("The CSV sample is malformed: %(error)s") % {"error": exc}, "sample_csv"
            ) from None
    else:
        try:
            data = json_loads(text)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            raise field_error("sample", _("The JSON sample is not valid JSON."), "sample_json") from None
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise field_error("sample", _("A JSON sample is a list of objects, one per row."), "sample_json")
        rows = data
        places = list(range(1, len(rows) + 1))
        for index, row in enumerate(rows, start=1):
            if sorted(row) != sorted(names):
                raise field_error(
                    "sample",
                    _("Row %(row)d does not have exactly the dictionary's fields.") % {"row": index},
                    "sample_columns",
                )
    if not rows:
        raise field_error("sample", _("The sample has no rows."), "sample_empty")
    if len(rows) > settings.LISTING_SAMPLE_MAX_ROWS:
        raise field_error(
            "sample", _("A sample has at most %(n)d rows.") % {"n": settings.LISTING_SAMPLE_MAX_ROWS}, "sample_rows"
        )
    types = {f["name"]: f["type"] for f in dictionary}
    check = check_text if extension == "csv" else check_json
    problems: list[str] = []
    for place, row in zip(places, rows, strict=True):
        problems.extend(row_problems(row, types, check=check, place=place, by_line=extension == "csv"))
        if len(problems) >= 10:
            del problems[10:]  # enough to see what is wrong
            break
    if problems:
        raise field_error("sample", problems, "sample_values")
    # Previews are JSON: Decimals from JSON samples become strings, as CSV values already are.
    return [{k: (str(v) if isinstance(v, Decimal) else v) for k, v in row.items()} for row in rows]


def check_native(value: Any, field_type: str) -> bool:
    """A value as a typed file (Parquet) holds it against its field's type: numbers, yes/no and text as in
    JSON, a float only for a finite decimal, a date for a date field, a date and time for a date-and-time field."""
    if isinstance(value, float):
        return field_type == FieldType.DECIMAL and math.isfinite(value) and _decimal_ok(Decimal(repr(value)))
    if isinstance(value, datetime):  # before date: a datetime is a date
        return field_type == FieldType.DATETIME
    if isinstance(value, date):
        return field_type == FieldType.DATE
    return check_json(value, field_type)


def row_problems(
    row: Mapping[str, Any],
    types: Mapping[str, str],
    *,
    check: Callable[[Any, str], bool],
    place: int,
    by_line: bool,
) -> list[str]:
    """What is wrong with one row's values (a row of no values, a value that does not fit its field's type), in
    the words of a sample's and a dataset's checks alike; `place` is its line in a text file (`by_line`), or its
    position among the rows."""
    problems: list[str] = []
    if all(_empty(value) for value in row.values()):
        problems.append(
            (_("Line %(line)d has no values.") if by_line else _("Row %(row)d has no values."))
            % {"line": place, "row": place}
        )
    for key, value in row.items():
        if not check(value, types[key]):
            bad_value = (
                _("Line %(line)d, field %(field)s: “%(value)s” is not a valid %(type)s.")
                if by_line
                else _("Row %(row)d, field %(field)s: “%(value)s” is not a valid %(type)s.")
            )
            problems.append(
                bad_value
                % {
                    "line": place,
                    "row": place,
                    "field": key,
                    "value": _shown(value),
                    "type": FieldType(types[key]).label,
                }
            )
    return problems
