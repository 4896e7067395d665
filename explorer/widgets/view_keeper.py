"""Keeps a plotly map's zoom and pan when Streamlit redraws it (a click, a colour change).

Streamlit gives a chart a new identity whenever its figure changes, and the browser then
mounts a fresh plot: plotly's ``uirevision`` cannot keep the view across that
(streamlit/streamlit#5107). This widget installs a small script in the page (once per
tab) that remembers each figure's axis ranges under its ``uirevision`` in the tab's
``sessionStorage`` and hands them to every later draw of a figure with that revision.
A double-click (autorange) forgets them. A reload of the tab keeps them too.

The view also goes into the page's address as ``?view=x0,x1,y0,y1`` (written by the
script; Streamlit sends the address with every rerun, so the server reads it as
``st.query_params["view"]``): a shared link opens at the same zoom in a new tab, and a
survey-sized map (:data:`explorer.figures.POINTS_MAX`) draws the points of the view.
After a zoom or pan of such a map the script presses its "points in view" button
(:data:`REFRESH_KEY`), which reruns the map with the new view's points.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

REFRESH_KEY = "map_points_in_view"  # the button the script presses after a zoom of a density map
VIEW_PARAM = "view"
PICK_PARAM = "pick"  # where the last click went down: x, y (map units), pixels per unit in x and y

# Runs in the page itself (st.html with JavaScript); Plotly is the page's own (window.Plotly).
_PAGE_SCRIPT = r"""
(function () {
  if (window.__explorerViewKeeper) return;
  window.__explorerViewKeeper = true;
  const VIEW_PARAM = '__VIEW_PARAM__', PICK_PARAM = '__PICK_PARAM__', REFRESH = '.st-key-__REFRESH_KEY__ button';
  const MAP_REVISION = 'map:';  // the map page's uirevision: 'map:' and the space's key
  const PREFIX = 'explorer-view:';
  const load = (rev) => { try { return JSON.parse(sessionStorage.getItem(PREFIX + rev)); } catch (e) { return null; } };
  const save = (rev, view) => { try {
    if (view) sessionStorage.setItem(PREFIX + rev, JSON.stringify(view)); else sessionStorage.removeItem(PREFIX + rev);
  } catch (e) {} };
  // The address: ?view=x0,x1,y0,y1 (read once, by the first map drawn after the page loads).
  const fromAddress = (() => {
    const v = new URLSearchParams(location.search).get(VIEW_PARAM), n = v ? v.split(',').map(Number) : [];
    return n.length === 4 && n.every(Number.isFinite) ? {x: [n[0], n[1]], y: [n[2], n[3]]} : null;
  })();
  let addressUsed = false;
  const toAddress = (view) => {
    const url = new URL(location.href);
    const text = view ? [...view.x, ...view.y].map(v => +v.toPrecision(6)).join(',') : null;
    if (url.searchParams.get(VIEW_PARAM) === text) return;
    if (text) url.searchParams.set(VIEW_PARAM, text); else url.searchParams.delete(VIEW_PARAM);
    history.replaceState(history.state, '', url);
  };
  let refreshTimer = null;
  const isDensityMap = (gd) => !!(gd._fullLayout && gd._fullLayout.images && gd._fullLayout.images.length);
  // Where the mouse went down, in map units, with the axes' pixels per unit: ?pick=x,y,sx,sy.
  // Pointer events carry sub-pixel positions (mouse events are whole pixels), so the server
  // can pick the source nearest the mouse even where several share a pixel.
  function notePick(gd, e) {
    const fl = gd._fullLayout, r = gd.getBoundingClientRect();
    if (!fl || !fl.xaxis || !fl.yaxis || !fl._size) return;
    const xa = fl.xaxis, ya = fl.yaxis;
    const x = xa.p2l(e.clientX - r.left - fl._size.l), y = ya.p2l(e.clientY - r.top - fl._size.t);
    const sx = Math.abs(xa.l2p(1) - xa.l2p(0)), sy = Math.abs(ya.l2p(1) - ya.l2p(0));
    if (![x, y, sx, sy].every(Number.isFinite)) return;
    const url = new URL(location.href);
    url.searchParams.set(PICK_PARAM, [x, y, sx, sy].map(v => +v.toPrecision(9)).join(','));
    history.replaceState(history.state, '', url);
  }
  function remember(gd) {
    if (gd.__explorerViewKept || !gd.on) return;
    gd.__explorerViewKept = true;
    gd.addEventListener('pointerdown', (e) => notePick(gd, e), true);
    gd.on('plotly_relayout', (change) => {
      const fl = gd._fullLayout, rev = fl && fl.uirevision;
      if (typeof rev !== 'string' || !fl.xaxis || !fl.yaxis) return;
      const auto = fl.xaxis.autorange && fl.yaxis.autorange;
      const view = auto ? null : {x: fl.xaxis.range.slice(), y: fl.yaxis.range.slice()};
      save(rev, view);
      if (rev.startsWith(MAP_REVISION)) toAddress(view);
      const moved = change && Object.keys(change).some(k => k.startsWith('xaxis.') || k.startsWith('yaxis.'));
      if (moved && isDensityMap(gd)) {  // the server draws the new view's points
        clearTimeout(refreshTimer);
        refreshTimer = setTimeout(() => { const b = document.querySelector(REFRESH); if (b) b.click(); }, 350);
      }
    });
  }
  function withView(figure) {
    const layout = figure && figure.layout, rev = layout && layout.uirevision;
    if (typeof rev !== 'string') return figure;
    let view = load(rev);
    if (rev.startsWith(MAP_REVISION)) {  // only the map page's view goes into the address
      if (!view && fromAddress && !addressUsed) { view = fromAddress; save(rev, view); }
      addressUsed = true;
      toAddress(view);
    }
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
    script = _PAGE_SCRIPT.replace("__VIEW_PARAM__", VIEW_PARAM).replace("__REFRESH_KEY__", REFRESH_KEY)
    script = script.replace("__PICK_PARAM__", PICK_PARAM)
    st.html(f"<script>{script}</script>", unsafe_allow_javascript=True)


def _four_numbers(name: str) -> tuple[float, float, float, float] | None:
    text = st.query_params.get(name)
    try:
        values = [float(v) for v in str(text).split(",")] if text else []
    except ValueError:
        return None
    if len(values) != 4 or not all(np.isfinite(values)):
        return None
    return values[0], values[1], values[2], values[3]


def view_from_address() -> tuple[float, float, float, float] | None:
    """The map's view (x0, x1, y0, y1) as the page's address has it, or ``None`` (none, or not 4 numbers)."""
    view = _four_numbers(VIEW_PARAM)
    return None if view is None or view[0] == view[1] or view[2] == view[3] else view


def take_pick() -> tuple[float, float, float, float] | None:
    """Where the last click on a map went down (x, y, pixels per unit in x and y), removed from the address."""
    pick = _four_numbers(PICK_PARAM)
    if PICK_PARAM in st.query_params:
        del st.query_params[PICK_PARAM]
    return None if pick is None or pick[2] <= 0 or pick[3] <= 0 else pick
