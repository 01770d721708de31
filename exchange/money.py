"""Money: currencies the exchange settles in, and the one rounding rule.

Amounts are `Decimal` with a currency code beside them. Every amount that reaches the ledger is rounded
once, here, to the currency's minor unit with banker's rounding (ROUND_HALF_EVEN), the rule that does not
drift upwards over many roundings.
"""

from decimal import ROUND_HALF_EVEN, Decimal

# ISO 4217 code -> digits of the minor unit.
CURRENCIES: dict[str, int] = {"CNY": 2, "USD": 2}
# The currencies as choices, for forms and the API schema's one `Currency` enum.
CURRENCY_CHOICES = [(code, code) for code in CURRENCIES]


def quantize(amount: Decimal, currency: str) -> Decimal:
    if not isinstance(amount, Decimal):
        raise TypeError("Money amounts must be Decimal, never float.")
    try:
        places = CURRENCIES[currency]
    except KeyError:
        raise ValueError(f"Unknown currency {currency!r}.") from None
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
