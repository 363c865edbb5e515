// The dashboard: GET /metrics once a second (docs/METRICS.md) turned into
// live numbers, rates and a latency chart, plus the monitor's alerts, which
// the demo emits as "monitor.alert" events to room "ops".
'use strict';

(function () {
  const POLL_MS = 1000;
  const KEEP = 61;           // samples: 60 intervals on the chart
  const QUANTILE_WINDOW = 5; // scrapes: quantiles over the last ~5 s
  const TYPES = ['agent_started', 'agent_thinking', 'tool_executing', 'tool_completed',
    'agent_completed', 'agent_error', 'custom'];
  const UNITS = {
    run_stalled: 'ms quiet', tool_timeout: 'ms without result', unacked: 'events unacked',
    slow_consumer: 'bytes pending', half_open: 'ms without pong', loop_lag: 'ms late',
    auth_timeouts: 'timeouts', validation_rate: 'violations',
  };

  const params = new URLSearchParams(location.search);
  const token = params.get('token') || '';
  const $ = (id) => document.getElementById(id);

  const samples = []; // {t (ms), m (parsed), q: {p50, p90, p99} (seconds or null)}
  const state = { samples: 0, last: null, alerts: [], metricsError: null, events: [] };
  window.agentwsDashboard = state;

  const el = window.agentwsEl;

  function fmtNum(v) {
    if (v === undefined || v === null || Number.isNaN(v)) return '\u2013';
    if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(2) + ' M';
    if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(1) + ' k';
    if (Number.isInteger(v)) return String(v);
    return v < 10 ? v.toFixed(1) : String(Math.round(v));
  }

  function fmtSeconds(s) {
    if (s === null || s === undefined || Number.isNaN(s)) return '\u2013';
    if (s === 0) return '0';
    if (s < 1e-3) return (s * 1e6).toFixed(s < 1e-5 ? 1 : 0) + ' \u00B5s';
    if (s < 1) return (s * 1e3).toFixed(s < 1e-2 ? 2 : 1) + ' ms';
    return s.toFixed(2) + ' s';
  }

  function fmtBytes(b) {
    if (b === undefined) return '\u2013';
    if (b < 1024) return `${b} B`;
    if (b < 1048576) return `${(b / 1024).toFixed(1)} KiB`;
    return `${(b / 1048576).toFixed(1)} MiB`;
  }

  function set(id, text, value) {
    const e = $(id);
    e.textContent = text;
    if (value !== undefined) e.dataset.value = String(value);
  }

  // Per-second rate of counter |get(m)| between the last two samples.
  function rate(get) {
    if (samples.length < 2) return undefined;
    const a = samples[samples.length - 2];
    const b = samples[samples.length - 1];
    const va = get(a.m);
    const vb = get(b.m);
    if (va === undefined || vb === undefined) return undefined;
    const dt = (b.t - a.t) / 1000;
    return dt > 0 ? Math.max(0, vb - va) / dt : undefined;
  }

  function quantiles(m, before) {
    const bs = Prom.delta(Prom.buckets(m, 'agentws_emit_to_write_seconds'), before && Prom.buckets(before, 'agentws_emit_to_write_seconds'));
    return { p50: Prom.quantile(0.5, bs), p90: Prom.quantile(0.9, bs), p99: Prom.quantile(0.99, bs) };
  }

  function renderTiles(m) {
    const v = (name, match) => Prom.value(m, name, match);
    const emitted = (mm) => Prom.value(mm, 'agentws_events_emitted_total');
    const last = {
      connections: v('agentws_connections'),
      users: v('agentws_users'),
      rooms: v('agentws_rooms'),
      runsLive: v('agentws_runs_live'),
      runsStalled: v('agentws_runs_stalled'),
      loopLag: v('agentws_loop_lag_seconds'),
      loopLagMax: v('agentws_loop_lag_max_seconds'),
      eventsRate: rate(emitted),
      deliveredRate: rate((mm) => Prom.value(mm, 'agentws_events_delivered_total')),
      writtenRate: rate((mm) => Prom.value(mm, 'agentws_events_written_total')),
      queued: v('agentws_queued_bytes'),
      queuedMax: v('agentws_queued_bytes_max'),
      alertsActive: v('agentws_alerts_active'),
      byType: {},
    };
    set('stat-connections', fmtNum(last.connections), last.connections);
    set('sub-connections', `tcp ${fmtNum(v('agentws_tcp_connections'))} \u00B7 opened ${fmtNum(v('agentws_connections_opened_total'))}`);
    set('stat-users', fmtNum(last.users), last.users);
    set('stat-rooms', fmtNum(last.rooms), last.rooms);
    set('stat-events-rate', fmtNum(last.eventsRate), last.eventsRate);
    set('sub-events', `total ${fmtNum(emitted(m))}`);
    set('stat-delivered-rate', fmtNum(last.deliveredRate), last.deliveredRate);
    set('sub-delivered', `written ${fmtNum(last.writtenRate)}/s \u00B7 total ${fmtNum(v('agentws_events_delivered_total'))}`);
    set('stat-runs-live', fmtNum(last.runsLive), last.runsLive);
    set('sub-runs', `synthesized events ${fmtNum(v('agentws_events_synthesized_total'))}`);
    set('stat-runs-stalled', fmtNum(last.runsStalled), last.runsStalled);
    $('tile-stalled').dataset.alarm = String(last.runsStalled > 0);
    set('stat-loop-lag', fmtSeconds(last.loopLag), last.loopLag);
    set('sub-loop-lag', `max ${fmtSeconds(last.loopLagMax)}`);
    set('stat-queued', fmtBytes(last.queued), last.queued);
    set('sub-queued', `max ${fmtBytes(last.queuedMax)} \u00B7 1013 closes ${fmtNum(v('agentws_slow_consumer_closes_total'))}`);
    set('stat-alerts-active', fmtNum(last.alertsActive), last.alertsActive);
    $('tile-alerts').dataset.alarm = String(last.alertsActive > 0);
    const firing = Object.entries(Prom.byLabel(m, 'agentws_alerts_active', 'rule')).filter(([, n]) => n > 0).map(([r]) => r);
    set('sub-alerts', firing.length ? firing.join(', ') : `fired ${fmtNum(v('agentws_alerts_total'))}`);

    const info = Prom.byLabel(m, 'agentws_build_info', 'version');
    const version = Object.keys(info)[0];
    $('server-info').textContent = `libagentws ${version || '?'} \u00B7 up ${fmtNum(Math.round(v('agentws_uptime_seconds') || 0))} s` +
      ` \u00B7 HTTP requests ${fmtNum(v('agentws_http_requests_total'))} \u00B7 samples ${samples.length}`;
    return last;
  }

  function renderTypes(m, last) {
    const totals = Prom.byLabel(m, 'agentws_events_emitted_total', 'type');
    const types = TYPES.concat(Object.keys(totals).filter((t) => !TYPES.includes(t)));
    const rates = {};
    let max = 0;
    for (const t of types) {
      rates[t] = rate((mm) => Prom.value(mm, 'agentws_events_emitted_total', { type: t }));
      if (rates[t] > max) max = rates[t];
    }
    const body = $('events-by-type').tBodies[0];
    body.replaceChildren();
    for (const t of types) {
      if (totals[t] === undefined) continue;
      const r = rates[t];
      last.byType[t] = { rate: r, total: totals[t] };
      const bar = el('div', { class: 'bar' });
      bar.style.width = max > 0 && r > 0 ? `${(100 * r) / max}%` : '0';
      body.append(el('tr', { 'data-type': t, 'data-rate': r === undefined ? '' : r, 'data-total': totals[t] },
        el('td', { class: 'mono' }, t), el('td', { class: 'num rate' }, fmtNum(r)), el('td', {}, bar),
        el('td', { class: 'num total' }, fmtNum(totals[t]))));
    }
  }

  function niceCeil(x) {
    const p = Math.pow(10, Math.floor(Math.log10(x)));
    for (const k of [1, 2, 5, 10]) if (k * p >= x) return k * p;
    return 10 * p;
  }

  function renderChart() {
    const svg = $('latency-chart');
    const w = Math.max(300, svg.clientWidth || 600);
    const h = 200;
    const left = 58;
    const right = 8;
    const top = 8;
    const bottom = 18;
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    const series = ['p50', 'p90', 'p99'];
    let max = 0;
    for (const s of samples) for (const k of series) if (s.q[k] !== null && s.q[k] > max) max = s.q[k];
    const ymax = max > 0 ? niceCeil(max) : 1e-3;
    const x = (i) => left + ((w - left - right) * (i + KEEP - samples.length)) / (KEEP - 1);
    const y = (v) => top + (h - top - bottom) * (1 - v / ymax);
    const ns = 'http://www.w3.org/2000/svg';
    const node = (tag, attrs, text) => {
      const e = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
      if (text !== undefined) e.textContent = text;
      return e;
    };
    svg.replaceChildren();
    for (let g = 0; g <= 4; g++) {
      const v = (ymax * g) / 4;
      svg.append(node('line', { class: 'grid', x1: left, x2: w - right, y1: y(v), y2: y(v) }));
      svg.append(node('text', { x: left - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmtSeconds(v)));
    }
    svg.append(node('text', { x: left, y: h - 3 }, '60 s ago'));
    svg.append(node('text', { x: w - right, y: h - 3, 'text-anchor': 'end' }, 'now'));
    for (const k of series) {
      let d = '';
      let pen = false;
      let points = 0;
      samples.forEach((s, i) => {
        const v = s.q[k];
        if (v === null) {
          pen = false;
          return;
        }
        d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
        points++;
      });
      if (d) svg.append(node('path', { class: k, d, 'data-series': k, 'data-points': points }));
    }
  }

  function onSample(m) {
    const before = samples.length >= QUANTILE_WINDOW ? samples[samples.length - QUANTILE_WINDOW].m : samples.length ? samples[0].m : null;
    const s = { t: performance.now(), m, q: quantiles(m, before) };
    samples.push(s);
    while (samples.length > KEEP) samples.shift();
    const last = renderTiles(m);
    renderTypes(m, last);
    last.latency = s.q;
    for (const k of ['p50', 'p90', 'p99']) set(`lat-${k}`, fmtSeconds(s.q[k]), s.q[k] === null ? '' : s.q[k]);
    renderChart();
    state.samples++;
    state.last = last;
  }

  function metricsStatus(s, text) {
    const e = $('metrics-status');
    e.dataset.state = s;
    e.textContent = text;
  }

  async function poll() {
    try {
      const res = await fetch('/metrics', { cache: 'no-store', headers: token ? { Authorization: `Bearer ${token}` } : {} });
      if (!res.ok) {
        state.metricsError = res.status;
        metricsStatus('error', res.status === 401 ? '401: add ?token=' : `HTTP ${res.status}`);
      } else {
        onSample(Prom.parse(await res.text()));
        state.metricsError = null;
        metricsStatus('open', 'live');
      }
    } catch (e) {
      state.metricsError = String(e);
      metricsStatus('error', 'unreachable');
    }
    setTimeout(poll, POLL_MS);
  }

  // ------------------------------------------------------------- alerts

  function subject(d) {
    const parts = [];
    if (d.target) parts.push(`target ${d.target}`);
    if (d.run) parts.push(`run ${d.run}`);
    if (d.tool_call) parts.push(`tool call ${d.tool_call}`);
    if (d.conn) parts.push(`connection ${d.conn}`);
    return parts.join(' \u00B7 ');
  }

  function onAlert(ev) {
    const d = ev.data || {};
    const firing = d.firing === true;
    state.alerts.push(d);
    const when = new Date(typeof ev.ts === 'number' ? ev.ts : Date.now());
    const li = el('li', { class: 'alert', 'data-rule': d.rule, 'data-firing': String(firing), 'data-severity': d.severity, 'data-seq': ev.seq },
      el('span', { class: 'when' }, when.toLocaleTimeString()),
      el('span', { class: 'what' }, `${d.rule || '?'} `),
      el('span', { class: `badge ${firing ? (d.severity === 'critical' ? 'bad' : 'warn') : 'ok'}` }, firing ? 'FIRING' : 'cleared'),
      el('span', { class: 'badge' }, d.severity || '?'),
      el('div', { class: 'subject muted' }, subject(d)),
      el('div', { class: 'msg' }, d.message || '',
        typeof d.value === 'number' ? el('span', { class: 'muted' }, ` (${d.value} ${UNITS[d.rule] || ''}, threshold ${d.threshold})`) : null));
    $('alerts').prepend(li);
  }

  function wsStatus(s, detail) {
    const e = $('ws-status');
    e.dataset.state = s;
    e.textContent = s === 'open' ? 'live' : detail ? `${s}: ${detail}` : s;
  }

  const client = new window.AgentwsClient({
    user: params.get('user') || (params.get('ws_token') ? '' : 'dashboard'),
    token: params.get('ws_token') || '',
    rooms: [{ room: 'ops', replay: true }], // alerts fired before this page opened too
    onEvent: (ev) => {
      state.events.push(ev.type);
      if (ev.type === 'monitor.alert') onAlert(ev);
    },
    onControl: (msg) => {
      if (msg.type === 'error') wsStatus('error', `${msg.code}: ${msg.message || ''}`);
    },
    onStatus: wsStatus,
  });
  client.connect();
  poll();
})();
