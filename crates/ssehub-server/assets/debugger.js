// ssehub's debugger (debugger.html): the hub's facts from config.json and
// a viewer of the updates an anonymous subscriber receives. No token is
// ever read, minted or shown here.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const MAX_EVENTS = 200;
  let hub = new URL('/.well-known/mercure', location.href);
  let source = null;
  let seen = 0;

  const setState = (node, state, text) => {
    node.dataset.state = state;
    node.textContent = text;
  };
  const yesNo = (value) => (value ? 'on' : 'off');

  async function loadConfig() {
    try {
      const response = await fetch('config.json', { cache: 'no-store' });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const config = await response.json();
      if (typeof config.hub === 'string') hub = new URL(config.hub, location.href);
      $('fact-version').textContent = String(config.version);
      $('fact-mode').textContent = config.dev ? 'development' : 'production';
      $('fact-anonymous').textContent = yesNo(config.anonymous);
      $('fact-subscriptions').textContent = yesNo(config.subscriptions);
      $('facts').dataset.state = 'ok';
      if (!config.anonymous) {
        $('watch-hint').textContent = 'Anonymous subscribers are off on this hub: watching gets only what a token '
          + 'cookie the browser already holds for the hub grants. This page holds no token.';
      }
    } catch (err) {
      $('facts').dataset.state = 'error';
      console.warn('debugger: no configuration', err);
    }
    $('hub-url').textContent = hub.href;
  }

  function stop() {
    source?.close();
    source = null;
    setState($('watch-status'), 'closed', 'closed');
  }

  function show(e) {
    seen += 1;
    const item = document.createElement('li');
    item.dataset.testid = 'event';
    item.dataset.id = e.lastEventId;
    item.dataset.type = e.type;
    const meta = document.createElement('div');
    meta.className = 'meta';
    for (const [cls, text] of [['event-time', new Date().toLocaleTimeString()], ['event-id', e.lastEventId], ['event-type', e.type]]) {
      const span = document.createElement('span');
      span.className = cls;
      span.textContent = text;
      meta.append(span);
    }
    const data = document.createElement('pre');
    data.className = 'event-data';
    data.textContent = e.data;
    item.append(meta, data);
    $('watch-events').prepend(item);
    while ($('watch-events').children.length > MAX_EVENTS) $('watch-events').lastElementChild.remove();
    $('watch-count').textContent = String(seen);
    $('watch-count').dataset.state = 'open';
    $('watch-empty').hidden = true;
  }

  function watch(e) {
    e.preventDefault();
    stop();
    const topic = $('watch-topic').value.trim() || '*';
    const url = new URL(hub);
    url.searchParams.append($('watch-type').value === 'urlpattern' ? 'match_urlpattern' : 'match', topic);
    const status = $('watch-status');
    setState(status, 'connecting', 'connecting…');
    const es = new EventSource(url);
    source = es;
    es.addEventListener('open', () => setState(status, 'open', 'open'));
    es.addEventListener('message', show);
    es.addEventListener('error', () => {
      if (source !== es) return;
      if (es.readyState === EventSource.CLOSED) {
        setState(status, 'error', 'refused (anonymous subscribers may be off)');
        source = null;
      } else {
        setState(status, 'reconnecting', 'reconnecting…');
      }
    });
  }

  $('watch-form').addEventListener('submit', watch);
  $('watch-stop').addEventListener('click', stop);
  $('hub-url').textContent = hub.href;
  loadConfig();
})();
