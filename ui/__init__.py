"""The only Streamlit-aware helpers: cache wrappers, session-state keys, shared widgets."""
