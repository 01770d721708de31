"""What the compliance admin's modules share."""

ADMIN_CSS = "admin/listings/review.css"  # the reviewers' tables and buttons; the CSP allows no inline styles
