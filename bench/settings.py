"""Settings for `make bench`: the product's own, plus the baseline endpoints and no throttling.

Everything else (DEBUG, the database, secrets, hosts) comes from the environment that bench/run.py sets,
exactly as in production.
"""

from exchange.settings import *  # noqa: F403
from exchange.settings import REST_FRAMEWORK as _PRODUCT_REST_FRAMEWORK

ROOT_URLCONF = "bench.urls"

# The load comes from one client at thousands of requests a second: throttling would turn it into 429s.
REST_FRAMEWORK = {**_PRODUCT_REST_FRAMEWORK, "DEFAULT_THROTTLE_CLASSES": []}

# The data gateway's own rate per credential, likewise.
DATA_GATEWAY_THROTTLE_RATE = None
# The meter counts in a cache and writes each period's count every 100 calls, as in production with a shared Redis
# (METER_CACHE_URL); here each worker's own memory stands in for it (no limit is reached in the bench, so counts
# per process do no harm). Without a cache (the embedded default) the usage row is the counter: a write per call.
SETTLEMENT_METER_CACHE = "default"
SETTLEMENT_METER_CHECKPOINT_CALLS = 100
