"""Session-state and widget keys, in one place so tests and pages agree on them."""

SCENARIO = "scenario"
"""Selected shipped scenario name (also mirrored in the URL as ?scenario=...)."""

COMPARE_TOP = "compare_top"
COMPARE_DIRECTION = "compare_direction"
COMPARE_CURVES = "compare_curves"

RUNS = "purify_runs"
"""This session's purification runs: a list of dicts (label, config, history, summary, status, model)."""
RUN_COUNTER = "purify_run_counter"
MAX_RUNS = 8

PURIFY_PRESET = "purify_preset"
PURIFY_THRESHOLD = "purify_threshold"
PURIFY_DIRECTION = "purify_direction"
PURIFY_SCOPE = "purify_scope"
PURIFY_LAYERS = "purify_layers"
PURIFY_REGULARIZER = "purify_regularizer"
PURIFY_STRENGTH = "purify_strength"
PURIFY_EPOCHS = "purify_epochs"
PURIFY_LR = "purify_lr"
PURIFY_RUN = "purify_run"
PURIFY_STOP = "purify_stop"
PURIFY_DEFENSE = "purify_defense"
PURIFY_RUN_DEFENSE = "purify_run_defense"
PURIFY_DELETE_CHOICE = "purify_delete_choice"
PURIFY_DELETE = "purify_delete"
