"""`manage.py assess --json '<input>'` (or `--file input.json`): the rules engine's decision as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from compliance.policy import policy_from_settings
from compliance.rules import InvalidInput, assess


class Command(BaseCommand):
    help = (
        "Decide a cross-border transfer with the rules engine. The input is one JSON object with the groups "
        "product, exporter, trade and the key as_of (docs/compliance-rules.md). Prints the decision as JSON "
        "and exits 0; invalid input prints what is wrong and exits 2."
    )

    def add_arguments(self, parser: Any) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--json", dest="text", help="the input object as a JSON string")
        source.add_argument("--file", type=Path, help="a file holding the input object ('-' for standard input)")

    def handle(self, *args: Any, text: str | None = None, file: Path | None = None, **options: Any) -> None:
        try:
            if file is not None:
                text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
            raw = json.loads(text or "")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read the input (a UTF-8 JSON file): {exc}", returncode=2) from None
        except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError; so are 5,000-digit numbers
            raise CommandError(f"the input is not valid JSON: {exc}", returncode=2) from None
        try:
            decision = assess(raw, policy_from_settings())
        except InvalidInput as exc:
            problems = "\n".join(f"  {path or '(input)'}: {problem}" for path, problem in exc.errors.items())
            raise CommandError(f"invalid input:\n{problems}", returncode=2) from None
        self.stdout.write(json.dumps(decision, ensure_ascii=False, indent=2))
