"""The compliance app's operator commands: imports and the daily sweep, with clear errors."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from compliance.models import FtzListItem, RestrictedParty
from tests.compliance.factories import ftz_csv

pytestmark = pytest.mark.django_db


def _items_csv(tmp_path, row: str):
    path = tmp_path / "items.csv"
    path.write_text(ftz_csv(row), encoding="utf-8")
    return path


def test_parties_import(tmp_path, capsys):
    path = tmp_path / "parties.csv"
    path.write_text("name,country,source_list\nBlocked Co,DE,Test list\n", encoding="utf-8")
    call_command("parties_import", str(path))
    assert "1 added" in capsys.readouterr().out
    assert RestrictedParty.objects.get().name == "Blocked Co"


def test_parties_import_refuses_a_bad_file_with_exit_2(tmp_path):
    path = tmp_path / "parties.csv"
    path.write_text("name,country\nX,DE\n", encoding="utf-8")
    with pytest.raises(CommandError) as exc:
        call_command("parties_import", str(path))
    assert exc.value.returncode == 2 and "source_list" in str(exc.value)
    with pytest.raises(CommandError):
        call_command("parties_import", str(tmp_path / "missing.csv"))


def test_ftz_import(tmp_path, capsys):
    path = _items_csv(
        tmp_path, "SH-IS-09,international shipping,bunkering,supply-chain,,no,security_assessment,Fuel,燃料"
    )
    call_command("ftz_import", "shanghai", "2024", str(path))
    assert FtzListItem.objects.filter(code="SH-IS-09").exists()
    with pytest.raises(CommandError) as exc:
        call_command("ftz_import", "tianjin", "2024", str(path))
    assert exc.value.returncode == 2


def test_compliance_daily(capsys):
    call_command("compliance_daily", "--today", "2026-06-01")
    assert "expired=0" in capsys.readouterr().out
    with pytest.raises(CommandError):
        call_command("compliance_daily", "--today", "June")


def test_ftz_import_can_replace_the_whole_list(tmp_path, capsys):
    path = _items_csv(
        tmp_path, "SH-RE-01,reinsurance,cessions,finance-credit,reinsurance,yes,contract_or_certification,Kept,保留"
    )
    call_command("ftz_import", "shanghai", "2024", str(path), "--replace")
    assert "4 removed" in capsys.readouterr().out
    assert list(FtzListItem.objects.filter(ftz_list__zone="shanghai").values_list("code", flat=True)) == ["SH-RE-01"]
