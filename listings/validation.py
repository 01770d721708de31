"""Validation of a product's content: the data dictionary, the licence terms, the sample file.

Each validator raises django.core.exceptions.ValidationError keyed by field, so that forms, the API and
the services all report the same message in the same place.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django_countries import countries

from .models import DeliveryMode, FieldType

FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_FIELDS = 500
MAX_TAGS = 20
MAX_TAG_LENGTH = 40
SAMPLE_FORMATS = ("csv", "json")
WORLDWIDE = "worldwide"


def field_error(field: str, messages: str | list[str], code: str) -> ValidationError:
    """A ValidationError for one field whose messages keep a machine-readable code."""
    items = messages if isinstance(messages, list) else [messages]
    return ValidationError({field: [ValidationError(str(m), code=code) for m in items]})


def clean_dictionary(value: Any) -> list[dict[str, Any]]:
    """A list of fields {name, type, description, unit, personal, sensitive}; names unique, types known."""
    if not isinstance(value, list) or not value:
        raise field_error("dictionary", _("Describe at least one field."), "dictionary_empty")
    if len(value) > MAX_FIELDS:
        raise field_error("dictionary", _("At most %(n)d fields.") % {"n": MAX_FIELDS}, "dictionary_size")
    errors: list[str] = []
    cleaned: list[dict[str, Any]] = []
    seen: set[str] = set()
    for position, field in enumerate(value, start=1):
        if not isinstance(field, dict):
            errors.append(_("Field %(i)d is not an object.") % {"i": position})
            continue
        name = str(field.get("name", "")).strip()
        field_type = str(field.get("type", "")).strip()
        if not FIELD_NAME.match(name):
            errors.append(
                _("Field %(i)d: “%(name)s” is not a valid name (letters, digits and _, starting with a letter).")
                % {"i": position, "name": name[:80]}
            )
        elif name.lower() in seen:
            errors.append(_("Field %(i)d: the name “%(name)s” is used twice.") % {"i": position, "name": name})
        seen.add(name.lower())
        if field_type not in FieldType.values:
            errors.append(
                _("Field %(i)d: unknown type “%(type)s” (one of %(types)s).")
                % {"i": position, "type": field_type[:40], "types": ", ".join(FieldType.values)}
            )
        personal = field.get("personal", False)
        sensitive = field.get("sensitive", False)
        if not isinstance(personal, bool) or not isinstance(sensitive, bool):
            errors.append(_("Field %(i)d: “personal” and “sensitive” are true or false.") % {"i": position})
            continue
        if sensitive and not personal:
            errors.append(_("Field %(i)d: sensitive personal information is personal information.") % {"i": position})
        cleaned.append(
            {
                "name": name,
                "type": field_type,
                "description": str(field.get("description", "")).strip()[:500],
                "unit": str(field.get("unit", "")).strip()[:50],
                "personal": personal,
                "sensitive": sensitive,
            }
        )
    if errors:
        raise field_error("dictionary", errors, "dictionary_invalid")
    return cleaned


def clean_licence_terms(value: Any) -> dict[str, Any]:
    """{purposes: [..], territories: ["worldwide"|ISO codes], duration_months: int|null, onward_transfer, resale}."""
    if not isinstance(value, dict):
        raise field_error("licence_terms", _("The licence terms are an object."), "licence_invalid")
    errors: list[str] = []
    purposes = value.get("purposes")
    if not isinstance(purposes, list) or not purposes or not all(isinstance(p, str) and p.strip() for p in purposes):
        errors.append(_("List the permitted purposes."))
        purposes = []
    territories = value.get("territories")
    if not isinstance(territories, list) or not territories:
        errors.append(_("List the territories where the data may be used (or “worldwide”)."))
        territories = []
    else:
        territories = [
            str(t).strip().upper() if str(t).strip().lower() != WORLDWIDE else WORLDWIDE for t in territories
        ]
        unknown = [t for t in territories if t != WORLDWIDE and t not in countries]
        if unknown:
            errors.append(_("Unknown territory: %(codes)s.") % {"codes": ", ".join(unknown[:5])})
    duration = value.get("duration_months")
    if duration is not None and (
        not isinstance(duration, int) or isinstance(duration, bool) or not 1 <= duration <= 120
    ):
        errors.append(_("The licence lasts 1 to 120 months, or has no end (null)."))
    flags = {}
    for flag in ("onward_transfer", "resale"):
        flag_value = value.get(flag, False)
        if not isinstance(flag_value, bool):
            errors.append(_("“%(flag)s” is true or false.") % {"flag": flag})
        flags[flag] = bool(flag_value)
    if errors:
        raise field_error("licence_terms", errors, "licence_invalid")
    return {
        "purposes": [p.strip()[:200] for p in purposes],
        "territories": sorted(set(territories)),
        "duration_months": duration,
        **flags,
    }


def clean_delivery_modes(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise field_error("delivery_modes", _("Offer at least one delivery mode."), "delivery_empty")
    unknown = [m for m in value if m not in DeliveryMode.values]
    if unknown:
        raise field_error(
            "delivery_modes",
            _("Unknown delivery mode: %(modes)s.") % {"modes": ", ".join(map(str, unknown))[:100]},
            "delivery_invalid",
        )
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


def clean_origin_countries(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise field_error("origin_countries", _("Say where the data was collected."), "origin_empty")
    codes = sorted({str(c).strip().upper() for c in value})
    unknown = [c for c in codes if c not in countries]
    if unknown:
        raise field_error(
            "origin_countries", _("Unknown country: %(codes)s.") % {"codes": ", ".join(unknown[:5])}, "origin_invalid"
        )
    return codes


def clean_export_destinations(value: Any) -> list[str]:
    """Where buyers may receive the product; an empty list means every country."""
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise field_error("export_destinations", _("A list of country codes."), "destinations_invalid")
    codes = sorted({str(c).strip().upper() for c in value if str(c).strip()})
    unknown = [c for c in codes if c not in countries]
    if unknown:
        raise field_error(
            "export_destinations",
            _("Unknown country: %(codes)s.") % {"codes": ", ".join(unknown[:5])},
            "destinations_invalid",
        )
    return codes


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


def _check_text(value: str, field_type: str) -> bool:
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


def _check_json(value: Any, field_type: str) -> bool:
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
    return isinstance(value, str) and _check_text(value, field_type)


def _shown(value: Any) -> str:
    """A value as the provider wrote it, shortened for a message."""
    if value is None or isinstance(value, (bool, dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)[:40]
    return str(value)[:40]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: Python reads them, RFC 8259 has no such numbers


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
        raise field_error("sample", _("Describe the fields in the dictionary before uploading a sample."), "invalid")
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
                "sample", _("The CSV sample is malformed: %(error)s") % {"error": exc}, "invalid"
            ) from None
    else:
        try:
            data = json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
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
    if extension == "csv":
        check, no_values = _check_text, _("Line %(line)d has no values.")
        bad_value = _("Line %(line)d, field %(field)s: “%(value)s” is not a valid %(type)s.")
    else:
        check, no_values = _check_json, _("Row %(row)d has no values.")
        bad_value = _("Row %(row)d, field %(field)s: “%(value)s” is not a valid %(type)s.")
    problems: list[str] = []
    for place, row in zip(places, rows, strict=True):
        if all(_empty(value) for value in row.values()):
            problems.append(no_values % {"line": place, "row": place})
        for key, value in row.items():
            if not check(value, types[key]):
                label = FieldType(types[key]).label
                problems.append(
                    bad_value % {"line": place, "row": place, "field": key, "value": _shown(value), "type": label}
                )
        if len(problems) >= 10:
            del problems[10:]  # enough to see what is wrong
            break
    if problems:
        raise field_error("sample", problems, "sample_values")
    # Previews are JSON: Decimals from JSON samples become strings, as CSV values already are.
    return [{k: (str(v) if isinstance(v, Decimal) else v) for k, v in row.items()} for row in rows]
