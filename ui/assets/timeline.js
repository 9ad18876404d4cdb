// The dashboard's timeline: a canvas that draws only the rows on screen.
//
// The server (ui/api.py) answers three GETs: the rows of a trace (labels, heights, groups), the
// view of a time window for a range of rows (bars, per-pixel busy/stall bins, counters, search
// marks) and the next/previous search match.  A zoom redraws the old data at once, scaled, and
// asks for the new window; a request still in flight for an older window is aborted.  Times are
// nanoseconds from the trace's start.  The view (trace, window, selection, collapsed groups,
// search) is written to the URL's hash, and to the hidden Dash store "view-state" that the
// server-side panels (details, range statistics, longest slices, roofline) listen to.
//
// Keys and mouse, as in Perfetto: W/S zoom in/out, A/D pan, Ctrl+wheel zooms at the pointer,
// wheel scrolls the rows, Shift+wheel pans, drag pans, Shift+drag selects a range, click selects
// a slice, click a group's label folds or unfolds it.
(function () {
  'use strict';
  const TL = window.accelTimeline = window.accelTimeline || {};
  const PALETTE = ['#4C78A8', '#72B7B2', '#54A24B', '#EECA3B', '#B279A2', '#FF9DA6', '#9D755D', '#BAB0AC', '#F58518'];
  const STALL = '#E45756', AXIS_PX = 26, GUTTER = 190, PAD_R = 10, MAX_HEIGHT = 560, MIN_HEIGHT = 160;
  let HEIGHT = MAX_HEIGHT;  // the canvas shrinks to the rows when they are fewer than fill it
  const st = {
    key: null, meta: null, t0: 0, t1: 1, collapsed: new Set(), sel: null, q: '', re: false, range: null,
    data: null, scroll: 0, seq: 0, drawnSeq: 0, pending: null, abort: null, hover: null, rowTop: [], total: 0,
    hash: null, stats: {requests: 0, roundTrips: []}, eventAt: null, match: null,
  };
  TL.state = st;

  // ---------------------------------------------------------------- numbers
  function unitFor(ns) {
    const a = Math.abs(ns);
    if (a >= 1e9) { return [1e9, 's']; }
    if (a >= 1e6) { return [1e6, 'ms']; }
    if (a >= 1e3) { return [1e3, 'µs']; }
    return [1, 'ns'];
  }
  function fmtTime(ns, digits) {
    if (ns === null || ns === undefined || !isFinite(ns)) { return '–'; }
    const [s, u] = unitFor(ns);
    return (+(ns / s).toPrecision(digits || 4)).toString() + ' ' + u;
  }
  const UNITS = {bytes: 'B', byte: 'B', 'bytes/s': 'B/s', fraction: ''};
  function fmtSI(v, unit) {
    if (v === null || v === undefined || !isFinite(v)) { return '–'; }
    unit = unit in UNITS ? UNITS[unit] : unit;
    const ps = [[1e15, 'P'], [1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
    for (const [s, p] of ps) { if (Math.abs(v) >= s) { return (+(v / s).toPrecision(3)) + ' ' + p + (unit || ''); } }
    return (+v.toPrecision(3)) + (unit ? ' ' + unit : '');
  }
  TL.fmtTime = fmtTime;
  TL.fmtSI = fmtSI;
  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  // Tick positions and labels for [t0, t1) over px pixels: labels in one unit, chosen by the step.
  function ticks(t0, t1, px) {
    const step = niceStep((t1 - t0) / Math.max(px / 110, 1));
    // The unit follows the largest time shown, with the decimals the step needs: a 500 ns window
    // 1 ms into the run reads "1.0001 ms", not "1000100 ns".
    const [s, u] = unitFor(Math.max(Math.abs(t0), Math.abs(t1), step));
    const dec = Math.max(0, Math.ceil(-Math.log10(step / s) - 1e-9));
    const out = [];
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      out.push([t, (t / s).toFixed(Math.min(dec, 9)) + ' ' + u]);
    }
    return out;
  }
  TL.ticks = ticks;

  // ---------------------------------------------------------------- DOM
  function el(tag, attrs, parent) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) { if (k === 'text') { e.textContent = attrs[k]; } else { e.setAttribute(k, attrs[k]); } }
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function build(root) {
    root.textContent = '';
    const bar = el('div', {class: 'tl-toolbar'}, root);
    TL.search = el('input', {id: 'tl-search', type: 'search', placeholder: 'search slices by name…', size: 26}, bar);
    const lab = el('label', {class: 'tl-re', title: 'regular expression'}, bar);
    TL.regex = el('input', {id: 'tl-regex', type: 'checkbox'}, lab);
    lab.appendChild(document.createTextNode(' regex'));
    TL.prev = el('button', {id: 'tl-prev', title: 'previous match', text: '◀'}, bar);
    TL.next = el('button', {id: 'tl-next', title: 'next match', text: '▶'}, bar);
    TL.count = el('span', {id: 'tl-count', class: 'muted'}, bar);
    el('span', {class: 'tl-sep'}, bar);
    TL.collapseAll = el('button', {id: 'tl-collapse-all', text: 'collapse all'}, bar);
    TL.expandAll = el('button', {id: 'tl-expand-all', text: 'expand all'}, bar);
    TL.expandTo = el('select', {id: 'tl-expand-to', title: 'show one group (a core) unfolded, the others folded'}, bar);
    TL.clock = el('span', {id: 'tl-window', class: 'muted'}, bar);
    const area = el('div', {class: 'tl-area'}, root);
    TL.scroller = el('div', {class: 'tl-scroll', id: 'tl-scroll'}, area);
    TL.spacer = el('div', {class: 'tl-spacer'}, TL.scroller);
    TL.canvas = el('canvas', {id: 'tl-canvas'}, area);
    TL.tip = el('div', {class: 'tl-tip', id: 'tl-tip'}, area);
    TL.search.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); find(e.shiftKey ? -1 : 1); } });
    TL.search.addEventListener('input', () => { st.q = TL.search.value; st.match = null; TL.count.textContent = ''; schedule(0); });
    TL.regex.addEventListener('change', () => { st.re = TL.regex.checked; st.match = null; schedule(0); });
    TL.prev.addEventListener('click', () => find(-1));
    TL.next.addEventListener('click', () => find(1));
    TL.collapseAll.addEventListener('click', () => setCollapsed((st.meta ? st.meta.groups : []).map(g => g.track)));
    TL.expandAll.addEventListener('click', () => setCollapsed([]));
    TL.expandTo.addEventListener('change', () => expandTo(Number(TL.expandTo.value)));
    TL.scroller.addEventListener('scroll', () => { st.scroll = TL.scroller.scrollTop; draw(); schedule(40, true); });
    const c = TL.canvas;
    c.addEventListener('wheel', onWheel, {passive: false});
    c.addEventListener('mousedown', onDown);
    c.addEventListener('mousemove', onMove);
    c.addEventListener('mouseleave', () => { st.hover = null; TL.tip.style.display = 'none'; });
    window.addEventListener('mouseup', onUp);
    window.addEventListener('resize', () => { size(); draw(); schedule(60); });
    size();
  }
  function size() {
    const c = TL.canvas;
    const w = TL.scroller.clientWidth || 1000;
    const dpr = window.devicePixelRatio || 1;
    c.style.width = w + 'px';
    c.style.height = HEIGHT + 'px';
    c.width = Math.round(w * dpr);
    c.height = Math.round(HEIGHT * dpr);
    st.w = w;
  }
  function plotW() { return Math.max(st.w - GUTTER - PAD_R, 50); }
  function xOf(t) { return GUTTER + (t - st.t0) / (st.t1 - st.t0) * plotW(); }
  function tOf(x) { return st.t0 + (x - GUTTER) / plotW() * (st.t1 - st.t0); }

  // ---------------------------------------------------------------- server
  function qs(o) { return Object.keys(o).filter(k => o[k] !== '' && o[k] !== null).map(k => k + '=' + encodeURIComponent(o[k])).join('&'); }
  function collapsedParam() { return Array.from(st.collapsed).sort((a, b) => a - b).join(','); }
  function loadRows() {
    const key = st.key;
    return fetch('/api/rows/' + key + '?' + qs({c: collapsedParam()})).then(r => r.json()).then(m => {
      if (key !== st.key) { return; }
      st.meta = m;
      let y = 0;
      st.rowTop = m.rows.map(r => { const t = y; y += r.h; return t; });
      st.total = y;
      TL.spacer.style.height = (y + AXIS_PX) + 'px';
      HEIGHT = Math.max(MIN_HEIGHT, Math.min(MAX_HEIGHT, y + AXIS_PX + 2));
      TL.scroller.parentNode.style.height = HEIGHT + 'px';
      size();
      const opts = ['<option value="">expand to…</option>'];
      TL.expandTo.textContent = '';
      el('option', {value: '', text: 'expand to…'}, TL.expandTo);
      for (const g of m.groups) { el('option', {value: String(g.track), text: g.path}, TL.expandTo); }
      void opts;
    });
  }
  function visibleRows() {
    if (!st.meta) { return [0, 0]; }
    const top = st.scroll, bottom = st.scroll + HEIGHT - AXIS_PX;
    let a = 0, b = st.rowTop.length;
    while (a < b) { const m = (a + b) >> 1; if (st.rowTop[m] + st.meta.rows[m].h <= top) { a = m + 1; } else { b = m; } }
    let e = a;
    while (e < st.rowTop.length && st.rowTop[e] < bottom) { e++; }
    return [a, e];
  }
  let timer = null;
  // Ask for the view of the current window and rows after ``ms`` (0: now).  ``rowsOnly``: a
  // scroll that stays inside the rows already fetched needs nothing.
  function schedule(ms, rowsOnly) {
    if (rowsOnly && st.data) {
      const [a, b] = visibleRows();
      if (a >= st.data.r0 && b <= st.data.r1) { return; }
    }
    clearTimeout(timer);
    timer = setTimeout(fetchView, ms || 0);
  }
  function fetchView() {
    if (st.key === null || !st.meta) { return; }
    const [a, b] = visibleRows();
    const n = b - a;
    const r0 = Math.max(0, a - Math.ceil(n / 2)), r1 = Math.min(st.meta.rows.length, b + Math.ceil(n / 2));
    const seq = ++st.seq;
    if (st.abort) { st.abort.abort(); }
    const ctl = new AbortController();
    st.abort = ctl;
    const t0 = Math.floor(st.t0), t1 = Math.ceil(st.t1);
    const url = '/api/view/' + st.key + '?' + qs({t0: t0, t1: t1, w: Math.round(plotW()), r0: r0, r1: r1,
      c: collapsedParam(), q: st.q, re: st.re ? '1' : ''});
    st.stats.requests++;
    const began = st.eventAt || performance.now();
    st.eventAt = null;
    fetch(url, {signal: ctl.signal}).then(r => r.ok ? r.json() : r.text().then(t => { throw new Error(t); })).then(d => {
      if (seq !== st.seq) { return; }
      d.binsDecoded = d.bins.map(b => ({r: b.r, busy: decode(b.busy), stall: decode(b.stall)}));
      st.data = d;
      draw();
      st.drawnSeq = seq;
      if (!st.firstDrawAt) { st.firstDrawAt = performance.now(); }  // ms since navigation started
      st.stats.roundTrips.push(performance.now() - began);
      if (st.stats.roundTrips.length > 200) { st.stats.roundTrips.shift(); }
      if (d.error) { TL.count.textContent = d.error.slice(0, 120); TL.count.classList.add('error'); } else { TL.count.classList.remove('error'); }
    }).catch(e => {
      if (e.name === 'AbortError') { return; }
      if (st.q) { TL.count.textContent = String(e.message || e).slice(0, 120); TL.count.classList.add('error'); }
    });
  }
  function decode(b64) {
    const s = atob(b64);
    const a = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) { a[i] = s.charCodeAt(i); }
    return a;
  }
  function find(dir) {
    if (!st.q || st.key === null) { return; }
    const from = st.sel !== null && st.selTs !== undefined ? st.selTs : (dir > 0 ? st.t0 - 1 : st.t1);
    fetch('/api/search/' + st.key + '?' + qs({q: st.q, re: st.re ? '1' : '', from: Math.round(from), dir: dir}))
      .then(r => r.ok ? r.json() : r.text().then(t => { throw new Error(t); })).then(m => {
        TL.count.classList.remove('error');
        if (!m.count) { TL.count.textContent = 'no match'; return; }
        TL.count.textContent = (m.index + 1) + ' of ' + m.count;
        focusSlice(m.id, m.ts, m.dur, m.track);
      }).catch(e => { TL.count.textContent = String(e.message || e).slice(0, 120); TL.count.classList.add('error'); });
  }
  // Select slice ``id`` and show it: centred, the window widened or kept, its row scrolled into view.
  function focusSlice(id, ts, dur, track) {
    st.sel = id;
    st.selTs = ts;
    const span = st.t1 - st.t0;
    if (dur > span * 0.8 || ts + dur < st.t0 || ts > st.t1) {
      const w = Math.max(dur * 6, 2000);
      setWindow(ts + dur / 2 - w / 2, ts + dur / 2 + w / 2, true);
    } else {
      setWindow(ts + dur / 2 - span / 2, ts + dur / 2 + span / 2, true);
    }
    scrollToTrack(track);
    publish();
  }
  function scrollToTrack(track) {
    if (!st.meta || track === null || track === undefined) { return; }
    const i = st.meta.rows.findIndex(r => r.track === track);
    if (i < 0) { return; }
    const top = st.rowTop[i];
    if (top < st.scroll || top > st.scroll + HEIGHT - AXIS_PX - 40) {
      TL.scroller.scrollTop = Math.max(0, top - 60);
      st.scroll = TL.scroller.scrollTop;
    }
    st.hlTrack = track;
  }

  // ---------------------------------------------------------------- view changes
  function setWindow(a, b, now) {
    const span = st.meta ? st.meta.span : 1;
    let w = Math.max(b - a, 20);
    w = Math.min(w, span * 1.5 + 20);
    a = Math.max(Math.min(a, span), -span * 0.25);
    st.t0 = a;
    st.t1 = a + w;
    st.range = null;
    draw();
    schedule(now ? 0 : 25);
    publishSoon();
  }
  TL.zoomTo = function (a, b) { st.eventAt = performance.now(); setWindow(a, b, true); };
  function zoomAt(factor, x) {
    const t = tOf(x === undefined ? GUTTER + plotW() / 2 : x);
    st.eventAt = st.eventAt || performance.now();
    setWindow(t - (t - st.t0) * factor, t + (st.t1 - t) * factor);
  }
  function pan(frac) {
    const d = (st.t1 - st.t0) * frac;
    st.eventAt = st.eventAt || performance.now();
    setWindow(st.t0 + d, st.t1 + d);
  }
  function setCollapsed(list) {
    st.collapsed = new Set(list);
    st.data = null;
    loadRows().then(() => { draw(); schedule(0); publish(); });
  }
  function expandTo(track) {
    if (!st.meta || !isFinite(track)) { return; }
    // fold every group except those on the way to ``track`` and ``track`` itself.
    const keep = new Set();
    const path = st.meta.groups.find(g => g.track === track);
    if (!path) { return; }
    for (const g of st.meta.groups) { if (path.path === g.path || path.path.startsWith(g.path + ' / ')) { keep.add(g.track); } }
    st.collapsed = new Set(st.meta.groups.map(g => g.track).filter(t => !keep.has(t)));
    st.data = null;
    loadRows().then(() => { TL.scroller.scrollTop = 0; st.scroll = 0; scrollToTrack(track); draw(); schedule(0); publish(); });
  }
  let pubTimer = null;
  // The panels that follow the window (range statistics, roofline) cost the server seconds on a
  // wide window of millions of slices: they are told once the zooming pauses, not on every step,
  // so that they do not compete with the timeline's own requests.
  function publishSoon() { clearTimeout(pubTimer); pubTimer = setTimeout(publish, 500); }
  // The view to the URL and to the Dash store the server-side panels follow.
  function publish() {
    clearTimeout(pubTimer);
    if (st.key === null || !st.meta) { return; }
    const v = {key: st.key, t0: Math.floor(st.t0), t1: Math.ceil(st.t1), sel: st.sel, collapsed: Array.from(st.collapsed).sort((a, b) => a - b),
      range: st.range ? [Math.floor(st.range[0]), Math.ceil(st.range[1])] : null, q: st.q || null};
    const h = qs({trace: st.key, t0: v.t0, t1: v.t1, sel: st.sel === null ? '' : st.sel, c: v.collapsed.join(','), q: st.q});
    try { history.replaceState(null, '', '#' + h); } catch (e) { /* a sandboxed frame */ }
    const dc = window.dash_clientside;
    if (dc && dc.set_props) { dc.set_props('view-state', {data: v}); }
  }
  function parseHash() {
    const out = {};
    for (const kv of (window.location.hash || '').replace(/^#/, '').split('&')) {
      const i = kv.indexOf('=');
      if (i > 0) { out[kv.slice(0, i)] = decodeURIComponent(kv.slice(i + 1)); }
    }
    return out;
  }

  // ---------------------------------------------------------------- input
  function onWheel(e) {
    const r = TL.canvas.getBoundingClientRect();
    const x = e.clientX - r.left;
    if (e.ctrlKey || e.metaKey) {
      e.preventDefault();
      st.eventAt = performance.now();
      zoomAt(Math.exp(Math.max(-1, Math.min(1, e.deltaY / 300))), x);
    } else if (e.shiftKey) {
      e.preventDefault();
      st.eventAt = performance.now();
      pan((e.deltaY || e.deltaX) / 1000);
    } else {
      e.preventDefault();
      TL.scroller.scrollTop += e.deltaY;
    }
  }
  let drag = null;
  function onDown(e) {
    const r = TL.canvas.getBoundingClientRect();
    drag = {x: e.clientX - r.left, y: e.clientY - r.top, t0: st.t0, t1: st.t1, shift: e.shiftKey, moved: false};
  }
  function onMove(e) {
    const r = TL.canvas.getBoundingClientRect();
    const x = e.clientX - r.left, y = e.clientY - r.top;
    if (drag) {
      if (Math.abs(x - drag.x) > 3) { drag.moved = true; }
      if (drag.moved && drag.shift) {
        const a = tOf(Math.min(x, drag.x)), b = tOf(Math.max(x, drag.x));
        st.range = [a, b];
        draw();
      } else if (drag.moved) {
        const d = (x - drag.x) / plotW() * (drag.t1 - drag.t0);
        st.eventAt = st.eventAt || performance.now();
        st.t0 = drag.t0 - d;
        st.t1 = drag.t1 - d;
        draw();
        schedule(25);
      }
      return;
    }
    st.hover = hit(x, y);
    st.tipAt = [e.clientX - r.left, y];
    showTip(st.hover, st.tipAt[0], y);
    draw();
  }
  function onUp(e) {
    if (!drag) { return; }
    const d = drag;
    drag = null;
    const r = TL.canvas.getBoundingClientRect();
    const x = e.clientX - r.left, y = e.clientY - r.top;
    if (d.moved) {
      if (d.shift) { publish(); } else { setWindow(st.t0, st.t1, true); }
      return;
    }
    if (x < GUTTER) {
      const i = rowAt(y);
      if (i >= 0 && st.meta) {
        const row = st.meta.rows[i];
        if (row.kind === 'group' || row.kind === 'collapsed') {
          const c = new Set(st.collapsed);
          if (c.has(row.track)) { c.delete(row.track); } else { c.add(row.track); }
          setCollapsed(Array.from(c));
        }
      }
      return;
    }
    const h = hit(x, y);
    if (h && h.id !== undefined) {
      st.sel = h.id;
      st.selTs = h.x;
      draw();
      publish();
    }
  }
  document.addEventListener('keydown', (e) => {
    const t = e.target;
    if (!TL.canvas || (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable))) { return; }
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    const k = e.key.toLowerCase();
    const x = st.mouseX;
    if (k === 'w') { st.eventAt = performance.now(); zoomAt(0.8, x); } else if (k === 's') { st.eventAt = performance.now(); zoomAt(1.25, x); } else if (k === 'a') { st.eventAt = performance.now(); pan(-0.1); } else if (k === 'd') { st.eventAt = performance.now(); pan(0.1); } else { return; }
    e.preventDefault();
  });
  function rowAt(y) {
    if (!st.meta || y < AXIS_PX) { return -1; }
    const yy = y - AXIS_PX + st.scroll;
    let a = 0, b = st.rowTop.length;
    while (a < b) { const m = (a + b) >> 1; if (st.rowTop[m] + st.meta.rows[m].h <= yy) { a = m + 1; } else { b = m; } }
    return a < st.rowTop.length ? a : -1;
  }
  function barRect(i) {
    const d = st.data.bars, row = st.meta.rows[d.r[i]];
    const top = AXIS_PX + st.rowTop[d.r[i]] - st.scroll;
    const lanes = Math.max(row.lanes || 1, 1), lh = (row.h - 5) / lanes;
    const lane = Math.min(d.d[i], lanes - 1);
    const x0 = xOf(d.x[i]), x1 = xOf(d.x[i] + d.w[i]);
    return [Math.max(x0, GUTTER), top + 2 + lane * lh, Math.min(x1, st.w - PAD_R) - Math.max(x0, GUTTER), lh - 1];
  }
  // What is under the pointer: a bar (deepest first), a search mark, a counter sample or a bin.
  function hit(x, y) {
    st.mouseX = x;
    if (!st.data || !st.meta || x < GUTTER) { return null; }
    const i = rowAt(y);
    if (i < 0) { return null; }
    const d = st.data.bars;
    let best = null;
    for (let k = 0; k < d.id.length; k++) {
      if (d.r[k] !== i) { continue; }
      const [bx, by, bw, bh] = barRect(k);
      if (x >= bx - 1 && x <= bx + Math.max(bw, 2) + 1 && y >= by && y <= by + bh && (best === null || d.d[k] > d.d[best])) { best = k; }
    }
    if (best !== null) {
      return {row: i, id: d.id[best], name: st.data.names[d.n[best]], x: d.x[best], w: d.w[best],
        cat: (st.meta.cats[d.c[best]] || ''), stall: d.s[best]};
    }
    const m = st.data.marks;
    for (let k = 0; k < m.id.length; k++) {
      if (m.r[k] === i && Math.abs(xOf(m.x[k]) - x) <= 3) { return {row: i, id: m.id[k], name: st.q, x: m.x[k], mark: true}; }
    }
    const row = st.meta.rows[i];
    const t = tOf(x);
    if (row.kind === 'counter') {
      const c = st.data.counters.find(c => c.r === i);
      if (c) {
        let j = 0;
        while (j + 1 < c.x.length && c.x[j + 1] <= t) { j++; }
        return {row: i, counter: true, value: c.v[j], unit: row.unit, t: t};
      }
    }
    const b = (st.data.binsDecoded || []).find(b => b.r === i);
    if (b) {
      const k = Math.floor((t - st.data.t0) / (st.data.t1 - st.data.t0) * st.data.nbins);
      if (k >= 0 && k < b.busy.length && (b.busy[k] || b.stall[k])) {
        return {row: i, bin: true, busy: b.busy[k] / 255, stall: b.stall[k] / 255, t: t};
      }
    }
    return null;
  }
  // A slice's flops, bytes and arithmetic intensity ("–" where it has none) are asked for when it is
  // hovered, not sent with every view: a zoom's answer stays as small as it was.
  const metrics = new Map();
  function metricsOf(h) {
    const k = st.key + ':' + h.id;
    if (metrics.has(k)) { return metrics.get(k); }
    metrics.set(k, null);
    if (metrics.size > 2000) { metrics.delete(metrics.keys().next().value); }
    fetch('/api/slice/' + st.key + '?' + qs({id: h.id})).then(r => r.ok ? r.json() : null).then(m => {
      if (!m) { metrics.delete(k); return; }
      metrics.set(k, m);
      if (st.hover && st.hover.id === h.id && !st.hover.mark && st.tipAt) { showTip(st.hover, st.tipAt[0], st.tipAt[1]); }
    }).catch(() => metrics.delete(k));
    return null;
  }
  function showTip(h, x, y) {
    const tip = TL.tip;
    if (!h) { tip.style.display = 'none'; return; }
    const lines = [];
    if (h.counter) {
      lines.push(st.meta.rows[h.row].label + ': ' + fmtSI(h.value, h.unit || ''), 'at ' + fmtTime(h.t));
    } else if (h.bin) {
      lines.push(st.meta.rows[h.row].label + ' (merged slices)', 'busy ' + Math.round(h.busy * 100) + ' %, stalled ' + Math.round(h.stall * 100) + ' %');
    } else {
      lines.push(h.name || '(unnamed)');
      if (h.w !== undefined) { lines.push(fmtTime(h.w) + ' at ' + fmtTime(h.x)); } else { lines.push('at ' + fmtTime(h.x)); }
      if (h.cat) { lines.push((h.stall ? 'stall · ' : '') + h.cat); }
      const m = h.mark ? null : metricsOf(h);
      if (m) { lines.push('flops ' + m.flops, 'bytes ' + m.bytes, 'AI ' + m.ai); }
    }
    tip.textContent = '';
    lines.forEach((l, j) => { const e = el(j === 0 ? 'b' : 'div', {text: l}, tip); void e; });
    tip.style.display = 'block';
    tip.style.left = Math.min(x + 14, st.w - 260) + 'px';
    tip.style.top = (y + 14) + 'px';
  }

  // ---------------------------------------------------------------- drawing
  function catColor(c) { return c < 0 ? PALETTE[PALETTE.length - 1] : PALETTE[c % PALETTE.length]; }
  function draw() {
    const c = TL.canvas;
    if (!c || !st.meta) { return; }
    const g = c.getContext('2d');
    const dpr = window.devicePixelRatio || 1;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, st.w, HEIGHT);
    g.font = '11px system-ui, sans-serif';
    g.textBaseline = 'middle';
    const [a, b] = visibleRows();
    const rows = st.meta.rows;
    // row backgrounds and labels
    for (let i = a; i < b; i++) {
      const r = rows[i], top = AXIS_PX + st.rowTop[i] - st.scroll;
      g.fillStyle = r.track === st.hlTrack ? 'rgba(255,212,0,0.22)' : (r.kind === 'group' || r.kind === 'collapsed') ? '#eef1f5' : (i % 2 ? '#fafafa' : '#fff');
      g.fillRect(0, top, st.w, r.h);
      g.fillStyle = '#222';
      g.font = (r.kind === 'group' || r.kind === 'collapsed' ? 'bold ' : '') + '11px system-ui, sans-serif';
      const label = r.label;
      g.save();
      g.beginPath(); g.rect(0, top, GUTTER - 4, r.h); g.clip();
      g.fillText(label, 4 + 10 * r.level, top + Math.min(r.h / 2, 10));
      if (r.kind === 'counter') {
        g.fillStyle = '#666';
        g.font = '10px system-ui, sans-serif';
        g.fillText('max ' + fmtSI(r.max, r.unit || ''), 4 + 10 * r.level, top + r.h - 8);
      }
      g.restore();
      g.strokeStyle = '#e3e3e3';
      g.beginPath(); g.moveTo(0, top + r.h - 0.5); g.lineTo(st.w, top + r.h - 0.5); g.stroke();
    }
    g.save();
    g.beginPath(); g.rect(GUTTER, AXIS_PX, plotW(), HEIGHT - AXIS_PX); g.clip();
    const d = st.data;
    if (d) {
      const scale = plotW() / (st.t1 - st.t0);
      // merged slices: working share (blue) over stalled share (red), per pixel bin
      for (const bn of d.binsDecoded || []) {
        if (bn.r < a || bn.r >= b) { continue; }
        const r = rows[bn.r], top = AXIS_PX + st.rowTop[bn.r] - st.scroll, h = r.h - 3;
        const bw = (d.t1 - d.t0) / d.nbins;
        for (let k = 0; k < d.nbins; k++) {
          const sb = bn.stall[k] / 255, wb = bn.busy[k] / 255;
          if (!sb && !wb) { continue; }
          const x = GUTTER + (d.t0 + k * bw - st.t0) * scale, w = Math.max(bw * scale, 1);
          if (wb) { g.fillStyle = '#4C78A8'; g.fillRect(x, top + 1 + h * (1 - wb - sb), w, h * wb); }
          if (sb) { g.fillStyle = STALL; g.fillRect(x, top + 1 + h * (1 - sb), w, h * sb); }
        }
      }
      // counters: a step line and its area, scaled to the track's maximum
      for (const cn of d.counters) {
        if (cn.r < a || cn.r >= b) { continue; }
        const r = rows[cn.r], top = AXIS_PX + st.rowTop[cn.r] - st.scroll, h = r.h - 6, mx = r.max || 1;
        g.beginPath();
        g.moveTo(xOf(cn.x[0]), top + 3 + h);
        for (let k = 0; k < cn.x.length; k++) {
          const y = top + 3 + h * (1 - Math.max(0, Math.min(1, cn.v[k] / mx)));
          if (k) { g.lineTo(xOf(cn.x[k]), g._lastY); }
          g.lineTo(xOf(cn.x[k]), y);
          g._lastY = y;
        }
        g.lineTo(xOf(Math.max(cn.x[cn.x.length - 1], d.t1)), g._lastY);
        g.lineTo(xOf(Math.max(cn.x[cn.x.length - 1], d.t1)), top + 3 + h);
        g.closePath();
        g.fillStyle = 'rgba(46,125,50,0.3)'; g.fill();
        g.strokeStyle = '#2E7D32'; g.lineWidth = 1; g.stroke();
      }
      // bars, their names where they fit
      const bars = d.bars;
      st.drawnLabels = [];
      g.font = '10px system-ui, sans-serif';
      for (let k = 0; k < bars.id.length; k++) {
        if (bars.r[k] < a || bars.r[k] >= b) { continue; }
        const [x, y, w, h] = barRect(k);
        if (w <= 0 && x > st.w) { continue; }
        const matched = bars.m.length && bars.m[k];
        g.fillStyle = matched ? '#FFD400' : bars.s[k] ? STALL : catColor(bars.c[k]);
        g.fillRect(x, y, Math.max(w, matched ? 3 : 1), h);
        if (matched) { g.strokeStyle = '#000'; g.lineWidth = 1; g.strokeRect(x + 0.5, y + 0.5, Math.max(w, 3) - 1, h - 1); }
        if (bars.id[k] === st.sel) { g.strokeStyle = '#000'; g.lineWidth = 2; g.strokeRect(x, y, Math.max(w, 2), h); }
        if (w > 28 && h >= 10) {
          const name = d.names[bars.n[k]];
          const fit = Math.floor((w - 6) / 5.6);
          if (fit >= 3) {
            g.fillStyle = matched ? '#000' : '#fff';
            const text = name.length > fit ? name.slice(0, fit - 1) + '…' : name;
            g.fillText(text, x + 3, y + h / 2);
            if (st.drawnLabels.length < 500) { st.drawnLabels.push(text); }
          }
        }
      }
      // search matches too narrow to be bars: 3 px marks
      const m = d.marks;
      g.fillStyle = '#FFD400'; g.strokeStyle = '#000'; g.lineWidth = 1;
      for (let k = 0; k < m.id.length; k++) {
        if (m.r[k] < a || m.r[k] >= b) { continue; }
        const r = rows[m.r[k]], top = AXIS_PX + st.rowTop[m.r[k]] - st.scroll, x = xOf(m.x[k]);
        g.fillRect(x - 1, top + 2, 3, r.h - 5);
        g.strokeRect(x - 1.5, top + 1.5, 4, r.h - 4);
      }
    }
    if (st.range) {
      const x0 = xOf(st.range[0]), x1 = xOf(st.range[1]);
      g.fillStyle = 'rgba(30,100,200,0.15)'; g.fillRect(x0, AXIS_PX, x1 - x0, HEIGHT);
      g.strokeStyle = '#1e64c8'; g.strokeRect(x0, AXIS_PX, x1 - x0, HEIGHT);
    }
    g.restore();
    // the time axis, fixed on top
    g.fillStyle = '#fff'; g.fillRect(0, 0, st.w, AXIS_PX);
    g.strokeStyle = '#bbb'; g.beginPath(); g.moveTo(0, AXIS_PX - 0.5); g.lineTo(st.w, AXIS_PX - 0.5); g.stroke();
    g.fillStyle = '#333'; g.font = '11px system-ui, sans-serif';
    g.fillText('time from start', 4, AXIS_PX / 2);
    const tk = ticks(st.t0, st.t1, plotW());
    st.tickLabels = tk.map(t => t[1]);
    for (const [t, label] of tk) {
      const x = xOf(t);
      if (x < GUTTER - 1) { continue; }
      g.strokeStyle = '#999'; g.beginPath(); g.moveTo(x + 0.5, AXIS_PX - 6); g.lineTo(x + 0.5, AXIS_PX); g.stroke();
      g.strokeStyle = 'rgba(0,0,0,0.06)'; g.beginPath(); g.moveTo(x + 0.5, AXIS_PX); g.lineTo(x + 0.5, HEIGHT); g.stroke();
      g.fillText(label, x + 3, AXIS_PX / 2 - 2);
    }
    TL.clock.textContent = 'window ' + fmtTime(st.t1 - st.t0) + ' from ' + fmtTime(st.t0);
  }

  // ---------------------------------------------------------------- entry points
  // Show trace ``key`` (the Dash store "trace-key" changed); a hash naming it restores its view.
  TL.open = function (key) {
    const root = document.getElementById('tl');
    if (!root) { setTimeout(() => TL.open(key), 30); return; }
    if (!TL.canvas || !root.contains(TL.canvas)) { build(root); }
    // The hash is read once, when the page opens; a hash naming another trace than the page's
    // first one asks Dash to open that trace and waits (in st.hash) until it is the one opened.
    const first = !st.opened;
    st.opened = true;
    const h = st.hash || (first ? parseHash() : {});
    const mine = h.trace !== undefined && String(h.trace) === String(key);
    if (mine) {
      st.hash = null;
    } else if (first && h.trace !== undefined) {
      st.hash = h;
      const dc = window.dash_clientside;
      if (dc && dc.set_props) { dc.set_props('trace-select', {value: 'key:' + h.trace}); }
    }
    st.key = key;
    st.data = null;
    st.sel = mine && h.sel ? Number(h.sel) : null;
    st.q = mine && h.q ? h.q : '';
    TL.search.value = st.q;
    st.collapsed = new Set(mine && h.c ? h.c.split(',').filter(x => x).map(Number) : []);
    st.range = null;
    st.hlTrack = null;
    TL.scroller.scrollTop = 0;
    st.scroll = 0;
    loadRows().then(() => {
      if (st.key !== key || !st.meta) { return; }  // another trace was opened meanwhile
      st.t0 = 0;
      st.t1 = Math.max(st.meta.span, 1);
      if (mine && h.t0 !== undefined && h.t1 !== undefined && isFinite(+h.t0) && isFinite(+h.t1) && +h.t1 > +h.t0) {
        st.t0 = +h.t0; st.t1 = +h.t1;
      }
      size();
      draw();
      st.eventAt = performance.now();
      fetchView();
      publish();
    });
  };
  // A server-side panel asked to show something: {t0, t1} a window, {sel, ts, dur, track} a slice, {track} a row.
  TL.navigate = function (nav) {
    if (!nav || !st.meta || (nav.key !== undefined && nav.key !== st.key)) { return; }
    st.eventAt = performance.now();
    if (nav.sel !== undefined && nav.sel !== null) {
      focusSlice(nav.sel, nav.ts, nav.dur, nav.track);
      if (nav.t0 !== undefined) { setWindow(nav.t0, nav.t1, true); }
      return;
    }
    if (nav.track !== undefined && nav.track !== null) { scrollToTrack(nav.track); }
    if (nav.t0 !== undefined) { setWindow(nav.t0, nav.t1, true); }
    publish();
  };
  TL.info = function () {
    const d = st.data;
    const [a, b] = visibleRows();
    return {key: st.key, t0: st.t0, t1: st.t1, sel: st.sel, q: st.q, collapsed: Array.from(st.collapsed).sort((x, y) => x - y),
      rows: st.meta ? st.meta.rows.length : 0, shownRows: [a, b], fetchedRows: d ? [d.r0, d.r1] : null,
      bars: d ? d.bars.id.length : 0, visible: d ? d.visible : 0, binned: d ? d.binned : 0, marks: d ? d.marks.id.length : 0,
      drawnSeq: st.drawnSeq, seq: st.seq, dataKey: d ? d.key : null, labels: (st.drawnLabels || []).slice(0, 500), range: st.range, ticks: st.tickLabels || [], hlTrack: st.hlTrack,
      roundTrips: st.stats.roundTrips.slice(-50), canvasH: TL.canvas ? TL.canvas.height : 0};
  };
  TL.hit = function (x, y) { return hit(x, y); };
  TL.barRect = function (id) {
    const d = st.data;
    if (!d) { return null; }
    const k = d.bars.id.indexOf(id);
    return k < 0 ? null : barRect(k);
  };
  TL.selectRange = function (a, b) { st.range = [a, b]; draw(); publish(); };
})();
