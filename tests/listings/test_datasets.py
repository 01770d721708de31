"""A revision's dataset: the streaming check against the dictionary (CSV, JSON lines, Parquet), its task, the
upload in the portal and the API, what buyers see, and the listing refused without it."""

from __future__ import annotations

import hashlib
import tracemalloc
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from exchange.exceptions import ApplicationError
from listings import datasets, services
from listings.models import Dataset, Revision
from listings.tasks import dataset_validate_task, sweep_stale_datasets_task
from tests.factories import (
    DATASET_CSV,
    DICTIONARY,
    MemberFirmFactory,
    data_for,
    draft_product,
    listed_product,
    listed_product_via_workflow,
    login_as,
    member,
    product_in_review,
    provide_dataset,
)
from tests.factories import api_client_for as client_for
from tests.factories import api_error as error

pytestmark = pytest.mark.django_db


def _check(path: Path, file_format: str, dictionary=DICTIONARY) -> datasets.Report:
    report = datasets.Report()
    with open(path, "rb") as handle:
        stream = datasets._Measured(handle, lambda n: None)
        if file_format == "parquet":
            connection = datasets._connect()
            try:
                datasets.check_parquet(connection, str(path), dictionary, report)
            except datasets.Refused as refusal:
                report.add(datasets._one(refusal.message))
        else:
            checker = datasets.check_csv if file_format == "csv" else datasets.check_jsonl
            try:
                checker(stream, dictionary, report)
            except datasets.Refused as refusal:
                report.add(datasets._one(refusal.message))
            report.bytes_read = stream.count
    return report


def _messages(report: datasets.Report) -> list[str]:
    return [e["en"] for e in report.errors]


# --- The streaming check --------------------------------------------------------------------------


def test_a_large_csv_is_checked_in_a_fixed_amount_of_memory(tmp_path):
    # given a ~50 MB CSV file, written in pieces
    path = tmp_path / "big.csv"
    # Wide rows: the check's cost is per value, tracemalloc's per allocation; the memory is the point here.
    filler = "x" * 4000
    with open(path, "w", encoding="utf-8") as out:
        out.write("hs_code,month,value_usd,origin\n")
        chunk = "".join(f"{filler}{i % 10},2026-01-01,1250.50,CN\n" for i in range(100))
        while out.tell() < 50 * 1024 * 1024:
            out.write(chunk)
    size = path.stat().st_size
    # when it is checked, with Python's allocations traced
    tracemalloc.start()
    report = _check(path, "csv")
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # then every row was read and the peak stays far below the file's size
    assert report.ok and report.rows > 12_000 and report.bytes_read == size
    assert report.error_count == 0
    assert peak < 10 * 1024 * 1024, f"peak {peak} bytes for a {size}-byte file"


def _peak_of_check(path: Path, file_format: str) -> tuple[datasets.Report, int]:
    # Memory only: how long a check takes is a benchmark's question (bench/upload_memory.py), never a test's.
    tracemalloc.start()
    try:
        report = _check(path, file_format)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return report, peak


