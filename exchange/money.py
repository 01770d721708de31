"""Money: currencies the exchange settles in, and the one rounding rule.

Amounts are `Decimal` with a currency code beside them. Every amount that reaches the ledger is rounded
once, here, to the currency's minor unit with banker's rounding (ROUND_HALF_EVEN), the rule that does not
drift upwards over many roundings.

Fees are rates in basis points (1 bp = 0.01 %), applied by `bps_of`, which rounds once. An amount split in
parts (`allocate`) is never rounded part by part: the parts are floored to the minor unit and the minor units
left over go one at a time to the parts that lost most to the floor, so the parts always sum to the whole
(5 fen split 70/30 is 4 and 1, never 4 and 2 or 3 and 1).
"""

from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

# ISO 4217 code -> digits of the minor unit.
CURRENCIES: dict[str, int] = {"CNY": 2, "USD": 2}
# The currencies as choices, for forms and the API schema's one `Currency` enum.
CURRENCY_CHOICES = [(code, code) for code in CURRENCIES]

BPS = Decimal(10_000)


def minor_unit(currency: str) -> Decimal:
    """The currency's smallest amount: 0.01 for CNY and USD."""
    try:
        places = CURRENCIES[currency]
    except KeyError:
        raise ValueError(f"Unknown currency {currency!r}.") from None
    return Decimal(1).scaleb(-places)


def quantize(amount: Decimal, currency: str) -> Decimal:
    if not isinstance(amount, Decimal):
        raise TypeError("Money amounts must be Decimal, never float.")
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_EVEN)


def is_quantized(amount: Decimal, currency: str) -> bool:
    """Whether the amount is already a whole number of the currency's minor units (no rounding would change it)."""
    return quantize(amount, currency) == amount


def bps_of(amount: Decimal, bps: int, currency: str) -> Decimal:
    """`bps` basis points of `amount`, rounded once to the minor unit (banker's rounding)."""
    if not isinstance(bps, int) or isinstance(bps, bool) or bps < 0:
        raise ValueError("A rate in basis points is a whole number from 0.")
    return quantize(amount * bps / BPS, currency)


def allocate(total: Decimal, weights: list[Decimal] | list[int], currency: str) -> list[Decimal]:
    """Split `total` in parts proportional to `weights`, each a whole number of minor units, summing to `total`.

    Largest remainder: each part is floored, then the minor units left over go one at a time to the parts with
    the largest fractional remainders (ties to the earlier part). Zero weights get zero; negative totals split
    as the negation of the positive split.
    """
    if not isinstance(total, Decimal):
        raise TypeError("Money amounts must be Decimal, never float.")
    if not is_quantized(total, currency):
        raise ValueError(f"{total} is not a whole number of {currency}'s minor unit.")
    parts_weights = [Decimal(w) for w in weights]
    if not parts_weights or any(w < 0 for w in parts_weights) or sum(parts_weights) == 0:
        raise ValueError("Allocate by at least one weight, none negative, not all zero.")
    if total < 0:
        return [-part for part in allocate(-total, weights, currency)]
    unit = minor_unit(currency)
    units = int(total / unit)
    weight_sum = sum(parts_weights)
    exact = [units * w / weight_sum for w in parts_weights]
    floors = [int(e.to_integral_value(rounding=ROUND_FLOOR)) for e in exact]
    left = units - sum(floors)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return [unit * n for n in floors]
