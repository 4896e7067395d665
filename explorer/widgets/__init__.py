"""Streamlit building blocks shared by the app's pages.

This sub-package is the only part of ``explorer`` that imports Streamlit; everything
else in ``explorer`` (and all of ``pretrain``) imports and is tested without it. The
science and the formatting the widgets show live in those modules (similarity, sky,
figures, gallery, facts, neighbour_list, selection_table, lookup, space_registry).

- :mod:`~explorer.widgets.frame`: the app's frame (page config) and the deep-link workaround.
- :mod:`~explorer.widgets.sidebar`: the space selector and the neighbour settings.
- :mod:`~explorer.widgets.spaces`: the chosen space and its encoder, loaded once (cached).
- :mod:`~explorer.widgets.preparation`: preparing the MiraBest space, with progress.
- :mod:`~explorer.widgets.first_images`: FIRST cutouts fetched on request (catalogue-only spaces).
- :mod:`~explorer.widgets.source_panel`: one source's image and catalogue entry.
- :mod:`~explorer.widgets.neighbours`: the neighbour gallery with its CSV and "continue from".
- :mod:`~explorer.widgets.selection`: the table of a box / lasso selection.
- :mod:`~explorer.widgets.map_state`: the map's per-space session state.
- :mod:`~explorer.widgets.links`: a source's links out (NED, SIMBAD, FIRST, NVSS, VLASS, optical viewers).
- :mod:`~explorer.widgets.export`: VOTable downloads and "send to TOPCAT / Aladin" (SAMP).
- :mod:`~explorer.widgets.tags`: tagging sources and selections, the space's tag sets.
- :mod:`~explorer.widgets.neighbourhood`: label purity, map trust, outliers and the unusual-sources gallery.

Heavy objects (spaces, the encoder) are cached with ``st.cache_resource``. The pages
themselves (``pages/``) hold each page's layout and call into these.
"""
