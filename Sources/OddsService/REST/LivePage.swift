import Hummingbird

/// `GET /` — a small self-contained page that follows events over `/ws/odds` and shows prices
/// changing live (the browser side of `make demo`). It uses only the public API: the event list
/// from REST, then subscribe / snapshot / odds frames, and a resuming subscribe (`versions`)
/// after a reconnect. `?events=A,B` picks events; otherwise the first eight listed. A market
/// whose feed is down (a `status` frame, or a snapshot's `status`) shows
/// "SUSPENDED (feed down since HH:MM:SS)" until a `status` frame reopens its event.
enum LivePage {
    static let path = "/"

    static func addRoutes(to router: Router<some RequestContext>) {
        router.get(RouterPath(stringLiteral: path)) { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
        }
    }

    static let html = #"""
    <!doctype html>
    <html lang="en"><head><meta charset="utf-8"><title>Live odds</title>
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <style>
    body{font:14px/1.4 system-ui,sans-serif;margin:24px;background:#0f1419;color:#e6e6e6}
    h1{font-size:18px;margin:0 0 4px} #status{color:#9aa5b1;margin-bottom:16px}
    table{border-collapse:collapse;min-width:760px} th,td{padding:6px 10px;text-align:left;border-bottom:1px solid #26313b}
    th{color:#9aa5b1;font-weight:600} td.p{font-variant-numeric:tabular-nums;transition:background .8s}
    .up{background:#1d4d2b}.down{background:#5a1f24}.susp{color:#f0b429} .v{color:#9aa5b1}
    tr.feeddown td:nth-child(4){opacity:.45;text-decoration:line-through}
    </style></head><body>
    <h1>Live odds</h1><div id="status">connecting…</div>
    <table><thead><tr><th>Event</th><th>Match</th><th>Market</th><th>Prices</th><th>Version</th><th>Latency</th></tr></thead>
    <tbody id="rows"></tbody></table>
    <script>
    const order = {home:0,draw:1,away:2,over:3,under:4};
    const rows = new Map();      // "event/market" -> {u, tr}
    const platform = new Map();  // event -> {effectiveStatus, reason, since} (status frames)
    let frames = 0, events = [];
    const status = t => document.getElementById('status').textContent = t + ' — frames ' + frames;
    const hms = t => new Date(Date.parse(t)).toISOString().slice(11, 19);
    function statusCell(u) {
      const p = platform.get(u.event_id);
      if (p && p.effectiveStatus === 'suspended')
        return ' <span class="susp">SUSPENDED (' + (p.reason === 'feed_down' ? 'feed down' : p.reason) + ' since ' + hms(p.since) + ' UTC)</span>';
      return u.status === 'suspended' ? ' <span class="susp">suspended</span>' : '';
    }
    function setPlatform(eventId, s) {
      if (s) platform.set(eventId, s); else platform.delete(eventId);
      for (const {u, tr} of rows.values()) if (u.event_id === eventId) {
        tr.children[2].innerHTML = u.market + statusCell(u);
        tr.classList.toggle('feeddown', !!s && s.effectiveStatus === 'suspended');
      }
    }
    function render(u, isDelta) {
      const key = u.event_id + '/' + u.market, known = rows.get(key);
      if (known && known.u.version >= u.version) return;   // never go back in versions
      let tr = known ? known.tr : document.createElement('tr');
      if (!known) {
        tr.innerHTML = '<td></td><td></td><td></td><td></td><td class="v"></td><td class="v"></td>';
        const body = document.getElementById('rows');
        const after = [...body.children].find(r => r.dataset.key > key);
        tr.dataset.key = key; body.insertBefore(tr, after || null);
      }
      const sel = Object.keys(u.odds).sort((a,b) => (order[a] ?? 9) - (order[b] ?? 9) || a.localeCompare(b));
      const prices = sel.map(s => {
        const old = known && known.u.odds[s], cls = old === undefined ? '' : u.odds[s] > old ? 'up' : u.odds[s] < old ? 'down' : '';
        return '<span class="' + cls + '">' + s + ' ' + u.odds[s].toFixed(2) + '</span>';
      }).join(' &nbsp; ');
      const c = tr.children;
      c[0].textContent = u.event_id; c[1].textContent = u.home_team + ' v ' + u.away_team;
      c[2].innerHTML = u.market + statusCell(u);
      const p = platform.get(u.event_id);
      tr.classList.toggle('feeddown', !!p && p.effectiveStatus === 'suspended');
      c[3].innerHTML = prices; c[4].textContent = u.version;
      if (isDelta) c[5].textContent = (Date.now() - Date.parse(u.updated_at)) + ' ms';
      rows.set(key, {u, tr});
    }
    function versions(eventId) {
      const v = {};
      for (const {u} of rows.values()) if (u.event_id === eventId) v[u.market] = u.version;
      return v;
    }
    function connect() {
      const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws/odds');
      ws.onopen = () => {
        for (const e of events) ws.send(JSON.stringify({type: 'subscribe', eventId: e, versions: versions(e)}));
        status('live: ' + events.join(', '));
      };
      ws.onmessage = m => {
        frames++;
        const f = JSON.parse(m.data);
        if (f.type === 'snapshot') {
          // A snapshot carries the platform status only while the feed is down.
          setPlatform(f.eventId, f.status || null);
          f.markets.forEach(u => render(u, false));
        }
        else if (f.type === 'odds') render(f.payload, true);
        else if (f.type === 'status') setPlatform(f.eventId, f);
        else if (f.type === 'error') status('error ' + f.code + ': ' + f.message);
      };
      ws.onclose = e => { status('disconnected (' + e.code + '), reconnecting'); setTimeout(connect, 1000); };
    }
    async function start() {
      const wanted = new URLSearchParams(location.search).get('events');
      if (wanted) events = wanted.split(',').filter(Boolean);
      while (!events.length) {
        try {
          const r = await fetch('/v1/events?limit=8');
          if (r.ok) events = (await r.json()).events.map(e => e.eventId).slice(0, 8);
        } catch (e) {}
        if (!events.length) { status('waiting for events'); await new Promise(r => setTimeout(r, 1000)); }
      }
      connect();
    }
    start();
    </script></body></html>
    """#
}
