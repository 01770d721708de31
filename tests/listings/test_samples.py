"""Samples (revision_set_sample): their values against the data dictionary, for CSV and JSON files alike, and
their files in storage.
"""

import json

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from listings import services
from tests.factories import SAMPLE_CSV, draft_product, listed_product
from tests.factories import api_client_for as client_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path


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


@pytest.mark.parametrize(
    "cell",
    ["1e99999999999", "Infinity", "NaN", "1" * 19, "0." + "0" * 18 + "1", "1_000", "١٢٣", "１２.５", "0x10"],
)
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


@pytest.mark.parametrize("cell", ["20260101", "2026-W01-1", "2026-001", "２０２６-01-01"])
def test_csv_dates_are_plain_iso_dates(provider, cell):
    content = f"hs_code,month,value_usd,origin\n8471,{cell},1,CN\n".encode()
    messages = refusal(provider, "s.csv", content)
    assert messages[0].startswith("Line 2, field month:"), messages


def test_trailing_zeros_are_no_precision(provider):
    product = draft_product(provider, sample=False)
    content = b'[{"hs_code": "1", "month": "2026-01-01", "value_usd": 1.0e-18, "origin": "CN"}]'
    revision = services.revision_set_sample(product=product, actor=provider, name="s.json", content=content)
    csv = b"hs_code,month,value_usd,origin\n8471,2026-01-01,1.000e-18,CN\n"
    services.revision_set_sample(product=product, actor=provider, name="s.csv", content=csv)
    assert revision.sample_preview[0]["value_usd"]


# --- The files ------------------------------------------------------------------------------------------


def test_a_replaced_sample_file_is_deleted_once_the_change_commits(provider, django_capture_on_commit_callbacks):
    # given a draft with a sample
    product = draft_product(provider)
    old = product.revisions.get().sample.name
    assert default_storage.exists(old)

    # when the provider uploads another
    with django_capture_on_commit_callbacks(execute=True):
        revision = services.revision_set_sample(
            product=product, actor=provider, name="s.json", content=json_sample(ROW)
        )

    # then the new file is stored and the old one is gone
    assert default_storage.exists(revision.sample.name) and revision.sample.name != old
    assert not default_storage.exists(old)


def test_a_refused_replacement_keeps_the_old_file(provider, django_capture_on_commit_callbacks):
    product = draft_product(provider)
    old = product.revisions.get().sample.name
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(ValidationError):
        services.revision_set_sample(product=product, actor=provider, name="s.csv", content=b"not,the,columns\n")
    assert callbacks == [] and default_storage.exists(old)
    assert product.revisions.get().sample.name == old


def test_a_frozen_revisions_file_is_kept_when_the_new_draft_replaces_it(
    provider, reviewer, django_capture_on_commit_callbacks
):
    # given a listed product and a new draft, which shares the listed revision's sample file
    product = listed_product(provider, reviewer)
    services.revision_create_draft(product=product, actor=provider)
    listed = product.revisions.get(number=1).sample.name
    assert product.revisions.get(number=2).sample.name == listed

    # when the draft's sample is replaced, and then replaced again
    with django_capture_on_commit_callbacks(execute=True):
        first = services.revision_set_sample(
            product=product, actor=provider, name="a.csv", content=SAMPLE_CSV
        ).sample.name
    with django_capture_on_commit_callbacks(execute=True):
        second = services.revision_set_sample(
            product=product, actor=provider, name="b.csv", content=SAMPLE_CSV
        ).sample.name

    # then the listed revision keeps its file; the draft's own first upload is gone
    assert default_storage.exists(listed)
    assert not default_storage.exists(first) and default_storage.exists(second)


def test_a_sample_dropped_by_a_dictionary_change_is_deleted(provider, django_capture_on_commit_callbacks):
    product = draft_product(provider)
    old = product.revisions.get().sample.name
    with django_capture_on_commit_callbacks(execute=True):
        services.revision_update(product=product, actor=provider, dictionary=[{"name": "x", "type": "string"}])
    assert not default_storage.exists(old)


def test_an_upload_through_the_api_replaces_the_file(provider, django_capture_on_commit_callbacks):
    product = draft_product(provider)
    old = product.revisions.get().sample.name
    upload = SimpleUploadedFile("rows.csv", SAMPLE_CSV)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(provider).post(
            f"/api/v1/products/{product.pk}/sample", {"sample": upload}, format="multipart"
        )
    assert response.status_code == 200, response.content
    new = product.revisions.get().sample.name
    assert new != old and default_storage.exists(new) and not default_storage.exists(old)
