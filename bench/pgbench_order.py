"""The pgbench script of one order placement (P13): the SQL one real `POST /api/v1/orders` sends, captured and turned
into a script that pgbench replays with other buyers, other products and fresh keys, so that the database's own
limit for this work is measured in the same run as the HTTP scenario.

How the script is derived (`capture_and_write`, called by bench/trading_data.py once the data exists):

1. One order is placed through the whole request path in-process (django.test.Client: the middleware, API-key
   authentication, the idempotency key, the view, order_place, the response), after one unmeasured order by the
   same buyer (so that what happens once per key or per minute, e.g. the key's last-used stamp, is not captured).
   Every statement is recorded with its parameters inlined (Django's execute wrappers), together with where each
   transaction begins, commits or rolls back and, for an INSERT ... RETURNING of one row, the id it returned.
2. Every number in the SQL (outside string literals) that is the id of the buyer's rows (firm, user, group,
   membership, API key, cash and escrow accounts), of the product's (provider firm, product, revision, plan,
   exporter's yearly counter, product export), or that an earlier INSERT returned, becomes a pgbench variable: the
   buyer and the product are drawn at random per transaction (their ids are arithmetic progressions, which
   bench/trading_data.py made and this module checks), the returned ids are taken with `\\gset`. String literals
   that are such an id, or `<word>:<id>` (a journal entry's reference `charge:<id>`, the idempotency scope
   `firm:<id>`), become concatenations, and an array of ids (the postings' bulk INSERT ... UNNEST) an ARRAY[...]. The ids inside JSON documents (the snapshot, the outbox and audit
   payloads, the stored response) stay as captured: they are text to the database, not keys.
3. What must differ per transaction for the database to accept it, or to keep the ledger sound, and what is
   decided by what a statement reads:
   - the idempotency key: `pgb-<run>-<client>-<random 63-bit number>` (unique per firm);
   - the audit trail's head: the SELECT ... FOR UPDATE SKIP LOCKED of a chain head starts from the client's own head
     (1 + client % 16), then from the head taken last, as a thread does (exchange.services._audit_head_lock), is
     `\\aset`, and when it finds every head held, the blocking SELECT follows (`\\if`), as in the service; the
     event's chain, seq (head's + 1) and prev_hash are the head's; its hash (unique) is two md5s of random(),
     returned with the id so that the head moves onto it (a trigger holds the head to an existing event);
   - the outbox relay that the request runs after its commit (Celery is eager without a broker): each SELECT ...
     FOR UPDATE SKIP LOCKED of the oldest due event after the one taken last is `\\aset`, and what the relay does
     with the event (its deliveries, its publication) runs only when it took one (`\\if`);
   - the cached balances: `SET balance = <new>` becomes `SET balance = balance + <the change captured>`, so that
     the cached balances still equal the postings after the replay (the bench checks the ledger after the run).
4. Left out, because it is not the database's work: Python (Django's middleware, DRF's authentication and
   parsing, the serializers, the compliance rules engine, the JSON rendering), the HTTP server and the client.
   The database does the same statements, in the same transactions, holding the same locks in the same order.
   Not the same: the API key's lookup reads the captured buyer's key row for every client (a read by a unique
   index: the same cost, and reads do not wait on each other); the ids inside JSON documents; the yearly product
   export's `trades` (written as captured, not + 1); the audit rows' hashes (random, so `verify_audit` does not
   hold for the rows pgbench adds to the bench database).

A second script, `<name>-transaction.sql`, holds the idempotency key's reservation and the order's own transaction
alone (without the API key's lookup before them and the relay after them): the core of the work.

The script refuses to be written when a step above finds nothing to do (the capture did not contain what it
expects): the code changed, and the derivation must be looked at again.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import connection
from django.test import Client

from settlements.models import Account

# A string literal, as psycopg inlines it: '...' with '' for a quote, or E'...' with backslash escapes.
LITERAL = re.compile(r"(?:[Ee]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*')")
NUMBER = re.compile(r"(?<![\w.:$\"])(\d+)(?![\w.])")


@dataclass
class Statement:
    sql: str
    # The first column of each row, for INSERT ... RETURNING and SELECT ... FOR UPDATE.
    returned: list[str] = field(default_factory=list)


@dataclass
class Capture:
    items: list[Statement | str] = field(default_factory=list)  # statements, and "BEGIN"/"COMMIT"/"ROLLBACK"


def _capture(run: Callable[[], Any]) -> Capture:
    """Record every statement `run` sends on the default connection, with the transactions' boundaries."""
    captured = Capture()

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        result = execute(sql, params, many, context)
        cursor = context["cursor"].cursor
        text = connection.ops.last_executed_query(cursor, sql, params)
        statement = Statement(sql=text)
        pgresult = getattr(cursor, "pgresult", None)
        if pgresult is not None and pgresult.ntuples and re.search(r"\bRETURNING\b|\bFOR UPDATE\b", text):
            statement.returned = [(pgresult.get_value(i, 0) or b"").decode() for i in range(pgresult.ntuples)]
        captured.items.append(statement)
        return result

    original = (connection._set_autocommit, connection._commit, connection._rollback)

    def set_autocommit(autocommit: bool) -> None:
        if not autocommit:
            captured.items.append("BEGIN")
        original[0](autocommit)

    def commit() -> None:
        captured.items.append("COMMIT")
        original[1]()

    def rollback() -> None:
        captured.items.append("ROLLBACK")
        original[2]()

    connection._set_autocommit, connection._commit, connection._rollback = set_autocommit, commit, rollback
    try:
        with connection.execute_wrapper(wrapper):
            run()
    finally:
        del connection._set_autocommit, connection._commit, connection._rollback
    return captured


