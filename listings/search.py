"""Catalogue text search in English and Chinese.

PostgreSQL: each revision carries a tsvector of its English text (the `english` configuration, stemmed)
and of its Chinese text cut into overlapping two-character tokens (the `simple` configuration), since
PostgreSQL has no Chinese word segmentation built in; a query is cut the same way, and all its tokens
must match (GIN-indexed). A lone Chinese character has no bigram: it falls back to a substring match on
the revision's search text (trigram-indexed for longer patterns). SQLite (the embedded set-up) matches every term as a plain substring.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.db import connection
from django.db.models import F, Q, QuerySet, Value

from .models import Revision

if TYPE_CHECKING:
    from .models import DataProduct

CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
WORD = re.compile(r"[^\W_]+", re.UNICODE)
MAX_QUERY_TERMS = 12  # a bound on the SQL a query string can produce


def cjk_tokens(text: str) -> list[str]:
    """Overlapping two-character tokens of each run of Chinese characters (a lone character stays one)."""
    tokens: list[str] = []
    for run in CJK_RUN.findall(text):
        tokens.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
    return tokens


def latin_words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(CJK_RUN.sub(" ", text))]


def revision_texts(revision: Revision) -> tuple[str, str, str, str]:
    """(English titles, English body, Chinese title tokens, Chinese body tokens)."""
    tags = " ".join(str(t) for t in revision.tags)
    en_title = revision.title_en
    en_body = " ".join([revision.summary_en, revision.description_en, tags, revision.category.name_en])
    zh_title = " ".join(cjk_tokens(revision.title_zh))
    zh_body = " ".join(
        cjk_tokens(" ".join([revision.summary_zh, revision.description_zh, tags, revision.category.name_zh]))
    )
    return en_title, en_body, zh_title, zh_body


def search_text(revision: Revision) -> str:
    """Everything searchable, plain, lower-cased: the fallback's haystack."""
    tags = " ".join(str(t) for t in revision.tags)
    parts = [
        revision.title_en,
        revision.title_zh,
        revision.summary_en,
        revision.summary_zh,
        revision.description_en,
        revision.description_zh,
        tags,
        revision.category.name_en,
        revision.category.name_zh,
    ]
    return " ".join(p for p in parts if p).lower()


def revision_index(revision: Revision) -> None:
    """Store the revision's search text (and, on PostgreSQL, its tsvector). Called when it is frozen."""
    text = search_text(revision)
    updates: dict[str, object] = {"search_text": text}
    if connection.vendor == "postgresql":
        en_title, en_body, zh_title, zh_body = revision_texts(revision)
        updates["search_vector"] = (
            SearchVector(Value(en_title), config="english", weight="A")
            + SearchVector(Value(zh_title), config="simple", weight="A")
            + SearchVector(Value(en_body), config="english", weight="B")
            + SearchVector(Value(zh_body), config="simple", weight="B")
        )
    Revision.objects.filter(pk=revision.pk).update(**updates)
    revision.search_text = text


def search_products(queryset: QuerySet[DataProduct], query: str) -> QuerySet[DataProduct]:
    """Narrow listed products to those whose listed revision matches `query`; annotate `rank` on PostgreSQL."""
    query = query.strip()[:200]
    words = latin_words(query)[:MAX_QUERY_TERMS]
    runs = CJK_RUN.findall(query)[:MAX_QUERY_TERMS]
    if not words and not runs:
        return queryset
    if connection.vendor != "postgresql":
        condition = Q()
        for term in [*words, *runs]:
            condition &= Q(listed_revision__search_text__contains=term.lower())
        return queryset.filter(condition)

    vector = F("listed_revision__search_vector")
    # A run of two or more Chinese characters is found through its bigrams, all of which a matching text
    # contains; a lone character has no bigram, so it is looked for as a substring instead (the fallback).
    long_runs = [run for run in runs if len(run) > 1]
    single_chars = [run for run in runs if len(run) == 1]
    ts_query = None
    if words:
        ts_query = SearchQuery(" ".join(words), config="english", search_type="plain")
    bigrams = cjk_tokens(" ".join(long_runs))
    if bigrams:
        zh_query = SearchQuery(" ".join(bigrams), config="simple", search_type="plain")
        ts_query = zh_query if ts_query is None else ts_query & zh_query
    condition = Q()
    if ts_query is not None:
        # ANDed, never ORed with the fallback: the GIN index then narrows the rows before anything else.
        condition &= Q(listed_revision__search_vector=ts_query)
    for char in single_chars:
        condition &= Q(listed_revision__search_text__contains=char)
    queryset = queryset.filter(condition)
    if ts_query is not None:
        queryset = queryset.annotate(rank=SearchRank(vector, ts_query))
    return queryset
