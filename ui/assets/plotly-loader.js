// Load plotly.js early, in parallel with Dash's own start-up, and only the part the dashboard uses.
//
// dcc.Graph draws with `window.Plotly` when it exists, and otherwise injects Dash's full
// plotly.min.js (4.8 MB, over a second of parsing in a fresh browser) once the layout has arrived.
// The charts here need only cartesian traces (bar, scatter, heatmap), so the page loads the
// 1.5 MB cartesian bundle (vendor/, MIT, see its LICENSE) with an async script that the browser
// compiles off the main thread while the renderer fetches the layout and the first views.
// Until it has run, `window.Plotly` is a promise of it: dcc.Graph waits on
// `Promise.resolve(window.Plotly || load())`, so it waits for this bundle instead of fetching
// the full one; the bundle's last statement replaces the promise with the library itself.
(function () {
  if (window.Plotly) { return; }
  var script = document.currentScript;
  var base = script && script.src ? script.src.replace(/plotly-loader\.js.*$/, '') : '/assets/';
  function load(src, onload, onerror) {
    var s = document.createElement('script');
    s.src = src;
    s.async = true;
    s.onload = onload;
    s.onerror = onerror;
    document.head.appendChild(s);
  }
  window.Plotly = new Promise(function (resolve, reject) {
    var done = function () { resolve(window.Plotly); };
    // Should the vendored bundle be missing, fall back to the full one Dash serves.
    load(base + 'vendor/plotly-cartesian.min.js', done, function () {
      load(window._dashPlotlyJSURL || '/_dash-component-suites/plotly/package_data/plotly.min.js', done, reject);
    });
  });
})();
