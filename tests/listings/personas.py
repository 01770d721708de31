"""Who sees what of the `catalogue` fixture, shared by the views, API and selector tests."""

# persona -> the boards whose listed products the catalogue shows them
CATALOGUE_BOARDS: dict[str, set[str]] = {
    "anonymous": set(),
    "unadmitted": set(),
    "domestic": {"domestic"},
    "international": {"international"},
    "provider": {"domestic", "international"},
    "reviewer": {"domestic", "international"},
    "clerk": {"domestic", "international"},
}
