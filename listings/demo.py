"""Demo catalogue for `manage.py seed_demo`: about sixty listed products (thirty on the international
board) with plans and samples, a few drafts and one product in review. Everything goes through the
services, so the demo's products carry the same audit trail and search index as real ones.
"""

from __future__ import annotations

import csv
import io
import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.core.files.base import ContentFile
from django.utils import timezone

from exchange.models import Board, MemberFirm, User

from . import services
from .models import Category, DataProduct, Revision

REVIEWER = "reviewer@exchange.example"

# (provider key, board, category, title en, title zh, summary en, summary zh, tags, theme)
THEMES: dict[str, dict[str, Any]] = {
    "trade": {
        "dictionary": [
            ("hs_code", "string", "Harmonized System code, 6 digits", ""),
            ("month", "date", "First day of the month", ""),
            ("partner_country", "country", "Trading partner", ""),
            ("value_usd", "decimal", "Customs value", "USD"),
            ("quantity_kg", "decimal", "Net weight", "kg"),
        ],
        "row": lambda r, i: [
            r.choice(["847130", "851762", "870380", "940540", "610910"]),
            f"2026-{(i % 9) + 1:02d}-01",
            r.choice(["US", "DE", "SG", "JP", "BR", "VN"]),
            f"{r.randint(10_000, 9_000_000)}.{r.randint(0, 99):02d}",
            f"{r.randint(100, 500_000)}",
        ],
    },
    "company": {
        "dictionary": [
            ("company_name", "string", "Registered name", ""),
            ("uscc", "string", "Unified Social Credit Code", ""),
            ("registered_capital_cny", "decimal", "Registered capital", "CNY"),
            ("founded", "date", "Date of establishment", ""),
            ("employees", "integer", "Insured employees", "persons"),
        ],
        "row": lambda r, i: [
            r.choice(["Zhejiang Ruida Machinery", "Shenzhen Bright Optics", "Suzhou Lianke Textiles"]),
            "91330100MA2" + f"{r.randint(1000000, 9999999)}",
            f"{r.randint(1, 500) * 100000}.00",
            f"20{r.randint(0, 23):02d}-0{r.randint(1, 9)}-1{r.randint(0, 9)}",
            str(r.randint(5, 5000)),
        ],
    },
    "logistics": {
        "dictionary": [
            ("port", "string", "UN/LOCODE of the port", ""),
            ("week", "date", "Monday of the week", ""),
            ("vessel_calls", "integer", "Vessel calls", "calls"),
            ("teu", "integer", "Containers handled", "TEU"),
            ("avg_dwell_hours", "decimal", "Average container dwell time", "h"),
        ],
        "row": lambda r, i: [
            r.choice(["CNSHA", "CNNGB", "CNSZX", "SGSIN", "NLRTM", "DEHAM"]),
            (date(2026, 1, 5) + timedelta(weeks=i)).isoformat(),
            str(r.randint(20, 400)),
            str(r.randint(5_000, 900_000)),
            f"{r.randint(20, 140)}.{r.randint(0, 9)}",
        ],
    },
    "finance": {
        "dictionary": [
            ("issuer", "string", "Bond issuer", ""),
            ("rating", "string", "Domestic credit rating", ""),
            ("as_of", "date", "Observation date", ""),
            ("spread_bp", "decimal", "Spread over the government curve", "bp"),
            ("currency", "currency", "Currency of issue", ""),
        ],
        "row": lambda r, i: [
            r.choice(["Shanghai Lingang Holdings", "Chengdu Urban Investment", "Jiangsu Communications"]),
            r.choice(["AAA", "AA+", "AA"]),
            f"2026-0{(i % 9) + 1}-15",
            f"{r.randint(20, 450)}.{r.randint(0, 99):02d}",
            r.choice(["CNY", "USD"]),
        ],
    },
    "consumer": {
        "dictionary": [
            ("city", "string", "City", ""),
            ("category", "string", "Retail category", ""),
            ("month", "date", "Month", ""),
            ("sales_index", "decimal", "Sales index (2020 = 100)", ""),
            ("footfall", "integer", "Visitors counted", "persons"),
        ],
        "row": lambda r, i: [
            r.choice(["Shanghai", "Hangzhou", "Chengdu", "Wuhan", "Xi'an"]),
            r.choice(["apparel", "electronics", "groceries", "beauty"]),
            f"2026-{(i % 9) + 1:02d}-01",
            f"{r.randint(80, 160)}.{r.randint(0, 9)}",
            str(r.randint(1000, 900000)),
        ],
    },
    "industry": {
        "dictionary": [
            ("province", "string", "Province", ""),
            ("sector", "string", "Industrial sector", ""),
            ("month", "date", "Month", ""),
            ("output_index", "decimal", "Output index", ""),
            ("power_mwh", "decimal", "Electricity consumed", "MWh"),
        ],
        "row": lambda r, i: [
            r.choice(["Jiangsu", "Guangdong", "Zhejiang", "Shandong"]),
            r.choice(["chemicals", "machinery", "textiles", "electronics"]),
            f"2026-{(i % 9) + 1:02d}-01",
            f"{r.randint(90, 130)}.{r.randint(0, 9)}",
            f"{r.randint(1000, 90000)}.0",
        ],
    },
    "geo": {
        "dictionary": [
            ("grid_id", "string", "1 km grid cell", ""),
            ("land_use", "string", "Land use class", ""),
            ("observed", "date", "Observation date", ""),
            ("built_up_share", "decimal", "Built-up share", "%"),
        ],
        "row": lambda r, i: [
            f"N31E121-{r.randint(1000, 9999)}",
            r.choice(["residential", "industrial", "port", "agricultural"]),
            f"2026-0{(i % 9) + 1}-01",
            f"{r.randint(0, 100)}.{r.randint(0, 9)}",
        ],
    },
}

