"""On PostgreSQL the database itself holds the ledger's rules, whatever client writes (T1):

- every journal entry's postings sum to zero per currency, checked at COMMIT by a deferred constraint trigger
  (an entry is written as several INSERTs, so only the end of the transaction can judge it): even raw SQL cannot
  commit an unbalanced entry, and an entry with fewer than two postings is refused the same way;
- a posting is in its account's currency;
- postings and journal entries are append-only: UPDATE and DELETE are refused (corrections are reversals);
- what an order bought (its snapshot, price, fees, plan, revision, currency) never changes once placed.

The application's database role has no TRUNCATE on these tables (manage.py db_grant_app_role). SQLite gets no
trigger: the posting service checks the same rules on every database, and SQLite is not a production database.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION settlements_entry_balanced() RETURNS trigger AS $$
DECLARE
    unbalanced record;
    legs integer;
BEGIN
    SELECT currency, SUM(amount) AS total INTO unbalanced
      FROM settlements_posting WHERE entry_id = NEW.entry_id
     GROUP BY currency HAVING SUM(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance in %: %', NEW.entry_id, unbalanced.currency, unbalanced.total
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT COUNT(*) INTO legs FROM settlements_posting WHERE entry_id = NEW.entry_id;
    IF legs < 2 THEN
        RAISE EXCEPTION 'journal entry % has % posting(s); an entry has at least two', NEW.entry_id, legs
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE CONSTRAINT TRIGGER settlements_posting_balanced
    AFTER INSERT ON settlements_posting
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION settlements_entry_balanced();

CREATE OR REPLACE FUNCTION settlements_entry_has_postings() RETURNS trigger AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM settlements_posting WHERE entry_id = NEW.id) THEN
        RAISE EXCEPTION 'journal entry % has no postings', NEW.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE CONSTRAINT TRIGGER settlements_entry_has_postings
    AFTER INSERT ON settlements_journalentry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION settlements_entry_has_postings();

CREATE OR REPLACE FUNCTION settlements_posting_currency() RETURNS trigger AS $$
BEGIN
    IF NEW.currency IS DISTINCT FROM (SELECT currency FROM settlements_account WHERE id = NEW.account_id) THEN
        RAISE EXCEPTION 'posting in % on an account in another currency', NEW.currency
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER settlements_posting_currency
    BEFORE INSERT ON settlements_posting
    FOR EACH ROW EXECUTE FUNCTION settlements_posting_currency();

CREATE OR REPLACE FUNCTION settlements_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only (% refused): correct it with a reversal', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER settlements_posting_append_only
    BEFORE UPDATE OR DELETE ON settlements_posting
    FOR EACH ROW EXECUTE FUNCTION settlements_append_only();
CREATE TRIGGER settlements_journalentry_append_only
    BEFORE UPDATE OR DELETE ON settlements_journalentry
    FOR EACH ROW EXECUTE FUNCTION settlements_append_only();

CREATE OR REPLACE FUNCTION settlements_order_bought_immutable() RETURNS trigger AS $$
BEGIN
    IF (NEW.snapshot, NEW.price, NEW.buyer_fee, NEW.provider_fee, NEW.usage_budget, NEW.currency, NEW.plan_id,
        NEW.revision_id, NEW.product_id, NEW.buyer_firm_id, NEW.provider_firm_id, NEW.assessment_id,
        NEW.intended_use, NEW.destination, NEW.delivery_mode)
       IS DISTINCT FROM
       (OLD.snapshot, OLD.price, OLD.buyer_fee, OLD.provider_fee, OLD.usage_budget, OLD.currency, OLD.plan_id,
        OLD.revision_id, OLD.product_id, OLD.buyer_firm_id, OLD.provider_firm_id, OLD.assessment_id,
        OLD.intended_use, OLD.destination, OLD.delivery_mode) THEN
        RAISE EXCEPTION 'what order % bought cannot change', OLD.id USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER settlements_order_bought_immutable
    BEFORE UPDATE ON settlements_order
    FOR EACH ROW EXECUTE FUNCTION settlements_order_bought_immutable();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS settlements_order_bought_immutable ON settlements_order;
DROP FUNCTION IF EXISTS settlements_order_bought_immutable();
DROP TRIGGER IF EXISTS settlements_journalentry_append_only ON settlements_journalentry;
DROP TRIGGER IF EXISTS settlements_posting_append_only ON settlements_posting;
DROP FUNCTION IF EXISTS settlements_append_only();
DROP TRIGGER IF EXISTS settlements_posting_currency ON settlements_posting;
DROP FUNCTION IF EXISTS settlements_posting_currency();
DROP TRIGGER IF EXISTS settlements_entry_has_postings ON settlements_journalentry;
DROP FUNCTION IF EXISTS settlements_entry_has_postings();
DROP TRIGGER IF EXISTS settlements_posting_balanced ON settlements_posting;
DROP FUNCTION IF EXISTS settlements_entry_balanced();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("settlements", "0001_ledger_orders")]

    operations = [migrations.RunPython(forward, backward)]