def _write_long_line(out, size: int) -> None:
    piece = b"x" * (1024 * 1024)
    for _ in range(size // len(piece)):
        out.write(piece)


def test_a_json_line_longer_than_the_limit_is_an_error_read_in_bounded_memory(tmp_path):
    # given a JSON lines file whose second line is 20 MB long (one string value), between two good lines
    good = b'{"hs_code": "8471", "month": "2026-01-01", "value_usd": 1.5, "origin": "CN"}\n'
    path = tmp_path / "long.jsonl"
    with open(path, "wb") as out:
        out.write(good)
        out.write(b'{"hs_code": "')
        _write_long_line(out, 20 * 1024 * 1024)
        out.write(b'", "month": "2026-01-01", "value_usd": 1.5, "origin": "CN"}\n')
        out.write(good)
    size = path.stat().st_size
    # when it is checked
    report, peak = _peak_of_check(path, "jsonl")
    # then the long line is reported at its number without being held in memory, and the lines after it read
    assert _messages(report) == ["Line 2 is longer than 1 MiB."]
    assert report.errors[0]["zh-hans"] == "第 2 行超过 1 MiB。"
    assert report.rows == 2 and report.bytes_read == size
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes for a {size}-byte line"


def test_a_csv_line_or_record_longer_than_the_limit_refuses_the_file_in_bounded_memory(tmp_path):
    # given a CSV file whose third line is 20 MB long
    path = tmp_path / "long.csv"
    with open(path, "wb") as out:
        out.write(b"hs_code,month,value_usd,origin\n8471,2026-01-01,1,CN\n")
        _write_long_line(out, 20 * 1024 * 1024)
        out.write(b",2026-01-01,1,CN\n8471,2026-01-01,1,CN\n")
    size = path.stat().st_size
    # when it is checked
    report, peak = _peak_of_check(path, "csv")
    # then the file is refused at that line, without the line being held in memory
    assert _messages(report) == ["Line 3 is longer than 1 MiB."]
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes for a {size}-byte line"
    # and a record of quoted values spanning many short lines is bounded all the same, reported at its first line
    path = tmp_path / "record.csv"
    with open(path, "wb") as out:
        out.write(b"hs_code,month,value_usd,origin\n8471,2026-01-01,1,CN\n")
        value = b'"' + (b"y" * 1000 + b"\n") * 100 + b'",'  # each under the csv module's limit on a value
        for _ in range(200):
            out.write(value)
        out.write(b"2026-01-01,1,CN\n")
    report, peak = _peak_of_check(path, "csv")
    assert _messages(report) == ["The CSV record starting at line 3 is longer than 1 MiB."]
    assert peak < 8 * 1024 * 1024


def test_csv_lines_may_end_in_a_carriage_return_alone(tmp_path):
    path = tmp_path / "mac.csv"
    path.write_bytes(b"hs_code,month,value_usd,origin\r8471,2026-01-01,1,CN\r8471,2026-13-01,1,CN\r\n8471,x,1,CN")
    report = _check(path, "csv")
    assert report.rows == 3
    assert _messages(report) == [
        "Line 3, field month: “2026-13-01” is not a valid Date.",
        "Line 4, field month: “x” is not a valid Date.",
    ]


def test_csv_errors_are_reported_by_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(
        b"hs_code,month,value_usd,origin\n"
        b"8471,2026-01-01,1,CN\n"
        b"8471,2026-13-01,1,CN\n"  # line 3: no such month
        b"8471,2026-01-01,1\n"  # line 4: a value short
        b"8471,2026-01-01,lots,XX\n"  # line 5: two bad values
    )
    report = _check(path, "csv")
    assert report.rows == 3 and report.error_count == 4
    assert _messages(report) == [
        "Line 3, field month: “2026-13-01” is not a valid Date.",
        "Line 4 has 3 values, not 4.",
        "Line 5, field value_usd: “lots” is not a valid Decimal number.",
        "Line 5, field origin: “XX” is not a valid Country code.",
    ]
    # kept in Chinese too
    assert report.errors[0]["zh-hans"].startswith("第 3 行")


def test_a_csv_header_that_is_not_the_dictionary_is_refused(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"hs_code,month,value\n8471,2026-01-01,1\n")
    assert _messages(_check(path, "csv")) == [
        "The columns must name exactly the dictionary's fields. Missing: value_usd, origin; unknown: value."
    ]


def test_only_the_first_errors_are_kept_and_the_rest_counted(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"hs_code,month,value_usd,origin\n" + b"8471,never,1,CN\n" * 30)
    report = _check(path, "csv")
    assert report.error_count == 30 and len(report.errors) == 20
    assert _messages(report)[19] == "Line 21, field month: “never” is not a valid Date."


def test_json_lines_errors_are_reported_by_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(
        b'{"hs_code": "8471", "month": "2026-01-01", "value_usd": 1.5, "origin": "CN"}\n'
        b"{not json\n"
        b'{"hs_code": "8471", "month": "2026-01-01", "origin": "CN"}\n'
        b"\n"
        b'{"hs_code": "8471", "month": "2026-01-01", "value_usd": "1.5x", "origin": "CN"}\n'
        b"[1, 2]\n"
    )
    report = _check(path, "jsonl")
    assert _messages(report) == [
        "Line 2 is not valid JSON.",
        "Line 3 does not have exactly the dictionary's fields. Missing: value_usd; unknown: —.",
        "Line 5, field value_usd: “1.5x” is not a valid Decimal number.",
        "Line 6 is not a JSON object.",
    ]


def _parquet(tmp_path: Path, select: str) -> Path:
    path = tmp_path / "d.parquet"
    connection = duckdb.connect()
    connection.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet)")
    connection.close()
    return path