# provider key -> (email of a trader or admin who lists, boards)
PROVIDERS = {
    "lingang": "trader@lingang.example",
    "credit": "admin@credit.example",
    "supply": "trader@supply.example",
    "grid": "admin@grid.example",
    "rhein": "admin@rhein.example",
}

PRODUCTS: list[tuple[str, str, str, str, str, str]] = [
    # provider, board, category, theme, title en, title zh
    ("lingang", "international", "trade", "trade", "China export flows by HS code", "中国按海关编码出口流向数据"),
    ("lingang", "international", "trade", "trade", "Yangtze Delta import declarations", "长三角进口报关数据"),
    ("lingang", "international", "trade", "trade", "Cross-border e-commerce parcel volumes", "跨境电商包裹量数据"),
    ("lingang", "international", "trade", "trade", "Lingang bonded zone trade statistics", "临港保税区贸易统计"),
    ("lingang", "international", "trade", "trade", "Electronics re-export monitor", "电子产品转口贸易监测"),
    (
        "lingang",
        "international",
        "supply-chain",
        "logistics",
        "Yangshan port container throughput",
        "洋山港集装箱吞吐量",
    ),
    ("lingang", "international", "supply-chain", "logistics", "Shanghai port dwell times", "上海港集装箱滞留时间"),
    ("lingang", "international", "business-intelligence", "company", "Exporter company profiles", "出口企业画像"),
    ("lingang", "international", "trade", "trade", "New energy vehicle exports", "新能源汽车出口数据"),
    ("lingang", "international", "trade", "trade", "Solar module export destinations", "光伏组件出口目的地"),
    ("credit", "international", "finance-credit", "finance", "Onshore credit bond spreads", "境内信用债利差"),
    (
        "credit",
        "international",
        "finance-credit",
        "finance",
        "Local government financing vehicle spreads",
        "城投债利差数据",
    ),
    (
        "credit",
        "international",
        "business-intelligence",
        "company",
        "Chinese SME registry extracts",
        "中国中小企业登记信息",
    ),
    (
        "credit",
        "international",
        "business-intelligence",
        "company",
        "Supplier due diligence profiles",
        "供应商尽职调查画像",
    ),
    ("credit", "international", "finance-credit", "finance", "Panda bond issuance tracker", "熊猫债发行追踪"),
    (
        "credit",
        "international",
        "business-intelligence",
        "company",
        "Manufacturing firm capital changes",
        "制造业企业注册资本变更",
    ),
    ("supply", "international", "supply-chain", "logistics", "Pearl River Delta trucking index", "珠三角公路货运指数"),
    ("supply", "international", "supply-chain", "logistics", "Shenzhen port vessel calls", "深圳港船舶靠泊数据"),
    ("supply", "international", "supply-chain", "trade", "Electronics component lead times", "电子元器件交期数据"),
    ("supply", "international", "trade", "trade", "Apparel export price index", "服装出口价格指数"),
    ("supply", "international", "supply-chain", "logistics", "Air cargo volumes South China", "华南航空货运量"),
    ("supply", "international", "business-intelligence", "company", "Contract manufacturer directory", "代工企业名录"),
    ("supply", "international", "trade", "trade", "Toy and gift exports", "玩具礼品出口数据"),
    ("supply", "international", "supply-chain", "logistics", "China-Europe rail freight", "中欧班列货运数据"),
    ("rhein", "international", "supply-chain", "logistics", "Rhine barge freight rates", "莱茵河驳船运价"),
    ("rhein", "international", "supply-chain", "logistics", "Hamburg terminal throughput", "汉堡港码头吞吐量"),
    ("rhein", "international", "trade", "trade", "EU machinery imports from China", "欧盟自华机械进口"),
    ("rhein", "international", "trade", "trade", "German auto parts exports", "德国汽车零部件出口"),
    ("rhein", "international", "supply-chain", "logistics", "Rotterdam container dwell", "鹿特丹港集装箱滞留"),
    ("rhein", "international", "business-intelligence", "company", "European importer directory", "欧洲进口商名录"),
    ("lingang", "domestic", "consumer", "consumer", "Shanghai retail footfall", "上海零售客流数据"),
    ("lingang", "domestic", "consumer", "consumer", "Yangtze Delta consumer spending index", "长三角消费指数"),
    ("lingang", "domestic", "geospatial", "geo", "Lingang land use grid", "临港新片区土地利用网格"),
    ("lingang", "domestic", "industry", "industry", "Shanghai industrial output", "上海工业产出数据"),
    ("lingang", "domestic", "geospatial", "geo", "Pudong construction activity", "浦东建设活动监测"),
    ("credit", "domestic", "finance-credit", "finance", "Regional bank loan spreads", "区域银行贷款利差"),
    ("credit", "domestic", "finance-credit", "finance", "Corporate bond default watch", "公司债违约预警"),
    ("credit", "domestic", "business-intelligence", "company", "New business registrations", "新设企业登记数据"),
    ("credit", "domestic", "business-intelligence", "company", "Enterprise litigation records", "企业涉诉记录"),
    ("credit", "domestic", "finance-credit", "finance", "Commercial paper rates", "商业票据利率"),
    ("grid", "domestic", "industry", "industry", "Provincial electricity consumption", "分省用电量数据"),
    ("grid", "domestic", "industry", "industry", "Industrial park power load", "产业园区用电负荷"),
    ("grid", "domestic", "industry", "industry", "Data centre energy use", "数据中心能耗数据"),
    ("grid", "domestic", "geospatial", "geo", "Substation coverage map", "变电站覆盖地图"),
    ("grid", "domestic", "industry", "industry", "Manufacturing activity from power use", "基于用电的制造业景气"),
    ("supply", "domestic", "supply-chain", "logistics", "Domestic express delivery volumes", "国内快递业务量"),
    ("supply", "domestic", "supply-chain", "logistics", "Warehouse occupancy index", "仓储利用率指数"),
    ("supply", "domestic", "consumer", "consumer", "Online retail category sales", "网络零售品类销售额"),
    ("supply", "domestic", "industry", "industry", "Guangdong factory orders", "广东工厂订单数据"),
    ("supply", "domestic", "supply-chain", "logistics", "Cold chain capacity", "冷链仓储容量"),
    ("lingang", "domestic", "consumer", "consumer", "Hangzhou night economy", "杭州夜间经济数据"),
    ("credit", "domestic", "business-intelligence", "company", "Listed company supplier links", "上市公司供应商关系"),
    ("grid", "domestic", "geospatial", "geo", "Rooftop solar potential", "屋顶光伏潜力"),
    ("supply", "domestic", "consumer", "consumer", "Chengdu restaurant traffic", "成都餐饮客流"),
    ("lingang", "domestic", "industry", "industry", "Integrated circuit output", "集成电路产量数据"),
    ("credit", "domestic", "finance-credit", "finance", "Provincial fiscal revenue", "分省财政收入"),
    ("grid", "domestic", "industry", "industry", "Steel mill operating rates", "钢厂开工率"),
    ("supply", "domestic", "supply-chain", "logistics", "Inland waterway freight", "内河航运货运量"),
    ("lingang", "domestic", "geospatial", "geo", "Coastal reclamation monitor", "沿海围填海监测"),
    ("credit", "domestic", "business-intelligence", "company", "Enterprise tax credit ratings", "企业纳税信用评级"),
]

