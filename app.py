"""Purify Lab: page config, navigation and the shared sidebar; nothing else."""

import streamlit as st

from ui.sidebar import scenario_picker

st.set_page_config(page_title="Purify Lab", page_icon="🧪", layout="wide")
page = st.navigation([
    st.Page("app_pages/home.py", title="Scenario", icon=":material/home:", default=True),
    st.Page("app_pages/attack_lab.py", title="Attack lab", icon=":material/bug_report:"),
    st.Page("app_pages/salience.py", title="Salience maps", icon=":material/local_fire_department:"),
    st.Page("app_pages/compare.py", title="Compare rankings", icon=":material/leaderboard:"),
    st.Page("app_pages/purify.py", title="Purify", icon=":material/cleaning_services:"),
    st.Page("app_pages/explain.py", title="Explain", icon=":material/visibility:"),
])
st.sidebar.title("Purify Lab")
scenario_picker()
page.run()
