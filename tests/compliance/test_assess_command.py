import json

import pytest
from django.core.management import CommandError, call_command

from compliance.rules import assess
from tests.compliance.test_rules import BASE, case


def test_the_command_prints_the_engines_decision(capsys):
    call_command("assess", "--json", json.dumps(case(product__personal_info_subjects=150_000)))
    assert json.loads(capsys.readouterr().out) == assess(case(product__personal_info_subjects=150_000))


def test_the_command_reads_a_file(tmp_path, capsys):
    path = tmp_path / "input.json"
    path.write_text(json.dumps(BASE, ensure_ascii=False), encoding="utf-8")
    call_command("assess", "--file", str(path))
    assert json.loads(capsys.readouterr().out)["decision"] == "exempt"


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json", "not valid JSON"),
        (json.dumps({"product": {}}), "exporter: missing group"),
        (json.dumps(case(product__classification="secret")), "product.classification: one of general, important, core"),
        (json.dumps(case(product__personal_info_subjects=-5)), "cannot be negative"),
    ],
)
def test_bad_input_exits_2_with_what_is_wrong(text, message):
    with pytest.raises(CommandError) as exc:
        call_command("assess", "--json", text)
    assert exc.value.returncode == 2
    assert message in str(exc.value)


def test_a_real_process_exits_2_without_a_traceback():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "manage.py", "assess", "--json", '{"product": 1}'], cwd=root, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "product: must be an object" in result.stderr


@pytest.mark.parametrize("text", ["[" * 50_000, "1" * 5_000, '{"as_of": ' + "9" * 5000 + "}"])
def test_pathological_json_exits_2(text):
    with pytest.raises(CommandError) as exc:
        call_command("assess", "--json", text)
    assert exc.value.returncode == 2


def test_a_file_that_is_not_utf8_exits_2(tmp_path):
    path = tmp_path / "input.json"
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(CommandError) as exc:
        call_command("assess", "--file", str(path))
    assert exc.value.returncode == 2
