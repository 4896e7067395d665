"""Keeps a plotly map's zoom and pan when Streamlit redraws it (a click, a colour change).

Streamlit gives a chart a new identity whenever its figure changes, and the browser then
mounts a fresh plot: plotly's ``uirevision`` cannot keep the view across that
(streamlit/streamlit#5107). This widget installs a small script in the page (once per
tab) that remembers each figure's axis ranges under its ``uirevision`` in the tab's
``sessionStorage`` and hands them to every later draw of a figure with that revision.
A double-click (autorange) forgets them. A reload of the tab keeps them too.
"""

from __future__ import annotations

import streamlit as st

# Runs in the page itself (st.html with JavaScript); Plotly is the page's own (window.Plotly).
_PAGE_SCRIPT = r"""
(function () {
  if (window.__explorerViewKeeper) return;
  window.__explorerViewKeeper = true;
  const PREFIX = 'explorer-view:';
  const load = (rev) => { try { return JSON.parse(sessionStorage.getItem(PREFIX + rev)); } catch (e) { return null; } };
  const save = (rev, view) => { try {
    if (view) sessionStorage.setItem(PREFIX + rev, JSON.stringify(view)); else sessionStorage.removeItem(PREFIX + rev);
  } catch (e) {} };
  function remember(gd) {
    if (gd.__explorerViewKept || !gd.on) return;
    gd.__explorerViewKept = true;
    gd.on('plotly_relayout', () => {
      const fl = gd._fullLayout, rev = fl && fl.uirevision;
      if (typeof rev !== 'string' || !fl.xaxis || !fl.yaxis) return;
      if (fl.xaxis.autorange && fl.yaxis.autorange) save(rev, null);
      else save(rev, {x: fl.xaxis.range.slice(), y: fl.yaxis.range.slice()});
    });
  }
  function withView(figure) {
    const layout = figure && figure.layout, rev = layout && layout.uirevision;
    const view = typeof rev === 'string' ? load(rev) : null;
    if (!view) return figure;
    return {...figure, layout: {...layout,
      xaxis: {...(layout.xaxis || {}), range: view.x, autorange: false},
      yaxis: {...(layout.yaxis || {}), range: view.y, autorange: false}}};
  }
  function install(P) {
    const react = P.react;
    P.react = function (gd, figure, ...rest) {
      const shown = (figure && figure.layout && !Array.isArray(figure)) ? withView(figure) : figure;
      const done = react.call(this, gd, shown, ...rest);
      Promise.resolve(done).then(() => remember(gd)).catch(() => {});
      return done;
    };
    // plots drawn before this script ran (e.g. right after a reload)
    for (const gd of document.querySelectorAll('.js-plotly-plot')) {
      const rev = gd._fullLayout && gd._fullLayout.uirevision, view = typeof rev === 'string' ? load(rev) : null;
      if (view) P.relayout(gd, {'xaxis.range': view.x, 'yaxis.range': view.y});
      remember(gd);
    }
  }
  const wait = setInterval(() => {
    if (window.Plotly && window.Plotly.react) { clearInterval(wait); install(window.Plotly); }
  }, 50);
})();
"""


def keep_plot_views() -> None:
    """Install the view keeper in the page (a script without a box; a no-op once installed)."""
    st.html(f"<script>{_PAGE_SCRIPT}</script>", unsafe_allow_javascript=True)