def test_a_valid_parquet_file_passes(tmp_path):
    path = _parquet(
        tmp_path,
        "SELECT '8471' AS hs_code, DATE '2026-01-01' AS month, 12.5::DECIMAL(10,2) AS value_usd, 'CN' AS origin "
        "FROM range(2500)",
    )
    report = _check(path, "parquet")
    assert report.ok and report.rows == 2500


def test_parquet_errors_are_reported_by_column_and_row(tmp_path):
    # a column of the wrong type
    path = _parquet(tmp_path, "SELECT '8471' AS hs_code, 7 AS month, 1.5 AS value_usd, 'CN' AS origin")
    assert _messages(_check(path, "parquet")) == ["Column month holds INTEGER values, not Date."]
    # text columns are checked value by value, by row
    path = _parquet(
        tmp_path,
        "SELECT '8471' AS hs_code, CASE WHEN i = 2 THEN 'soon' ELSE '2026-01-01' END AS month, 1.5 AS value_usd, "
        "'CN' AS origin FROM (SELECT range + 1 AS i FROM range(3))",
    )
    assert _messages(_check(path, "parquet")) == ["Row 2, field month: “soon” is not a valid Date."]
    # not Parquet at all
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_bytes(b"hs_code\n1\n")
    assert _messages(_check(not_parquet, "parquet")) == ["The file is not a readable Parquet file."]


# --- The service and its task ---------------------------------------------------------------------


def _draft_with_upload(provider, content: bytes = DATASET_CSV, name: str = "data.csv"):
    product = draft_product(provider, dataset=False)
    dataset = services.dataset_upload(product=product, actor=provider, name=name, file=ContentFile(content))
    return product, dataset


def test_the_check_records_rows_size_hash_and_the_columnar_copy_and_running_it_twice_changes_nothing(provider):
    # given an uploaded dataset, waiting for its check
    _product, dataset = _draft_with_upload(provider)
    assert dataset.status == Dataset.Status.PENDING
    # when the task runs twice (a redelivery)
    assert dataset_validate_task.delay(dataset.pk).get() == "valid"
    dataset.refresh_from_db()
    first = (dataset.status, dataset.row_count, dataset.sha256, dataset.columnar.name, dataset.validated_at)
    assert dataset_validate_task.delay(dataset.pk).get() is None
    dataset.refresh_from_db()
    # then it was checked once: rows, size, SHA-256 and a columnar copy DuckDB reads
    assert (dataset.status, dataset.row_count, dataset.sha256, dataset.columnar.name, dataset.validated_at) == first
    assert dataset.row_count == 3 and dataset.size == dataset.bytes_read == len(DATASET_CSV)
    assert dataset.sha256 == hashlib.sha256(DATASET_CSV).hexdigest()
    path = default_storage.path(dataset.columnar.name)
    columns = duckdb.connect().execute("DESCRIBE SELECT * FROM read_parquet(?)", [path]).fetchall()
    assert [(c[0], c[1]) for c in columns] == [
        ("hs_code", "VARCHAR"), ("month", "DATE"), ("value_usd", "DECIMAL(38,18)"), ("origin", "VARCHAR"),
    ]  # fmt: skip