def _progression(name: str, values: list[int]) -> tuple[int, int]:
    """(first, step) of ids that must be an arithmetic progression (one row per buyer or product, made in turn)."""
    if len(values) == 1:
        return values[0], 1
    step = values[1] - values[0]
    if step <= 0 or any(b - a != step for a, b in zip(values, values[1:], strict=False)):
        raise SystemExit(f"pgbench script: the {name} ids are not an arithmetic progression: {values[:5]}...")
    return values[0], step


def _outside_literals(sql: str) -> Iterator[tuple[bool, str]]:
    """The SQL in pieces: (True, a string literal) or (False, the text between literals)."""
    at = 0
    for match in LITERAL.finditer(sql):
        if match.start() > at:
            yield False, sql[at : match.start()]
        yield True, match.group(0)
        at = match.end()
    if at < len(sql):
        yield False, sql[at:]


def _literal_value(literal: str) -> str | None:
    if literal.startswith(("E'", "e'")):
        return None  # never an id
    return literal[1:-1].replace("''", "'")


def _substitute(sql: str, ids: dict[str, str]) -> str:
    """Ids as pgbench variables: bare numbers, and string literals that are an id or `<word>:<id>`."""
    out = []
    for is_literal, piece in _outside_literals(sql):
        if not is_literal:
            out.append(NUMBER.sub(lambda m: ids.get(m.group(1), m.group(1)), piece))
            continue
        value = _literal_value(piece)
        array = re.fullmatch(r"\{(\d+(?:,\d+)*)\}", value or "")
        if array and any(n in ids for n in array.group(1).split(",")):
            # An array of ids (bulk_create's UNNEST): ARRAY[...] takes variables, and the cast after it still applies.
            out.append("ARRAY[" + ", ".join(ids.get(n, n) for n in array.group(1).split(",")) + "]")
            continue
        match = re.fullmatch(r"([a-z_]+:)?(\d+)", value or "")
        if match and match.group(2) in ids:
            prefix = match.group(1) or ""
            out.append(f"('{prefix}' || {ids[match.group(2)]})")
        else:
            out.append(piece)
    return "".join(out)


