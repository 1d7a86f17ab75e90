"""Purify Lab: page config, navigation and the shared sidebar; nothing else."""

import streamlit as st

from ui.glossary import glossary_panel
from ui.job_slots import one_torch_thread
from ui.pages import PAGES
from ui.sidebar import scenario_picker

one_torch_thread()  # a job per core, a thread per job: two threads per job stalled whenever another process held a core
st.set_page_config(page_title="Purify Lab", page_icon="🧪", layout="wide")
page = st.navigation([st.Page(p.path, title=p.title, icon=p.icon, default=p.default) for p in PAGES])
st.sidebar.title("Purify Lab")
scenario_picker()
glossary_panel(st.sidebar)
page.run()
