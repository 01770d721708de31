"""The settlements app's writes, one module per subject (ledger, orders, access requests, deposits,
withdrawals, reference data). Import the module, not names from this package."""