DRAFTS = [
    ("lingang", "international", "trade", "trade", "Semiconductor equipment imports", "半导体设备进口数据"),
    ("credit", "domestic", "finance-credit", "finance", "Microfinance loan performance", "小额贷款表现数据"),
]
IN_REVIEW = (
    "supply",
    "international",
    "supply-chain",
    "logistics",
    "Trans-Pacific container bookings",
    "跨太平洋集装箱订舱",
)


def _sample(theme: dict[str, Any], seed: int, rows: int = 12, *, subjects: bool = False) -> bytes:
    """The theme's rows; with `subjects` (a sandbox product), each row also names one of about 80 individuals."""
    rng = random.Random(seed)
    people = random.Random(seed + 1)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([name for name, *_ in theme["dictionary"]] + ([SUBJECT_FIELD] if subjects else []))
    for i in range(rows):
        writer.writerow(theme["row"](rng, i) + ([f"P{people.randint(1, 80):05d}"] if subjects else []))
    return buffer.getvalue().encode("utf-8")


# A sandbox product's dictionary names the person each row is about (the sandbox counts individuals on it), and
# the provider's rules: numbers are measures, the other fields dimensions.
SUBJECT_FIELD = "subject_id"


def _dictionary(theme: dict[str, Any], *, sandbox: bool) -> list[dict[str, Any]]:
    fields = [
        {
            "name": n, "type": t, "description": d, "unit": u, "personal": False, "sensitive": False,
            "identifier": False,
            "sandbox": ("measure" if t in ("integer", "decimal") else "dimension") if sandbox else "",
        }
        for n, t, d, u in theme["dictionary"]
    ]  # fmt: skip
    if sandbox:
        fields.append(
            {
                "name": SUBJECT_FIELD, "type": "string", "description": "Pseudonymous person", "unit": "",
                "personal": True, "sensitive": False, "identifier": True, "sandbox": "",
            }
        )  # fmt: skip
    return fields


