"""Benchmarks that drive the whole app: a real `streamlit run app.py` and Debian's Chromium.

Run from the repository root, one module each (results, markdown and JSON, land beside them):
`python -m benchmarks.app_timing`, `python -m benchmarks.load`, `python -m benchmarks.upload_health`.
They live here, beside the app they start, and not in `purify_core/bench/` (the core's own
benchmarks, `python -m purify_core bench ...`), because the torch library knows nothing of the app.
`app_server` starts and stops the app for them and for the browser tests.
"""