def test_an_invalid_dataset_records_its_first_errors_and_cannot_be_submitted(provider):
    product, dataset = _draft_with_upload(provider, b"hs_code,month,value_usd,origin\n8471,x,1,CN\n")
    dataset = services.dataset_validate(dataset_id=dataset.pk)
    assert dataset.status == Dataset.Status.INVALID and dataset.row_count is None and not dataset.columnar
    assert dataset.error_messages() == ["Line 2, field month: “x” is not a valid Date."]
    with pytest.raises(ApplicationError) as refused:
        services.product_submit(product=product, actor=provider)
    assert refused.value.code == "dataset_required"
    assert refused.value.details == {"dataset_status": "invalid"}


def test_the_upload_queues_the_check_after_commit(provider, django_capture_on_commit_callbacks):
    product = draft_product(provider, dataset=False)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        dataset = services.dataset_upload(product=product, actor=provider, name="d.csv", file=ContentFile(DATASET_CSV))
    assert len(callbacks) == 1
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.VALID


def test_a_replaced_dataset_is_checked_on_its_new_generation_only(provider):
    product, first = _draft_with_upload(provider, b"hs_code,month,value_usd,origin\n8471,x,1,CN\n")
    second = services.dataset_upload(product=product, actor=provider, name="d.csv", file=ContentFile(DATASET_CSV))
    assert second.pk == first.pk and second.generation == first.generation + 1
    checked = services.dataset_validate(dataset_id=second.pk)
    assert checked is not None and checked.status == Dataset.Status.VALID


def test_changing_the_dictionary_checks_the_dataset_again(provider):
    product, dataset = _draft_with_upload(provider)
    services.dataset_validate(dataset_id=dataset.pk)
    services.revision_update(
        product=product, actor=provider, dictionary=[*DICTIONARY, {"name": "extra", "type": "integer"}]
    )
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.PENDING and dataset.generation == 2
    checked = services.dataset_validate(dataset_id=dataset.pk)
    assert checked.status == Dataset.Status.INVALID  # the file has no `extra` column


def test_a_new_drafts_check_never_overwrites_the_listed_revisions_columnar_copy(
    provider, reviewer, monkeypatch, django_capture_on_commit_callbacks
):
    # given a listed product whose dataset the task checked, on a storage that overwrites a name saved again (as
    # S3 does by default)
    product = listed_product_via_workflow(provider, reviewer)
    listed = Dataset.objects.get(revision=product.listed_revision)
    name = listed.columnar.name
    before = default_storage.open(name).read()
    monkeypatch.setattr(default_storage._wrapped, "_allow_overwrite", True)  # the instance behind the lazy proxy
    # when a new draft, sharing its file, changes a field's type, which checks the file again and converts it anew
    services.revision_create_draft(product=product, actor=provider)
    dictionary = [dict(f, type="string") if f["name"] == "value_usd" else f for f in DICTIONARY]
    with django_capture_on_commit_callbacks(execute=True):
        services.revision_update(product=product, actor=provider, dictionary=dictionary)
    draft = Dataset.objects.exclude(pk=listed.pk).get(revision__product=product)
    # then the draft's columnar copy has a name of its own, and the listed revision's is untouched
    assert draft.status == Dataset.Status.VALID and draft.file.name == listed.file.name
    assert draft.columnar.name != name
    listed.refresh_from_db()
    assert listed.columnar.name == name and default_storage.open(name).read() == before
    value_usd = [
        duckdb.connect().execute("SELECT typeof(value_usd) FROM read_parquet(?) LIMIT 1", [path]).fetchone()
        for path in (default_storage.path(name), default_storage.path(draft.columnar.name))
    ]
    assert value_usd == [("DECIMAL(38,18)",), ("VARCHAR",)]