DATASET_ROWS = 500  # small enough to seed in a moment, enough to query


def provide_dataset(product: DataProduct, actor: User, content: bytes) -> None:
    """The draft's dataset as a CSV file, for the demos of every app (file and API delivery need one)."""
    dataset = services.dataset_upload(product=product, actor=actor, name="data.csv", file=ContentFile(content))
    # Checked here: the task the upload queues may wait for a commit (or a worker) that the seed does not.
    services.dataset_validate(dataset_id=dataset.pk)


def _content(spec: tuple[str, str, str, str, str, str], index: int) -> dict[str, Any]:
    provider, board, category, theme_name, title_en, title_zh = spec
    theme = THEMES[theme_name]
    rng = random.Random(index)
    foreign = provider == "rhein"
    content: dict[str, Any] = {
        "title_en": title_en,
        "title_zh": title_zh,
        "summary_en": f"{title_en}: curated, documented and updated on a fixed schedule.",
        "summary_zh": f"{title_zh}：经整理、附说明、按固定周期更新。",
        "description_en": (
            f"{title_en}, compiled from licensed sources and checked against the data dictionary below. "
            "Delivered as files, through an API, or inside the exchange's sandbox."
        ),
        "description_zh": f"{title_zh}，来源经授权，已按下方数据字典校验。可通过文件、API 或交易所沙箱交付。",
        "category": Category.objects.get(code=category),
        "tags": [theme_name, board, title_en.split()[0].lower()],
        "classification": "general",
        "origin_countries": ["DE", "NL"] if foreign else ["CN"],
        "origin_region": "Rhine–Ruhr" if foreign else rng.choice(["Shanghai", "Guangdong", "Zhejiang", "Beijing"]),
        "coverage_start": date(2023, 1, 1),
        "coverage_end": date(2026, 9, 30),
        "coverage_geography": "Europe" if foreign else "Mainland China",
        "update_frequency": rng.choice(["daily", "weekly", "monthly"]),
        "volume": f"{rng.randint(1, 90)} million rows",
        "delivery_modes": rng.choice([["file"], ["file", "api"], ["api"], ["file", "api", "sandbox"], ["sandbox"]]),
        "licence_en": "The buyer may use the data for the purposes listed, inside its own organisation only.",
        "licence_zh": "买方仅可在本单位内部、为所列用途使用该数据。",
        "licence_terms": {
            "purposes": rng.choice([["market research"], ["credit risk assessment"], ["supply chain planning"]]),
            "territories": ["worldwide"] if board == "international" else ["CN"],
            "duration_months": rng.choice([12, 24, None]),
            "onward_transfer": False,
            "resale": False,
        },
    }
    sandbox = "sandbox" in content["delivery_modes"]
    content["dictionary"] = _dictionary(theme, sandbox=sandbox)
    # The sandbox's individuals are personal information (its output, aggregates of at least N of them, is not).
    content["contains_personal_info"] = sandbox
    content["personal_info_subjects"] = 80 if sandbox else 0
    return content