def _values_of(insert: str) -> tuple[str, list[str], list[str], str]:
    """(head, columns, values, tail) of a one-row `INSERT INTO t (cols) VALUES (vals) RETURNING ...`."""
    match = re.match(r'(INSERT INTO "\w+" )\(([^)]*)\) VALUES \(', insert)
    if not match:
        raise SystemExit(f"pgbench script: not a one-row INSERT: {insert[:200]}")
    columns = [c.strip().strip('"') for c in match.group(2).split(",")]
    values, depth, current, at = [], 0, "", match.end()
    pieces = list(_outside_literals(insert[at:]))
    for index, (is_literal, piece) in enumerate(pieces):
        if is_literal:
            current += piece
            continue
        for i, ch in enumerate(piece):
            if ch == "(":
                depth += 1
            elif ch == ")" and depth == 0:
                values.append(current.strip())
                tail = piece[i:] + "".join(p for _, p in pieces[index + 1 :])
                if len(values) != len(columns):
                    raise SystemExit(f"pgbench script: {len(columns)} columns, {len(values)} values: {insert[:200]}")
                return match.group(1), columns, values, tail
            elif ch == ")":
                depth -= 1
            if ch == "," and depth == 0:
                values.append(current.strip())
                current = ""
            else:
                current += ch
    raise SystemExit(f"pgbench script: cannot read the values of {insert[:200]}")