def test_an_unexpected_error_ends_the_check_as_invalid_for_its_generation_only(provider, monkeypatch, caplog):
    # given an uploaded dataset whose reading fails unexpectedly
    _product, dataset = _draft_with_upload(provider)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(datasets, "check_csv", broken)
    # when it is checked
    checked = services.dataset_validate(dataset_id=dataset.pk)
    # then it is invalid, with a word in both languages, the traceback logged
    assert checked is not None and checked.status == Dataset.Status.INVALID and checked.error_count == 1
    assert checked.error_messages() == [
        "The check stopped on an unexpected error; upload the dataset again, or contact the exchange if this persists."
    ]
    assert checked.errors[0]["zh-hans"] == "检查因意外错误中止；请重新上传数据集，如问题持续请联系交易所。"
    assert "RuntimeError: a bug" in caplog.text
    # and a check whose row moved on to another generation meanwhile records nothing
    dataset = services.dataset_upload(product=_product, actor=provider, name="d.csv", file=ContentFile(DATASET_CSV))

    def replaced_then_broken(*args, **kwargs):
        Dataset.objects.filter(pk=dataset.pk).update(generation=dataset.generation + 1, status=Dataset.Status.PENDING)
        raise RuntimeError("a bug")

    monkeypatch.setattr(datasets, "check_csv", replaced_then_broken)
    assert services.dataset_validate(dataset_id=dataset.pk) is None
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.PENDING and dataset.errors == []


def test_the_sweeper_requeues_checks_left_waiting_or_stopped_and_each_is_checked_once(provider, monkeypatch):
    # given a dataset just uploaded, one whose queued check never came, one whose worker died while checking it,
    # and one being checked now
    checked: list[str] = []
    check = datasets.check_and_convert

    def counted(**kwargs):
        checked.append(kwargs["name"])
        return check(**kwargs)

    monkeypatch.setattr(datasets, "check_and_convert", counted)
    rows = [_draft_with_upload(provider)[1] for _ in range(4)]
    fresh, lost, dead, running = (row.pk for row in rows)
    long_ago = timezone.now() - timedelta(hours=1)
    Dataset.objects.filter(pk=lost).update(progress_at=long_ago)
    Dataset.objects.filter(pk=dead).update(status=Dataset.Status.VALIDATING, progress_at=long_ago)
    Dataset.objects.filter(pk=running).update(status=Dataset.Status.VALIDATING, progress_at=timezone.now())
    # when the sweeper runs twice
    assert sweep_stale_datasets_task.delay().get() == {"requeued": 2}
    assert sweep_stale_datasets_task.delay().get() == {"requeued": 0}
    # then the lost and the dead checks ran, once each, and the others were left alone
    status = dict(Dataset.objects.values_list("pk", "status"))
    assert (status[lost], status[dead]) == (Dataset.Status.VALID, Dataset.Status.VALID)
    assert (status[fresh], status[running]) == (Dataset.Status.PENDING, Dataset.Status.VALIDATING)
    assert sorted(checked) == sorted(Dataset.objects.get(pk=pk).file.name for pk in (lost, dead))


