"""The public landing page, the portal's language switch, seeding, and the API's error shape."""

import pytest
from django.core.management import call_command

from exchange.models import ApiKey, AuditEvent, Board, MemberFirm, Membership, User
from exchange.selectors import board_codes_for_firm
from tests.factories import login_as

pytestmark = pytest.mark.django_db


def test_the_landing_page_says_what_the_exchange_is(client, boards):
    html = client.get("/").content.decode()
    assert "data exchange" in html.lower()
    assert "Domestic board" in html and "International board" in html
    assert 'href="/accounts/login/"' in html


def test_switching_to_chinese(client, provider):
    login_as(client, provider)
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/portal/"})
    assert response.status_code == 302 and response.url == "/portal/"
    html = client.get("/portal/").content.decode()
    assert '<html lang="zh-hans">' in html
    assert "国际板" in html and "会员门户" in html
    html = client.get("/").content.decode()
    assert "数据交易所" in html


def test_seed_demo_is_idempotent(db, capsys):
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert "admin@lingang.example" in out and "demo_totp" in out
    from listings.models import DataProduct, PricePlan, Revision

    models = (User, MemberFirm, Membership, AuditEvent, ApiKey, DataProduct, Revision, PricePlan)
    counts = {m: m.objects.count() for m in models}
    assert counts[MemberFirm] >= 8
    call_command("seed_demo", "--quiet")
    assert {m: m.objects.count() for m in counts} == counts


def test_the_demo_covers_what_the_foundation_promises(db):
    from exchange import services

    call_command("seed_demo", "--quiet")
    firms = MemberFirm.objects.all()
    assert firms.filter(country="CN").exists() and firms.exclude(country="CN").exists()
    assert firms.filter(is_ciio=True).exists()
    assert firms.filter(ftz="shanghai_lingang").exists()
    assert firms.filter(role__in=["provider", "both"]).exists() and firms.filter(role="buyer").exists()
    assert any(board_codes_for_firm(firm=f) == set() for f in firms)
    assert User.objects.filter(is_staff=True).count() >= 5
    assert Board.objects.count() == 2
    assert services.audit_verify() == []
    from listings.models import DataProduct, Revision

    listed = DataProduct.objects.filter(listing_status="listed")
    assert listed.count() >= 60 and listed.filter(board__code="international").count() >= 30
    assert all(p.plans.exists() and p.listed_revision.sample for p in listed)
    assert Revision.objects.filter(status="draft").exists() and Revision.objects.filter(status="in_review").count() == 1


def test_unknown_api_paths_answer_in_the_error_shape(api_client, provider):
    login_as(api_client, provider)
    response = api_client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "No such API endpoint.", "details": {}}}


def test_the_schema_documents_the_key_and_the_endpoints(client):
    schema = client.get("/api/v1/schema/?format=json").json()
    assert "/api/v1/me" in schema["paths"] and "/api/v1/boards" in schema["paths"]
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"]["type"] == "apiKey"


def test_the_api_docs_need_nothing_from_the_internet(client):
    html = client.get("/api/v1/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn." not in html and "unpkg" not in html


def test_only_the_api_docs_relax_the_style_policy_and_none_relax_scripts(client):
    docs = client.get("/api/v1/docs/")["Content-Security-Policy"]
    assert "style-src 'self' 'unsafe-inline'" in docs
    assert "script-src 'self';" in docs + ";"
    assert "unsafe-inline" not in client.get("/")["Content-Security-Policy"]


def test_the_openapi_schema_is_valid_and_warning_free(tmp_path):
    # Nested Input/OutputSerializers of different APIs must not collide as schema components.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "MeApiOutput" in (tmp_path / "schema.yaml").read_text()
