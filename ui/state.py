"""Session-state and widget keys, in one place so tests and pages agree on them."""

SCENARIO = "scenario"
"""Selected shipped scenario name (also mirrored in the URL as ?scenario=...)."""
