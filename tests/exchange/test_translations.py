"""The Simplified Chinese catalogue: complete, not fuzzy, placeholders intact, compiled from the current .po.

No database: the catalogue is read as files, and Django's translation machinery needs no tables.
"""

from __future__ import annotations

import ast
import gettext
import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
from django.utils import translation

LC_MESSAGES = Path(__file__).resolve().parents[2] / "locale" / "zh_Hans" / "LC_MESSAGES"
PO = LC_MESSAGES / "django.po"
MO = LC_MESSAGES / "django.mo"

# %(name)s, %(n)d, %s, %d, %.2f …; "%%" is a literal percent sign, not a placeholder.
PLACEHOLDER = re.compile(r"%(?:\([^)]+\))?[#0 +\-]*(?:\d+|\*)?(?:\.\d+)?[sdifrxXeEgGc%]")
HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")


@dataclass
class Entry:
    msgid: str
    msgctxt: str | None = None
    msgid_plural: str | None = None
    msgstrs: list[str] = field(default_factory=list)  # msgstr, or msgstr[0], msgstr[1], …
    flags: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        # How gettext keys a message: "context\x04msgid".
        return f"{self.msgctxt}\x04{self.msgid}" if self.msgctxt is not None else self.msgid


def _parse_simply(text: str) -> list[Entry]:
    """A small .po reader for when polib is not installed (obsolete "#~" entries are skipped)."""
    entries: list[Entry] = []
    fields: dict[str, str] = {}
    flags: list[str] = []
    current: str | None = None

    def flush() -> None:
        nonlocal fields, flags, current
        if "msgid" in fields:
            plural_keys = sorted((k for k in fields if k.startswith("msgstr[")), key=lambda k: int(k[7:-1]))
            entries.append(
                Entry(
                    msgid=fields["msgid"],
                    msgctxt=fields.get("msgctxt"),
                    msgid_plural=fields.get("msgid_plural"),
                    msgstrs=[fields[k] for k in plural_keys] if plural_keys else [fields.get("msgstr", "")],
                    flags=flags,
                )
            )
        fields, flags, current = {}, [], None

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            flush()
        elif line.startswith("#,"):
            if "msgid" in fields:
                flush()
            flags.extend(f.strip() for f in line[2:].split(",") if f.strip())
        elif line.startswith("#"):
            if "msgid" in fields and not line.startswith("#~"):
                flush()
        elif line.startswith('"'):
            assert current is not None, f"continuation line without a keyword: {raw!r}"
            fields[current] += ast.literal_eval(line)
        else:
            keyword, _, value = line.partition(" ")
            if keyword in ("msgctxt", "msgid") and "msgid" in fields and any(k.startswith("msgstr") for k in fields):
                flush()
            current = keyword
            fields[keyword] = ast.literal_eval(value)
    flush()
    return entries


@cache
def po_entries() -> tuple[Entry, ...]:
    """Every live entry of the .po except the header."""
    try:
        import polib
    except ImportError:
        entries = _parse_simply(PO.read_text(encoding="utf-8"))
    else:
        entries = [
            Entry(
                msgid=e.msgid,
                msgctxt=e.msgctxt,
                msgid_plural=e.msgid_plural or None,
                msgstrs=[e.msgstr_plural[i] for i in sorted(e.msgstr_plural)] if e.msgid_plural else [e.msgstr],
                flags=list(e.flags),
            )
            for e in polib.pofile(str(PO))
            if not e.obsolete
        ]
    return tuple(e for e in entries if e.msgid != "")


def _ids(entries: tuple[Entry, ...]) -> list[str]:
    return [e.msgid[:60] for e in entries]


def test_the_catalogue_has_entries():
    assert len(po_entries()) > 100


def test_every_entry_is_translated():
    untranslated = [e.msgid for e in po_entries() if not e.msgstrs or not all(s.strip() for s in e.msgstrs)]
    assert untranslated == []


