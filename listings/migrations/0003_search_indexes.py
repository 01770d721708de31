"""PostgreSQL search indexes: GIN over the revisions' tsvector, and a trigram GIN over their search text
(the Chinese fallback's LIKE '%…%'). pg_trgm is a trusted extension: a database owner may create it.
SQLite, the embedded set-up, scans instead.
"""

from django.db import migrations

FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS revision_search_vector_gin ON listings_revision USING gin (search_vector)",
    "CREATE INDEX IF NOT EXISTS revision_search_text_trgm ON listings_revision USING gin (search_text gin_trgm_ops)",
]
BACKWARD = [
    "DROP INDEX IF EXISTS revision_search_text_trgm",
    "DROP INDEX IF EXISTS revision_search_vector_gin",
]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in FORWARD:
            schema_editor.execute(statement, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in BACKWARD:
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("listings", "0002_categories")]

    operations = [migrations.RunPython(forward, backward)]