def _plans(product: DataProduct, actor: User, index: int) -> None:
    rng = random.Random(1000 + index)
    currency = "USD" if product.board.code == Board.Code.INTERNATIONAL and index % 2 else "CNY"
    base = Decimal(rng.randint(20, 400) * 100)
    services.plan_create(
        product=product, actor=actor, name_en="Annual subscription", name_zh="年度订阅",
        kind="subscription", period="year", currency=currency, amount=base * 10,
    )  # fmt: skip
    if index % 3 == 0:
        services.plan_create(
            product=product, actor=actor, name_en="One-off extract", name_zh="一次性提取",
            kind="one_off", currency=currency, amount=base,
        )  # fmt: skip
    if "api" in open_revision_modes(product):
        services.plan_create(
            product=product, actor=actor, name_en="API, pay as you go", name_zh="API 按量计费",
            kind="metered", period="month", currency=currency, amount=Decimal("500.00"),
            included_calls=10_000, unit_price=Decimal("0.0200"),
        )  # fmt: skip


def open_revision_modes(product: DataProduct) -> list[str]:
    revision = services.open_revision(product) or product.listed_revision
    return revision.delivery_modes if revision else []


def _create(spec: tuple[str, str, str, str, str, str], index: int) -> tuple[DataProduct, User] | None:
    provider_key, board_code = spec[0], spec[1]
    actor = User.objects.get(email=PROVIDERS[provider_key])
    firm: MemberFirm = actor.membership.firm
    if Revision.objects.filter(product__provider=firm, title_en=spec[4]).exists():
        return None  # seeded before
    content = _content(spec, index)
    product = services.product_create(actor=actor, board=Board.objects.get(code=board_code), **content)
    theme = THEMES[spec[3]]
    subjects = "sandbox" in content["delivery_modes"]
    services.revision_set_sample(
        product=product, actor=actor, name="sample.csv", content=_sample(theme, index, subjects=subjects)
    )
    provide_dataset(product, actor, _sample(theme, index, DATASET_ROWS, subjects=subjects))
    _plans(product, actor, index)
    return product, actor


def seed(*, stdout: Any = None) -> None:
    reviewer = User.objects.get(email=REVIEWER)
    listed = 0
    for index, spec in enumerate(PRODUCTS):
        created = _create(spec, index)
        if created is None:
            continue
        product, actor = created
        services.product_submit(product=product, actor=actor)
        services.review_start(product=product, actor=reviewer)
        revision = services.review_approve(product=product, actor=reviewer, notes="Demo: registration checked.")
        # The demo's notices ended days ago.
        Revision.objects.filter(pk=revision.pk).update(notice_ends_at=timezone.now() - timedelta(days=1))
        services.notice_conclude(revision_id=revision.pk)
        listed += 1
    for index, spec in enumerate(DRAFTS, start=len(PRODUCTS)):
        _create(spec, index)
    created = _create(IN_REVIEW, len(PRODUCTS) + len(DRAFTS))
    if created is not None:
        product, actor = created
        services.product_submit(product=product, actor=actor)
        services.review_start(product=product, actor=reviewer)
    if stdout is not None and listed:
        stdout.write(f"  Catalogue: {listed} products listed, {len(DRAFTS)} drafts, 1 in review.")
