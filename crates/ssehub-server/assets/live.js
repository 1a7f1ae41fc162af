// ssehub's live view: the hub's figures as they change, drawn as small SVG
// charts of the last minute. Shared by the demo page at "/" (inlined) and
// the debugger at /.well-known/mercure/debug/ (as live.js, under a strict
// Content-Security-Policy: no inline style attributes, no eval).
//
// It mounts into the element with [data-live-stats], whose value is the URL
// of the hub's stats stream (/stats/live): an event stream of `stats`
// events, one a second, each {timeMs, connections, subscriptions, published,
// updates, delivered, dropped, slowDisconnects, latency: {count, p50Ms,
// p99Ms}, interval: null | {seconds, publishedPerSec, updatesPerSec,
// deliveredPerSec, latency: {count, p50Ms, p99Ms}}}.
//
// Stable hooks for tests (each also has data-testid = its id):
//   #live-status          data-state: connecting | open | reconnecting | error
//   #live-connections, #live-subscriptions, #live-updates-per-sec,
//   #live-delivered-per-sec, #live-latency-p50, #live-latency-p99,
//   #live-published, #live-delivered, #live-dropped
//                         <output> elements; data-value is the figure as a
//                         number, "" while unknown (latency with no write
//                         in the last second)
//   [data-testid=live-chart] one <svg> per tile, data-points = samples drawn
'use strict';
(() => {
  const root = document.querySelector('[data-live-stats]');
  if (!root) return;
  const SVG = 'http://www.w3.org/2000/svg';
  const POINTS = 60;
  const W = 120;
  const H = 36;

  const ms = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  const count = (v) => Math.round(v).toLocaleString('en');
  const rate = (v) => (v >= 100 ? count(v) : v.toFixed(1));

  // Tiles: one chart each; the latency tile draws p50 and p99.
  const tiles = [
    { id: 'connections', label: 'Connections', hint: 'open subscriber streams',
      series: [{ id: 'connections', get: (s) => s.connections, format: count }] },
    { id: 'subscriptions', label: 'Subscriptions', hint: 'topic matchers over all streams',
      series: [{ id: 'subscriptions', get: (s) => s.subscriptions, format: count }] },
    { id: 'updates', label: 'Updates / s', hint: 'updates fanned out, last second',
      series: [{ id: 'updates-per-sec', get: (s) => s.interval?.updatesPerSec ?? null, format: rate }] },
    { id: 'deliveries', label: 'Deliveries / s', hint: 'updates written to subscribers, last second',
      series: [{ id: 'delivered-per-sec', get: (s) => s.interval?.deliveredPerSec ?? null, format: rate }] },
    { id: 'latency', label: 'Publish → delivery', hint: 'p50 · p99 ms, last second', unit: 'ms',
      series: [
        { id: 'latency-p50', get: (s) => s.interval?.latency.p50Ms ?? null, format: ms, prefix: 'p50 ' },
        { id: 'latency-p99', get: (s) => s.interval?.latency.p99Ms ?? null, format: ms, prefix: 'p99 ' },
      ] },
  ];

  function el(tag, attrs = {}, text) {
    const node = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function output(id) {
    return el('output', { id: `live-${id}`, 'data-testid': `live-${id}`, 'data-value': '' }, '—');
  }
  function show(out, value, format) {
    const known = typeof value === 'number' && Number.isFinite(value);
    out.dataset.value = known ? String(value) : '';
    out.textContent = known ? format(value) : '—';
  }

  // ---- markup
  const head = el('div', { class: 'live-head' });
  const title = el('h2', { id: 'live-title' }, 'Live');
  const status = el('span', { id: 'live-status', 'data-testid': 'live-status', class: 'badge', 'data-state': 'connecting', role: 'status' }, 'connecting…');
  title.append(' ', status);
  head.append(title, el('p', { class: 'hint' }, 'The hub’s own figures, one sample a second; charts show the last minute.'));
  const grid = el('div', { class: 'live-tiles' });
  for (const tile of tiles) {
    const box = el('figure', { class: 'live-tile', 'data-testid': `live-tile-${tile.id}`, title: tile.hint });
    const figures = el('div', { class: 'live-figures' });
    for (const series of tile.series) {
      series.out = output(series.id);
      const figure = el('span', { class: `live-figure live-${series.id}` });
      if (series.prefix) figure.append(el('span', { class: 'live-prefix' }, series.prefix));
      figure.append(series.out);
      figures.append(figure);
      series.values = [];
    }
    if (tile.unit) figures.append(el('span', { class: 'live-unit' }, tile.unit));
    tile.svg = el('svg:svg', { class: 'live-chart', 'data-testid': 'live-chart', viewBox: `0 0 ${W} ${H}`,
      preserveAspectRatio: 'none', role: 'img', 'aria-label': `${tile.label}, last minute`, 'data-points': '0' });
    tile.scale = el('span', { class: 'live-scale' }, '');
    box.append(el('figcaption', {}, tile.label), figures, tile.svg, tile.scale);
    grid.append(box);
  }
  const totals = el('p', { class: 'live-totals' });
  const total = (id, label) => {
    const out = output(id);
    totals.append(el('span', {}, `${label} `), out, ' ');
    return out;
  };
  const totalOut = {
    published: total('published', 'published'),
    delivered: total('delivered', '· delivered'),
    dropped: total('dropped', '· dropped'),
  };
  root.append(head, grid, totals);

  // ---- charts
  function path(values, max) {
    let d = '';
    let pen = false;
    values.forEach((v, i) => {
      if (v === null) {
        pen = false;
        return;
      }
      const x = ((i + POINTS - values.length) / (POINTS - 1)) * W;
      const y = H - 2 - (v / max) * (H - 4);
      d += `${pen ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`;
      pen = true;
    });
    return d;
  }
  function draw(tile) {
    const all = tile.series.flatMap((s) => s.values).filter((v) => v !== null);
    const max = Math.max(1e-9, ...all) * 1.1 || 1;
    tile.svg.replaceChildren();
    tile.svg.append(el('svg:line', { x1: 0, x2: W, y1: H - 2, y2: H - 2, class: 'live-axis' }));
    tile.series.forEach((series, i) => {
      const d = path(series.values, all.length ? max : 1);
      if (d) tile.svg.append(el('svg:path', { d, class: `live-line live-line-${i}`, 'vector-effect': 'non-scaling-stroke' }));
    });
    tile.svg.dataset.points = String(tile.series[0].values.length);
    const top = all.length ? Math.max(...all) : null;
    const format = tile.series[tile.series.length - 1].format;
    tile.scale.textContent = top === null ? '' : `max ${format(top)}${tile.unit ? ` ${tile.unit}` : ''} in the last minute`;
  }

  function sample(stats) {
    for (const tile of tiles) {
      for (const series of tile.series) {
        const value = series.get(stats);
        series.values.push(typeof value === 'number' ? value : null);
        if (series.values.length > POINTS) series.values.shift();
        show(series.out, value, series.format);
      }
      draw(tile);
    }
    show(totalOut.published, stats.published, count);
    show(totalOut.delivered, stats.delivered, count);
    show(totalOut.dropped, stats.dropped, count);
  }

  // ---- the stream
  const setStatus = (state, text) => {
    status.dataset.state = state;
    status.textContent = text;
  };
  let source = null;
  function connect() {
    source = new EventSource(new URL(root.dataset.liveStats, location.href));
    source.addEventListener('open', () => setStatus('open', 'live'));
    source.addEventListener('stats', (e) => {
      try {
        sample(JSON.parse(e.data));
      } catch (err) {
        console.warn('live view: bad sample', err);
      }
    });
    source.addEventListener('error', () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (not an event stream): try again later.
        setStatus('error', 'stats unavailable; retrying');
        source = null;
        setTimeout(connect, 5000);
      } else {
        setStatus('reconnecting', 'reconnecting…');
      }
    });
  }
  connect();
})();