def capture_and_write(
    *, path: Path, buyers: list[dict[str, Any]], providers: list[dict[str, Any]], body: Callable[..., dict[str, Any]]
) -> dict[str, Any]:
    """Capture one order placement by buyers[0] of providers[0]'s product and write the pgbench script; answer what
    run.py needs to call pgbench (the -D variables of each scenario)."""
    buyer, product = buyers[0], providers[0]
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Api-Key {buyer['raw_key']}")

    def place() -> None:
        response = client.post(
            "/api/v1/orders",
            data=json.dumps(body(product)),
            content_type="application/json",
            headers={"Idempotency-Key": f"capture-{uuid.uuid4().hex}"},
        )
        if response.status_code != 201:
            raise SystemExit(
                f"pgbench script: the order to capture answered {response.status_code}: {response.content!r}"
            )

    place()  # once unmeasured: what happens once per key or per minute is not part of every order
    before = dict(Account.objects.filter(pk__in=[buyer["cash"], buyer["escrow"]]).values_list("pk", "balance"))
    captured = _capture(place)
    after = dict(Account.objects.filter(pk__in=[buyer["cash"], buyer["escrow"]]).values_list("pk", "balance"))

    # The per-transaction ids: buyer b and product p drawn by the script, each role's id first + b * step.
    roles = {
        "firm": [b["firm"] for b in buyers],
        "usr": [b["user"] for b in buyers],
        "grp": [b["group"] for b in buyers],
        "mbr": [b["membership"] for b in buyers],
        "key": [b["key"] for b in buyers],
        "cash": [b["cash"] for b in buyers],
        "escrow": [b["escrow"] for b in buyers],
    }
    product_roles = {
        "prov": [p["firm"] for p in providers],
        "pusr": [p["user"] for p in providers],
        "pgrp": [p["group"] for p in providers],
        "prod": [p["product"] for p in providers],
        "rev": [p["revision"] for p in providers],
        "plan": [p["plan"] for p in providers],
        "ctr": [p["counter"] for p in providers],
        "pexp": [p["product_export"] for p in providers],
    }
    header = [
        "-- One order placement (POST /api/v1/orders), as bench/pgbench_order.py derived it from a captured request.",
        "-- Variables from the command line (-D): nb, b0 (buyers b0 .. b0 + nb - 1), np, p0 (products), run.",
        "\\set b :b0 + random(0, :nb - 1)",
        "\\set p :p0 + random(0, :np - 1)",
        "\\set n random(1, 9223372036854775806)",
    ]
    ids: dict[str, str] = {}
    for name, values in roles.items():
        first, step = _progression(name, values)
        header.append(f"\\set {name} {first} + {step} * :b")
        ids[str(values[0])] = f":{name}"
    for name, values in product_roles.items():
        first, step = _progression(name, values)
        header.append(f"\\set {name} {first} + {step} * :p")
        ids[str(values[0])] = f":{name}"
    if len(ids) != len(roles) + len(product_roles):
        raise SystemExit("pgbench script: two roles share an id (the id ranges were not separated)")

    counts = {"idempotency key": 0, "audit head": 0, "audit event": 0, "balance update": 0, "relay": 0}
    returned = 0
    head: str | None = None  # the variables' prefix of the audit head selected last
    relay: str | None = None  # of the outbox event the relay took last
    lines: list[str] = []
    order_transaction: tuple[int, int] | None = None  # where the order's own transaction is in `lines`
    began = claim_began = 0
    for item in captured.items:
        if isinstance(item, str):
            if item == "BEGIN":
                began = len(lines)
            lines.append(f"{item};")
            if item == "COMMIT" and any('INSERT INTO "settlements_order"' in line for line in lines[began:]):
                order_transaction = (began, len(lines))
            continue
        sql = item.sql
        if sql.startswith("SELECT") and '"exchange_auditchainhead"' in sql and "SKIP LOCKED" in sql:
            # The head to append to: from this client's last head (its first: one of its own), skipping the heads
            # other transactions hold; when all are held, wait for that one (exchange.services._audit_head_lock).
            counts["audit head"] += 1
            previous, head = head, f"h{counts['audit head']}_"
            start_at = f":{previous}id" if previous else "(1 + :client_id % 16)"
            sql, found = re.subn(r'("exchange_auditchainhead"\."id" - )\d+\)', rf"\g<1>{start_at})", sql)
            if not found:
                raise SystemExit(f"pgbench script: the audit head's SELECT of another shape: {sql[:300]}")
            lines += [
                f"\\set {head}id 0",
                _substitute(sql, ids) + f" \\aset {head}",
                f"\\if :{head}id = 0",
                _substitute(sql.replace(" SKIP LOCKED", ""), ids) + f" \\gset {head}",
                "\\endif",
            ]
            continue
        if sql.startswith('INSERT INTO "exchange_auditevent"'):
            if head is None:
                raise SystemExit("pgbench script: an audit event with no chain head selected before it")
            start, columns, values, tail = _values_of(sql)
            replace = {
                "chain": f":{head}id",
                "seq": f":{head}last_seq + 1",
                "prev_hash": f"':{head}last_hash'",
                "hash": "md5(random()::text) || md5(random()::text)",
            }
            values = [replace.get(c, v) for c, v in zip(columns, values, strict=True)]
            if not re.search(r'RETURNING "exchange_auditevent"\."id"(, "exchange_auditevent"\."\w+")*$', tail.rstrip()):
                raise SystemExit(f"pgbench script: an audit event's INSERT of another shape: {sql[:200]}")
            # The new event's hash, for the head to move onto (a trigger holds the head to an existing event).
            tail = f'{tail.rstrip()}, "exchange_auditevent"."hash"'
            sql = f"{start}({', '.join(chr(34) + c + chr(34) for c in columns)}) VALUES ({', '.join(values)}{tail}"
            counts["audit event"] += 1
            lines.append(_substitute(sql, ids) + f" \\gset e{counts['audit event']}_")
            continue
        if sql.startswith('UPDATE "exchange_auditchainhead"'):
            sql = re.sub(r'"last_hash" = \'[0-9a-f]{64}\'', f"\"last_hash\" = ':e{counts['audit event']}_hash'", sql)
            sql = re.sub(r'"last_seq" = \d+', f'"last_seq" = :{head}last_seq + 1', sql)
            sql = re.sub(r'"exchange_auditchainhead"\."id" = \d+', f'"exchange_auditchainhead"."id" = :{head}id', sql)
            lines.append(_substitute(sql, ids) + ";")
            continue
        if sql.startswith("SELECT") and 'FROM "exchange_outboxevent"' in sql and "SKIP LOCKED" in sql:
            # The relay (run in the request: Celery is eager without a broker) takes the oldest due event after the
            # one it took last, whoever published it; then it records the deliveries and publishes that one.
            counts["relay"] += 1
            previous, relay = relay, f"o{counts['relay']}_"
            after_id = f":{previous}id" if previous else "0"
            sql, found = re.subn(r'("exchange_outboxevent"\."id" > )(\d+|:\w+)', rf"\g<1>{after_id}", sql)
            if not found:
                raise SystemExit(f"pgbench script: the relay's SELECT of another shape: {sql[:300]}")
            lines += [f"\\set {relay}id 0", _substitute(sql, ids) + f" \\aset {relay}"]
            if item.returned:
                ids[item.returned[0]] = f":{relay}id"  # the event it took, in what follows
                lines.append(f"\\if :{relay}id > 0")
            continue
        if sql.startswith('INSERT INTO "exchange_idempotencykey"'):
            claim_began = began
            counts["idempotency key"] += 1
            key = re.search(r"'capture-[0-9a-f]{32}'", sql)
            if not key:
                raise SystemExit("pgbench script: the idempotency key's INSERT does not hold the captured key")
            sql = sql.replace(key.group(0), "'pgb-:run-:client_id-:n'")
        elif sql.startswith('UPDATE "settlements_account" SET "balance" = '):
            match = re.match(
                r'UPDATE "settlements_account" SET "balance" = ([-\d.]+) WHERE "settlements_account"\."id" = (\d+)$',
                sql,
            )
            if not match or int(match.group(2)) not in before:
                raise SystemExit(f"pgbench script: an unexpected balance update: {sql[:200]}")
            account = int(match.group(2))
            change: Decimal = after[account] - before[account]
            counts["balance update"] += 1
            sql = f'UPDATE "settlements_account" SET "balance" = "balance" + ({change}) WHERE "settlements_account"."id" = {account}'
        line = _substitute(sql, ids)
        column = re.search(r'RETURNING "\w+"\."(\w+)"', sql)
        if len(item.returned) == 1 and column:
            returned += 1
            ids[item.returned[0]] = f":r{returned}_{column.group(1)}"
            line += f" \\gset r{returned}_"
        lines.append(line if "\\gset" in line else f"{line};")
    if counts["idempotency key"] != 1 or not counts["audit head"] or counts["balance update"] != 2 or not returned:
        raise SystemExit(f"pgbench script: the capture is not what the derivation expects: {counts}")
    if order_transaction is None:
        raise SystemExit("pgbench script: no transaction in the capture inserts the order")
    lines = _close_relays(lines)
    path.write_text("\n".join([*header, *lines]) + "\n")
    # The order's transaction alone, with the idempotency key's reservation it completes (its own short
    # transaction, just before): without the API key's lookup and the outbox relay the request runs after it.
    alone = path.with_name(path.stem + "-transaction" + path.suffix)
    alone.write_text("\n".join([*header, *lines[claim_began : order_transaction[1]]]) + "\n")
    statements = sum(1 for item in captured.items if not isinstance(item, str))
    transactions = sum(1 for item in captured.items if item == "BEGIN")
    return {
        "script": str(path),
        "transaction_script": str(alone),
        "rewritten": counts,
        "statements": statements,
        "transactions": transactions,
        "autocommit_statements": statements - sum(1 for _ in _in_transactions(captured.items)),
        "buyers": {"b0": 0, "nb": len(buyers) - 1},
        "hot_buyer": {"b0": len(buyers) - 1, "nb": 1},
        "products": {"p0": 0, "np": len(providers)},
        "one_product": {"p0": 0, "np": 1},
    }


def _in_transactions(items: list[Statement | str]) -> Iterator[Statement]:
    inside = False
    for item in items:
        if item == "BEGIN":
            inside = True
        elif item in ("COMMIT", "ROLLBACK"):
            inside = False
        elif inside and isinstance(item, Statement):
            yield item


def _close_relays(lines: list[str]) -> list[str]:
    """An `\\if` opened after a relay's SELECT closes before its transaction's COMMIT."""
    out, open_if = [], False
    for line in lines:
        if line.startswith("\\if :o"):
            open_if = True
        elif line == "COMMIT;" and open_if:
            out.append("\\endif")
            open_if = False
        out.append(line)
    return out
