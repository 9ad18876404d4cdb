// Open the current trace in the Perfetto UI at the dashboard's time window.
// Offline build served by this server: Perfetto fetches the trace from 127.0.0.1 itself (?url=).
// Otherwise ui.perfetto.dev: Perfetto's postMessage protocol (PING until PONG, then the buffer,
// then a scroll to the window in seconds).
window.accelProfiler = window.accelProfiler || {};
window.accelProfiler.openPerfetto = function (info) {
  if (!info) { return; }
  const traceUrl = window.location.origin + info.trace;
  if (info.offline) {
    const url = window.location.origin + '/perfetto/index.html#!/viewer?url=' + encodeURIComponent(traceUrl) +
      '&visStart=' + info.vis_start + '&visEnd=' + info.vis_end;
    window.open(url, '_blank');
    return;
  }
  const origin = 'https://ui.perfetto.dev';
  const win = window.open(origin);
  if (!win) { return; }
  fetch(traceUrl).then(r => r.arrayBuffer()).then(buffer => {
    let ponged = false;
    const onMessage = (evt) => {
      if (evt.origin !== origin || evt.data !== 'PONG' || ponged) { return; }
      ponged = true;
      window.removeEventListener('message', onMessage);
      win.postMessage({perfetto: {buffer: buffer, title: info.title, url: window.location.href, keepApiOpen: true}}, origin);
      setTimeout(() => win.postMessage({perfetto: {timeStart: info.vis_start / 1e9, timeEnd: info.vis_end / 1e9}}, origin), 3000);
    };
    window.addEventListener('message', onMessage);
    const ping = setInterval(() => { if (ponged) { clearInterval(ping); } else { win.postMessage('PING', origin); } }, 100);
    setTimeout(() => clearInterval(ping), 60000);
  });
};
