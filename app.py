"""Radio galaxy latent-space explorer: ``streamlit run app.py``.

Opens on the MiraBest map (prepared on first start, then reused from the user cache).
The sidebar chooses the space and the neighbour settings for every page; each file in
``pages/`` holds its page's layout and widgets (shared ones in ``explorer/widgets/``), and
the work is done in ``explorer/`` and ``pretrain/``.
"""

from pathlib import Path

PAGES = Path(__file__).parent / "pages"


def main() -> None:
    import streamlit as st  # imported here: a spawned worker (see below) needs neither

    from explorer.widgets import frame, sidebar

    frame.page_config()
    pages = [
        st.Page(PAGES / "1_Map.py", title="Map", icon=":material/scatter_plot:", default=True),
        st.Page(PAGES / "2_Lookup.py", title="Look-up", icon=":material/travel_explore:"),
        st.Page(PAGES / "3_Training.py", title="Training", icon=":material/model_training:"),
        st.Page(PAGES / "4_Help.py", title="Help", icon=":material/help:"),
    ]
    navigation = st.navigation(pages)
    frame.mark_app_run()
    sidebar.sidebar()
    navigation.run()


# Streamlit runs this script as __main__. A worker process started with multiprocessing's
# "spawn" (the bundle build uses a process pool) re-imports the main script as __mp_main__:
# there it must not run the app (no page, no sidebar, no preparing the default space).
if __name__ == "__main__":
    main()