def test_no_entry_is_fuzzy():
    assert [e.msgid for e in po_entries() if "fuzzy" in e.flags] == []
    header_flags = PO.read_text(encoding="utf-8").split('msgid ""', 1)[0]
    assert "fuzzy" not in header_flags, "the header is still marked fuzzy, so msgfmt would skip it"


def test_plural_entries_have_one_form_in_chinese():
    for e in po_entries():
        if e.msgid_plural:
            assert len(e.msgstrs) == 1, e.msgid


@pytest.mark.parametrize("entry", po_entries(), ids=_ids(po_entries()))
def test_placeholders_and_markup_are_kept(entry: Entry):
    # A Chinese plural entry has one form, which must carry everything the English plural has.
    source = entry.msgid_plural or entry.msgid
    for msgstr in entry.msgstrs:
        assert Counter(PLACEHOLDER.findall(msgstr)) == Counter(PLACEHOLDER.findall(source)), msgstr
        assert sorted(HTML_TAG.findall(msgstr)) == sorted(HTML_TAG.findall(source)), msgstr


def _mo_msgids() -> set[str]:
    """The original strings of the .mo, read from its tables (GNU gettext's binary format)."""
    data = MO.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    order = "<" if magic == 0x950412DE else ">"
    _, count, originals_at, _ = struct.unpack(order + "4I", data[4:20])
    ids = set()
    for i in range(count):
        length, offset = struct.unpack(order + "2I", data[originals_at + 8 * i : originals_at + 8 * i + 8])
        ids.add(data[offset : offset + length].decode("utf-8").split("\x00")[0])
    return ids - {""}


def test_the_compiled_catalogue_matches_the_po():
    assert MO.exists(), "run: manage.py compilemessages -l zh_Hans --ignore=.venv"
    translated = [e for e in po_entries() if e.msgstrs and all(e.msgstrs) and "fuzzy" not in e.flags]
    assert _mo_msgids() == {e.key for e in translated}, "django.mo is stale: recompile the catalogue"

    with MO.open("rb") as fp:
        mo = gettext.GNUTranslations(fp)
    assert mo.info()["plural-forms"].replace(" ", "") == "nplurals=1;plural=0;"
    stale = []
    for e in translated:
        if e.msgid_plural:
            got = (
                mo.npgettext(e.msgctxt, e.msgid, e.msgid_plural, 2)
                if e.msgctxt
                else mo.ngettext(e.msgid, e.msgid_plural, 2)
            )
        else:
            got = mo.pgettext(e.msgctxt, e.msgid) if e.msgctxt else mo.gettext(e.msgid)
        if got != e.msgstrs[0]:
            stale.append(e.msgid)
    assert stale == [], "django.mo does not carry the .po's current translations: recompile"
    assert mo.gettext("Member portal") == "会员门户"


@pytest.mark.parametrize(
    "english, chinese",
    [
        ("Member portal", "会员门户"),
        ("Portal", "会员门户"),
        ("Cross-border Data Exchange", "跨境数据交易所"),
        ("Domestic board", "国内板"),
        ("International board", "国际板"),
        ("member firm", "会员单位"),
        ("Unified Social Credit Code", "统一社会信用代码"),
        ("Legal Entity Identifier", "法人机构识别编码"),
        ("critical information infrastructure operator", "关键信息基础设施运营者"),
        ("pilot free trade zone", "自由贸易试验区"),
        ("Log in", "登录"),
        ("Log out", "退出登录"),
        ("Staff admin", "管理后台"),
    ],
)
def test_django_serves_the_glossary_terms(english: str, chinese: str):
    # Through LOCALE_PATHS and the language code the site uses ("zh-hans" → locale "zh_Hans").
    with translation.override("zh-hans"):
        assert translation.gettext(english) == chinese


def test_placeholders_are_filled_in_chinese():
    with translation.override("zh-hans"):
        text = translation.gettext("Fees in %(currency)s:") % {"currency": "CNY"}
    assert text == "CNY 交易服务费："
