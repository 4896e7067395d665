"""Keeps a plotly map's zoom and pan when Streamlit redraws it (a click, a colour change).

Streamlit gives a chart a new identity whenever its figure changes, and the browser then
mounts a fresh plot: plotly's ``uirevision`` cannot keep the view across that
(streamlit/streamlit#5107). This widget installs a small script in the page (once per
tab) that remembers each figure's axis ranges under its ``uirevision`` in the tab's
``sessionStorage`` and hands them to every later draw of a figure with that revision.
A double-click (autorange) forgets them. A reload of the tab keeps them too.

The view also goes into the page's address as ``?view=x0,x1,y0,y1`` (written by the
script): a shared link opens at the same zoom in a new tab (the server reads it when the
page opens), and a
survey-sized map (:data:`explorer.figures.POINTS_MAX`) draws the points of the view:
Streamlit sends the address back only as the server last set it, so after a zoom or pan
of such a map the script writes the view into a hidden text box (:data:`VIEW_KEY`), which
reruns the map with the new view's points. The script also corrects a click's selection
event to the point nearest where the mouse went down, to the sub-pixel (plotly picks the
one nearest the mouse rounded to whole pixels; on the 50,790-source RGZ DR1 map that is
another source for most clicks).
"""

from __future__ import annotations

import numpy as np
import streamlit as st

VIEW_KEY = "map_view"  # the hidden box the script writes a density map's view into (x0,x1,y0,y1 or 'auto')
VIEW_PARAM = "view"

