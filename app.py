"""TicketTune: fine-tune a support-ticket classifier from a spreadsheet, in the browser.

Start with ``streamlit run app.py``. This entrypoint runs on every page: page config, navigation,
the query parameters that survive a refresh, and the sidebar badge of the training job.
"""

import streamlit as st

from ui.auth import account_menu, gate_page
from ui.job_view import sidebar_badge
from ui.state import sync_query_params, wait_for_engine_warm_up, warm_up_engine

st.set_page_config(page_title="TicketTune", page_icon="🎫", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/data.py", title="1 Data", icon=":material/table_view:", url_path="data"),
    st.Page("pages/train.py", title="2 Train", icon=":material/model_training:", url_path="train"),
    st.Page("pages/review.py", title="3 Review", icon=":material/fact_check:", url_path="review"),
    st.Page(
        "pages/predict.py", title="4 Use the model", icon=":material/bolt:", url_path="predict"
    ),
    st.Page("pages/runs.py", title="Runs", icon=":material/history:", url_path="runs"),
]


gate = gate_page()  # sign-in (or refusal) as the only page until the visitor may go on
if gate is not None:
    st.navigation([gate], position="hidden").run()
    st.stop()
page = st.navigation(PAGES)
sync_query_params()
account_menu()
sidebar_badge()
wait_for_engine_warm_up()
try:
    page.run()
finally:  # after the first page is drawn: the model libraries load while the analyst reads
    warm_up_engine()