def test_a_parquet_check_reports_its_progress_by_rows(tmp_path):
    # given a Parquet file of three batches of rows
    path = _parquet(
        tmp_path,
        f"SELECT '8471' AS hs_code, DATE '2026-01-01' AS month, 1.5 AS value_usd, 'CN' AS origin "
        f"FROM range({3 * datasets.PARQUET_BATCH_ROWS})",
    )
    size = path.stat().st_size
    seen: list[int] = []
    # when it is checked
    report = datasets.check_and_convert(
        storage=FileSystemStorage(location=tmp_path), name=path.name, file_format="parquet", dictionary=DICTIONARY,
        progress=seen.append, columnar_path=str(tmp_path / "c.parquet"),
    )  # fmt: skip
    # then reading the file is the first half of the progress, checking its rows the second, batch by batch
    assert report.ok and report.rows == 3 * datasets.PARQUET_BATCH_ROWS
    assert seen == sorted(seen) and seen[-1] == size
    assert [n for n in seen if n > size // 2] == [size // 2 + (size - size // 2) * k // 3 for k in (1, 2, 3)]


def test_uploads_that_are_no_dataset_are_refused(provider):
    product = draft_product(provider, dataset=False)
    for name, content, code in (("d.txt", b"a", "dataset_type"), ("d.csv", b"", "dataset_empty")):
        with pytest.raises(Exception) as refused:
            services.dataset_upload(product=product, actor=provider, name=name, file=ContentFile(content))
        assert refused.value.error_dict["dataset"][0].code == code


# --- Listing needs it -----------------------------------------------------------------------------


@pytest.mark.parametrize("modes", [["file"], ["api"], ["sandbox"]])
def test_file_api_or_sandbox_delivery_is_not_submitted_without_a_dataset(provider, modes):
    # the sandbox computes on the data itself: it needs the dataset as file and API delivery do
    product = draft_product(provider, dataset=False, delivery_modes=modes)
    with pytest.raises(ApplicationError) as refused:
        services.product_submit(product=product, actor=provider)
    assert refused.value.code == "dataset_required" and refused.value.status_code == 409
    assert refused.value.details == {"dataset_status": None}
    provide_dataset(product, provider, data_for(Revision.objects.get(product=product).dictionary)[1])
    assert services.product_submit(product=product, actor=provider).status == Revision.Status.SUBMITTED


def test_a_revision_in_review_without_a_valid_dataset_is_not_approved(provider, reviewer):
    product = product_in_review(provider, reviewer)
    Dataset.objects.filter(revision__product=product).delete()  # submitted before datasets existed
    with pytest.raises(ApplicationError) as refused:
        services.review_approve(product=product, actor=reviewer)
    assert refused.value.code == "pre_listing_check_failed"
    assert "File, API and sandbox delivery need a valid dataset." in refused.value.details["reasons"]


# --- The portal -----------------------------------------------------------------------------------


def test_the_provider_uploads_and_sees_the_check(client, provider, django_capture_on_commit_callbacks):
    product = draft_product(provider, dataset=False)
    login_as(client, provider)
    url = reverse("portal:my-product-dataset", args=[product.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"dataset": SimpleUploadedFile("d.csv", DATASET_CSV)})
    assert response.status_code == 302
    page = client.get(reverse("portal:my-product-edit", args=[product.pk])).content.decode()
    assert "data.csv" not in page and "d.csv" in page and hashlib.sha256(DATASET_CSV).hexdigest() in page
    assert 'http-equiv="refresh"' not in page  # checked: nothing to wait for


def test_the_page_refreshes_while_the_check_runs_and_shows_its_errors(client, provider):
    product, dataset = _draft_with_upload(provider, b"hs_code,month,value_usd,origin\n8471,x,1,CN\n")
    login_as(client, provider)
    page = client.get(reverse("portal:my-product-edit", args=[product.pk])).content.decode()
    assert 'http-equiv="refresh"' in page and "<progress" in page
    services.dataset_validate(dataset_id=dataset.pk)
    page = client.get(reverse("portal:my-product-edit", args=[product.pk])).content.decode()
    assert "Line 2, field month: “x” is not a valid Date." in page


def test_a_bad_file_type_is_a_form_error(client, provider):
    product = draft_product(provider, dataset=False)
    login_as(client, provider)
    url = reverse("portal:my-product-dataset", args=[product.pk])
    response = client.post(url, {"dataset": SimpleUploadedFile("d.xlsx", b"PK")})
    assert response.status_code == 400
    assert not Dataset.objects.filter(revision__product=product).exists()


@pytest.mark.parametrize("who", ["anonymous", "other_firm", "buyer"])
def test_only_the_providers_members_upload(client, provider, international, who):
    product = draft_product(provider, dataset=False)
    if who == "other_firm":
        login_as(client, member(MemberFirmFactory(role="provider")))
    elif who == "buyer":
        login_as(client, international)
    url = reverse("portal:my-product-dataset", args=[product.pk])
    response = client.post(url, {"dataset": SimpleUploadedFile("d.csv", DATASET_CSV)})
    assert response.status_code == (302 if who == "anonymous" else 404)
    if who == "anonymous":
        assert "/login" in response["Location"]
    assert not Dataset.objects.filter(revision__product=product).exists()


def test_buyers_see_rows_size_and_hash_on_the_product_page_and_in_the_api(client, provider, reviewer, international):
    product = listed_product(provider, reviewer)
    login_as(client, international)
    page = client.get(reverse("portal:product", args=[product.pk])).content.decode()
    assert hashlib.sha256(DATASET_CSV).hexdigest() in page
    detail = client_for(international).get(f"/api/v1/products/{product.pk}").json()
    assert detail["dataset"]["row_count"] == 3 and detail["dataset"]["size"] == len(DATASET_CSV)
    assert detail["dataset"]["sha256"] == hashlib.sha256(DATASET_CSV).hexdigest()
    # and the check itself is the provider's
    assert client_for(international).get(f"/api/v1/products/{product.pk}/dataset").status_code == 404
    assert client_for(provider).get(f"/api/v1/products/{product.pk}/dataset").json()["status"] == "valid"


# --- The API --------------------------------------------------------------------------------------


def test_the_api_takes_the_upload_and_answers_its_status(provider, django_capture_on_commit_callbacks):
    product = draft_product(provider, dataset=False)
    client = client_for(provider, "key")
    url = f"/api/v1/products/{product.pk}/dataset"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"dataset": SimpleUploadedFile("d.csv", DATASET_CSV)}, format="multipart")
    assert response.status_code == 202 and response.json()["status"] == "pending"
    status = client.get(url).json()
    assert (status["status"], status["row_count"], status["progress_percent"]) == ("valid", 3, 100)


