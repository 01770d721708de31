"""A sample's values against the data dictionary (revision_set_sample), for CSV and JSON files alike."""

import json

import pytest
from django.core.exceptions import ValidationError

from listings import services
from tests.factories import draft_product

pytestmark = pytest.mark.django_db

# The dictionary of tests.factories: hs_code text, month date, value_usd decimal, origin country.
ROW = {"hs_code": "8471", "month": "2026-01-01", "value_usd": 12.5, "origin": "CN"}


def json_sample(*rows: dict) -> bytes:
    return json.dumps(list(rows)).encode()


def refusal(provider, name: str, content: bytes) -> list[str]:
    product = draft_product(provider, sample=False)
    with pytest.raises(ValidationError) as exc:
        services.revision_set_sample(product=product, actor=provider, name=name, content=content)
    assert not product.revisions.get().sample
    errors = exc.value.error_dict["sample"]
    assert {e.code for e in errors} == {"sample_values"}, errors
    return [str(e.message) for e in errors]


@pytest.mark.parametrize(
    "value, field",
    [
        ({"code": "8471"}, "hs_code"),  # an object in a text field
        (["8471"], "hs_code"),  # a list
        (8471, "hs_code"),  # a number where text is expected
        ("12.5", "value_usd"),  # text where a number is expected
        (True, "value_usd"),
        ([12.5], "value_usd"),
        (10**19, "value_usd"),  # beyond ±10^18
        ("2026-13-01", "month"),
        ({"date": "2026-01-01"}, "month"),
        ("XX", "origin"),
    ],
)
def test_a_json_value_must_have_its_fields_type(provider, value, field):
    messages = refusal(provider, "s.json", json_sample(ROW, {**ROW, field: value}))
    assert len(messages) == 1 and messages[0].startswith(f"Row 2, field {field}:"), messages


@pytest.mark.parametrize("literal", ["1e99999999999", "-1e400", "1e18", "1e-19"])
def test_huge_or_absurdly_precise_json_numbers_are_refused(provider, literal):
    content = b'[{"hs_code": "8471", "month": "2026-01-01", "value_usd": %s, "origin": "CN"}]' % literal.encode()
    messages = refusal(provider, "s.json", content)
    assert messages[0].startswith("Row 1, field value_usd:"), messages


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_numbers_are_not_json(provider, literal):
    product = draft_product(provider, sample=False)
    content = b'[{"hs_code": "8471", "month": "2026-01-01", "value_usd": %s, "origin": "CN"}]' % literal.encode()
    with pytest.raises(ValidationError) as exc:
        services.revision_set_sample(product=product, actor=provider, name="s.json", content=content)
    assert exc.value.error_dict["sample"][0].code == "sample_json"


def test_a_json_row_of_nulls_is_refused(provider):
    empty = dict.fromkeys(ROW)
    messages = refusal(provider, "s.json", json_sample(ROW, empty, {**empty, "hs_code": " "}))
    assert messages == ["Row 2 has no values.", "Row 3 has no values."]


def test_a_csv_line_without_values_is_refused(provider):
    messages = refusal(provider, "s.csv", b"hs_code,month,value_usd,origin\n8471,2026-01-01,1,CN\n\n,,,\n")
    assert messages == ["Line 4 has no values."]  # the blank line 3 is no row at all


@pytest.mark.parametrize("cell", ["1e99999999999", "Infinity", "NaN", "1" * 19, "0." + "0" * 18 + "1"])
def test_csv_numbers_have_the_same_bounds(provider, cell):
    content = b"hs_code,month,value_usd,origin\n8471,2026-01-01,%s,CN\n" % cell.encode()
    messages = refusal(provider, "s.csv", content)
    assert messages[0].startswith("Line 2, field value_usd:"), messages


def test_missing_values_and_numbers_in_range_are_accepted(provider):
    # given a JSON sample with a missing value in each field but no empty row, and numbers at the bounds
    rows = [
        {**ROW, "hs_code": None},
        {**ROW, "month": None, "value_usd": -999_999_999_999_999_999},
        {**ROW, "origin": None, "value_usd": None},
    ]
    content = (
        json_sample(*rows)[:-1] + b', {"hs_code": "", "month": "", "value_usd": 0.000000000000000001, "origin": "DE"}]'
    )
    product = draft_product(provider, sample=False)

    # when
    revision = services.revision_set_sample(product=product, actor=provider, name="s.json", content=content)

    # then
    assert [row["value_usd"] for row in revision.sample_preview] == ["12.5", -999_999_999_999_999_999, None, "1E-18"]