# Runs in the page itself (st.html with JavaScript); Plotly is the page's own (window.Plotly).
_PAGE_SCRIPT = r"""
(function () {
  if (window.__explorerViewKeeper) return;
  window.__explorerViewKeeper = true;
  const VIEW_PARAM = '__VIEW_PARAM__', VIEW_BOX = '.st-key-__VIEW_KEY__ input';
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
  const isDensityFigure = (figure) => !!(figure.layout && figure.layout.images && figure.layout.images.length);
  // The point nearest where the mouse went down, to the sub-pixel: pointer events carry
  // fractional positions, mouse events (and so plotly's own pick) whole pixels, and on a
  // dense map several points share a pixel. Among the points drawn (hover data, visible).
  function exactPick(gd, e) {
    const fl = gd._fullLayout, r = gd.getBoundingClientRect();
    gd.__exactPick = null;
    if (!fl || !fl.xaxis || !fl.yaxis || !fl._size || !gd._fullData) return;
    const px = e.clientX - r.left - fl._size.l, py = e.clientY - r.top - fl._size.t;
    const xa = fl.xaxis, ya = fl.yaxis, limit = fl.hoverdistance || 20;
    let best = null, bestD = limit;
    gd._fullData.forEach((tr, c) => {
      if (!tr.customdata || tr.visible !== true || tr.hoverinfo === 'skip' || !tr.x) return;
      for (let i = 0; i < tr.x.length; i++) {
        const d = Math.hypot(xa.l2p(tr.x[i]) - px, ya.l2p(tr.y[i]) - py);
        if (d < bestD) { bestD = d; best = {curve: c, index: i}; }
      }
    });
    gd.__exactPick = best && {...best, at: Date.now()};
  }
  // A click's selection event names that point (the server reads the event's customdata).
  function correctClick(gd, event) {
    const pick = gd.__exactPick, points = event && event.points;
    if (!pick || Date.now() - pick.at > 3000 || !points || points.length !== 1) return;
    if (event.range || event.lassoPoints) return;  // a box or lasso, not a click
    const tr = gd._fullData[pick.curve], p = points[0];
    if (!tr || !tr.customdata) return;
    const row = tr.customdata[pick.index];
    Object.assign(p, {curveNumber: pick.curve, pointNumber: pick.index, pointIndex: pick.index,
      x: tr.x[pick.index], y: tr.y[pick.index], customdata: Array.from(row)});
    if (tr.text) p.text = tr.text[pick.index];
  }
  const sendView = (view) => {  // a density map: the server draws the new view's points
    const box = document.querySelector(VIEW_BOX);
    if (!box) return;
    const text = view ? [...view.x, ...view.y].map(v => +v.toPrecision(6)).join(',') : 'auto';
    if (box.value === text) return;
    Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(box, text);
    box.dispatchEvent(new Event('input', {bubbles: true}));
    box.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', code: 'Enter', keyCode: 13, bubbles: true}));
  };
  function remember(gd) {
    if (gd.__explorerViewKept || !gd.on) return;
    gd.__explorerViewKept = true;
    gd.addEventListener('pointerdown', (e) => exactPick(gd, e), true);
    const ev = gd._ev;  // before Streamlit's own listener, which reads the event's points
    if (ev && ev.prependListener) ev.prependListener('plotly_selected', (event) => correctClick(gd, event));
    else gd.on('plotly_selected', (event) => correctClick(gd, event));
    gd.on('plotly_relayout', (change) => {
      const fl = gd._fullLayout, rev = fl && fl.uirevision;
      if (typeof rev !== 'string' || !fl.xaxis || !fl.yaxis) return;
      const auto = fl.xaxis.autorange && fl.yaxis.autorange;
      const view = auto ? null : {x: fl.xaxis.range.slice(), y: fl.yaxis.range.slice()};
      save(rev, view);
      if (rev.startsWith(MAP_REVISION)) toAddress(view);
      const moved = change && Object.keys(change).some(k => k.startsWith('xaxis.') || k.startsWith('yaxis.'));
      if (moved && isDensityMap(gd)) {
        clearTimeout(refreshTimer);
        refreshTimer = setTimeout(() => sendView(view), 350);
      }
    });
  }
  function withView(figure) {
    const layout = figure && figure.layout, rev = layout && layout.uirevision;
    if (typeof rev !== 'string') return figure;
    let view = load(rev);
    if (rev.startsWith(MAP_REVISION)) {  // only the map page's view goes into the address
      if (!view && fromAddress && !addressUsed) { view = fromAddress; save(rev, view); }
      if (view && isDensityFigure(figure)) setTimeout(() => sendView(view), 0);  // e.g. after a reload
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
      const rev = gd._fullLayout && gd._fullLayout.uirevision;
      if (typeof rev !== 'string') { remember(gd); continue; }
      let view = load(rev);
      if (rev.startsWith(MAP_REVISION)) {  // a shared link: the map was drawn before this script ran
        if (!view && fromAddress && !addressUsed) { view = fromAddress; save(rev, view); }
        addressUsed = true;
        if (view && isDensityMap(gd)) sendView(view);
      }
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
    script = _PAGE_SCRIPT.replace("__VIEW_PARAM__", VIEW_PARAM).replace("__VIEW_KEY__", VIEW_KEY)
    st.html(f"<script>{script}</script>", unsafe_allow_javascript=True)


def _parse_view(text: object) -> tuple[float, float, float, float] | None:
    try:
        values = [float(v) for v in str(text).split(",")] if text else []
    except ValueError:
        return None
    if len(values) != 4 or not all(np.isfinite(values)) or values[0] == values[1] or values[2] == values[3]:
        return None
    return values[0], values[1], values[2], values[3]


def view_input() -> None:
    """The (hidden) box the page's script writes the map's view into after a zoom or pan:
    Streamlit sends the address only as it last set it, so the view cannot come that way."""
    st.html(f"<style>.st-key-{VIEW_KEY}{{display:none}}</style>")
    st.text_input("map view", key=VIEW_KEY, label_visibility="collapsed")


def current_view() -> tuple[float, float, float, float] | None:
    """The map's view (x0, x1, y0, y1): as the script last reported it, else as the address
    had it when the page was opened (a shared link), else ``None`` (the whole map)."""
    reported = _parse_view(st.session_state.get(VIEW_KEY))
    if reported is not None or st.session_state.get(VIEW_KEY) == "auto":
        return reported
    return _parse_view(st.query_params.get(VIEW_PARAM))
