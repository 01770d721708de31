"""Seed the structure of the Shanghai FTZ's 2024 data-export negative list, with a few illustrative items.

The real list (中国（上海）自由贸易试验区及临港新片区数据出境管理清单（负面清单）2024版, issued 2025-02-08)
has 84 items over three sectors; staff load or correct the full list in the admin or with
`manage.py ftz_import`. The items here are illustrative and say so.
"""

from datetime import date

from django.db import migrations

LIST = dict(
    zone="shanghai",
    version="2024",
    title_en="Shanghai FTZ and Lingang Special Area data-export negative list (2024 edition)",
    title_zh="中国（上海）自由贸易试验区及临港新片区数据出境管理清单（负面清单）（2024版）",
    issued_on=date(2025, 2, 8),
    effective_from=date(2025, 2, 8),
    sectors=["reinsurance", "international shipping", "commerce"],
    # Only products in these scenarios are covered (R12); everything else follows the national rules.
    scenario_tags=[
        "reinsurance", "再保险", "catastrophe", "巨灾", "international-shipping", "国际航运", "crew", "船员",
        "port-operations", "港口作业", "e-commerce", "跨境电商",
    ],
    source="Shanghai Municipal Cyberspace Administration, 2025-02-08 (illustrative subset)",
)
COVERED = ["finance-credit", "supply-chain", "trade", "consumer"]
ITEMS = [
    ("SH-RE-01", "reinsurance", "cross-border reinsurance underwriting", "finance-credit", ["reinsurance", "再保险"], True,
     "contract_or_certification",
     "Personal information of insured persons in reinsurance cessions (illustrative)",
     "再保险分出业务中的被保险人个人信息（示例）"),
    ("SH-RE-02", "reinsurance", "catastrophe modelling", "finance-credit", ["catastrophe", "巨灾"], False,
     "security_assessment",
     "Exposure data of critical facilities for catastrophe modelling (illustrative)",
     "用于巨灾建模的关键设施风险暴露数据（示例）"),
    ("SH-IS-01", "international shipping", "crew management", "supply-chain", ["crew", "船员"], True,
     "contract_or_certification",
     "Crew personal information of international shipping lines (illustrative)",
     "国际航运企业船员个人信息（示例）"),
    ("SH-IS-02", "international shipping", "port operations", "supply-chain", ["port-operations", "港口作业"], False,
     "security_assessment",
     "Operational data of strategic ports and berths (illustrative)",
     "战略性港口及泊位作业数据（示例）"),
    ("SH-CM-01", "commerce", "cross-border e-commerce", "consumer", ["e-commerce", "跨境电商"], True,
     "contract_or_certification",
     "Consumer personal information from cross-border e-commerce orders (illustrative)",
     "跨境电商订单中的消费者个人信息（示例）"),
]  # fmt: skip


def seed(apps, schema_editor):
    FtzList = apps.get_model("compliance", "FtzList")
    FtzListItem = apps.get_model("compliance", "FtzListItem")
    Category = apps.get_model("listings", "Category")
    ftz_list, created = FtzList.objects.get_or_create(zone=LIST["zone"], version=LIST["version"], defaults=LIST)
    if not created:
        return
    categories = {c.code: c for c in Category.objects.filter(code__in=COVERED)}
    ftz_list.covered_categories.set(categories.values())
    for code, sector, scenario, category, tags, pi_only, mechanism, en, zh in ITEMS:
        if category in categories:
            FtzListItem.objects.create(
                ftz_list=ftz_list, code=code, sector=sector, scenario=scenario, category=categories[category],
                tags=tags, personal_info_only=pi_only, mechanism=mechanism, description_en=en, description_zh=zh,
            )  # fmt: skip


def unseed(apps, schema_editor):
    apps.get_model("compliance", "FtzList").objects.filter(zone=LIST["zone"], version=LIST["version"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0004_filings_cases_ftz_restricted_parties"),
        ("listings", "0002_categories"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