def test_bad_api_uploads_are_4xx(provider, international):
    product = draft_product(provider, dataset=False)
    client = client_for(provider)
    url = f"/api/v1/products/{product.pk}/dataset"
    response = client.post(url, {"dataset": SimpleUploadedFile("d.txt", b"x")}, format="multipart")
    assert response.status_code == 422 and error(response)["code"] == "validation_error"
    response = client.post(url, {}, format="multipart")
    assert response.status_code == 400
    response = client.post(url, {"dataset": SimpleUploadedFile("d.csv", b"x"), "extra": "1"}, format="multipart")
    assert response.status_code == 400
    response = client.post(url, {"dataset": "text"}, format="multipart")
    assert response.status_code == 400
    assert client.post(url, {"dataset": "x"}, format="json").status_code == 415
    other = client_for(international)
    response = other.post(url, {"dataset": SimpleUploadedFile("d.csv", DATASET_CSV)}, format="multipart")
    assert response.status_code == 404
    assert client_for(None).post(url, {"dataset": SimpleUploadedFile("d.csv", DATASET_CSV)}).status_code in (401, 403)
    assert not Dataset.objects.filter(revision__product=product).exists()


def test_the_schema_has_the_dataset_endpoints(api_client):
    schema = api_client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    operations = schema["paths"]["/api/v1/products/{id}/dataset"]
    assert operations["post"]["operationId"] == "products_dataset_upload"
    assert {"202", "400", "401", "403", "404", "409", "413", "415", "422", "429"} <= set(
        operations["post"]["responses"]
    )
    assert operations["get"]["operationId"] == "products_dataset_get"
