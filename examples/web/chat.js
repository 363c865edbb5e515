// The chat page: sends user_message, renders each run of the user stream as
// a timeline (PROTOCOL.md §5) and shows what the server's validator did.
// Every element a test looks for carries data-type (the event type) and,
// where it applies, data-run-id / data-tool-call-id. Text from the server
// only ever goes into textContent.
'use strict';

(function () {
  const params = new URLSearchParams(location.search);
  const user = params.get('user') || (params.get('token') ? '' : 'alice');
  const SCENARIOS = ['orphan-tool', 'after-terminal', 'open-tools', 'duplicate-start',
    'error-then-complete', 'stall'];

  const timeline = document.getElementById('timeline');
  const input = document.getElementById('message');
  const sendButton = document.getElementById('send');
  const statusEl = document.getElementById('status');
  document.getElementById('user-name').textContent = user || '(from token)';

  // For tests and the curious: every event and control message received.
  const state = { events: [], controls: [], ready: false, client: null };
  window.agentwsChat = state;

  const runs = new Map(); // run_id -> {el, thinking, text, deltas, coalesced, tools, ended}

  const el = window.agentwsEl;

  function json(v) {
    return JSON.stringify(v, null, 1);
  }

  function stickToBottom(fn) {
    const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    fn();
    if (atBottom) window.scrollTo(0, document.body.scrollHeight);
  }

  // Events the validator made up carry data.synthesized and data.rule.
  function markSynthesized(node, data) {
    if (!data || data.synthesized !== true) return;
    node.classList.add('synthesized');
    node.dataset.synthesized = 'true';
    if (data.rule) node.dataset.rule = data.rule;
    node.append(el('span', { class: 'badge synth', 'data-role': 'synthesized', title: 'made up by the server\'s validator' },
      `added by the server (${data.rule || 'repair'})`));
  }

  function runFor(runId) {
    let r = runs.get(runId);
    if (r) return r;
    const status = el('span', { class: 'badge running run-status' }, 'running');
    const head = el('div', { class: 'run-head' },
      el('span', { class: 'agent' }, 'agent'), el('span', { class: 'muted mono' }, runId), status);
    const section = el('section', { class: 'run', 'data-run-id': runId, 'data-status': 'running' }, head);
    r = { el: section, head, status, thinking: null, text: null, deltas: 0, coalesced: 0, tools: new Map(), ended: false };
    runs.set(runId, r);
    timeline.append(section);
    return r;
  }

  function setStatus(r, status, label, cls) {
    r.el.dataset.status = status;
    r.status.textContent = label;
    r.status.className = `badge run-status ${cls}`;
  }

  function add(r, node) {
    // Warn mode delivers events after the end as they are: say so.
    if (r.ended) {
      node.classList.add('after-end');
      node.append(el('span', { class: 'badge bad' }, 'after the run ended'));
    }
    r.el.append(node);
  }

  function onStarted(r, ev) {
    const d = ev.data || {};
    r.head.querySelector('.agent').textContent = d.agent || 'agent';
    const node = el('div', { class: 'event', 'data-type': 'agent_started', 'data-seq': ev.seq },
      'started', d.input !== undefined ? el('span', { class: 'muted' }, ` \u2014 input: ${typeof d.input === 'string' ? d.input : json(d.input)}`) : null);
    markSynthesized(node, d);
    add(r, node);
  }

  // One growing block per run: the deltas concatenated (a coalesced event
  // already holds several, in order).
  function onThinking(r, ev) {
    const d = ev.data || {};
    if (!r.thinking) {
      r.text = el('div', { class: 'thinking-text', 'data-role': 'thinking-text' });
      r.thinking = el('div', { class: 'event thinking', 'data-type': 'agent_thinking', 'data-run-id': ev.run_id },
        el('div', { class: 'muted' }, 'thinking'), r.text);
      add(r, r.thinking);
    }
    r.text.textContent += typeof d.text === 'string' ? d.text : '';
    r.deltas += typeof d.coalesced === 'number' ? d.coalesced : 1;
    if (typeof d.coalesced === 'number') r.coalesced += d.coalesced;
    r.thinking.dataset.deltas = String(r.deltas);
    r.thinking.dataset.coalesced = String(r.coalesced);
    r.thinking.firstChild.textContent = `thinking (${r.deltas} delta${r.deltas === 1 ? '' : 's'}` +
      (r.coalesced ? `, ${r.coalesced} merged for a slow connection` : '') + ')';
    if (r.ended) add(r, el('div', { class: 'event', 'data-type': 'agent_thinking' }, 'more thinking'));
  }

  function toolCard(r, d, runId) {
    const id = d.tool_call_id || '?';
    let card = r.tools.get(id);
    if (card) return card;
    card = el('div', { class: 'event tool', 'data-type': 'tool_executing', 'data-run-id': runId,
      'data-tool-call-id': id, 'data-status': 'running' },
    el('span', { class: 'tool-name' }, d.tool || 'tool'), ' ',
    el('span', { class: 'muted mono' }, id), el('span', { class: 'tool-state' }));
    r.tools.set(id, card);
    add(r, card);
    return card;
  }

  function onToolExecuting(r, ev) {
    const d = ev.data || {};
    const card = toolCard(r, d, ev.run_id);
    card.dataset.seq = String(ev.seq);
    if (d.args !== undefined) card.append(el('pre', { class: 'tool-args' }, 'args ', json(d.args)));
    markSynthesized(card, d);
  }

  function onToolCompleted(r, ev) {
    const d = ev.data || {};
    const known = r.tools.has(d.tool_call_id || '?');
    const card = toolCard(r, d, ev.run_id);
    if (!known) {
      card.dataset.orphan = 'true';
      card.append(el('span', { class: 'badge warn' }, 'no tool_executing seen'));
    }
    const ok = d.ok === true;
    card.dataset.status = ok ? 'ok' : 'failed';
    const res = el('div', { class: 'tool-result', 'data-type': 'tool_completed', 'data-ok': String(ok),
      'data-tool-call-id': d.tool_call_id, 'data-seq': ev.seq },
    el('span', { class: `badge ${ok ? 'ok' : 'bad'}` }, ok ? 'ok' : 'failed'),
    typeof d.duration_ms === 'number' ? el('span', { class: 'muted', 'data-role': 'duration' }, ` ${d.duration_ms} ms`) : null,
    d.result !== undefined ? el('pre', { class: 'tool-output' }, json(d.result)) : null);
    markSynthesized(res, d);
    card.append(res);
  }

  function onCompleted(r, ev) {
    const d = ev.data || {};
    const node = el('div', { class: 'event', 'data-type': 'agent_completed', 'data-seq': ev.seq },
      'completed', typeof d.duration_ms === 'number' ? el('span', { class: 'muted' }, ` in ${d.duration_ms} ms`) : null);
    if (d.result !== undefined) {
      node.append(el('details', {}, el('summary', {}, 'result'),
        el('pre', { class: 'result' }, typeof d.result.text === 'string' ? d.result.text : json(d.result))));
    }
    markSynthesized(node, d);
    add(r, node);
    if (!r.ended) setStatus(r, 'completed', 'completed', 'ok');
    r.ended = true;
  }

  function onError(r, ev) {
    const d = ev.data || {};
    const node = el('div', { class: 'event', 'data-type': 'agent_error', 'data-code': d.code, 'data-seq': ev.seq },
      el('b', {}, d.code || 'error'), `: ${d.message || ''}`,
      el('span', { class: 'muted' }, ` (${d.severity || '?'}${d.retryable ? ', retryable' : ''})`));
    markSynthesized(node, d);
    add(r, node);
    if (!r.ended) setStatus(r, 'failed', `failed: ${d.code || 'error'}`, 'bad');
    r.ended = true;
  }

  const OUTCOME_TEXT = {
    repaired: 'the server added what was missing (purple)',
    dropped: 'the event was not delivered',
    refused: 'the agent\'s emit was refused: nothing was sent',
    warned: 'delivered as the agent sent it',
  };

  // The demo's own event: what the validator did to this run.
  function onViolation(ev) {
    const d = ev.data || {};
    const quiet = d.rule === 'run_stalled' || d.rule === 'tool_timeout';
    const runId = d.run_id || ev.run_id;
    const node = el('div', { class: 'event violation', 'data-type': 'validation.violation',
      'data-rule': d.rule, 'data-outcome': d.outcome, 'data-seq': ev.seq },
    el('b', {}, `validator: ${d.rule || '?'}`),
    el('span', { class: `badge ${d.outcome === 'warned' ? 'warn' : d.outcome === 'repaired' ? 'synth' : 'bad'}` }, d.outcome || '?'),
    ` ${quiet && d.outcome === 'warned' ? 'reported only: the run stays open' : OUTCOME_TEXT[d.outcome] || ''}`,
    d.message ? el('div', { class: 'muted' }, d.message) : null);
    if (!runId) {
      timeline.append(node);
      return;
    }
    // Under strict nothing of a broken run may arrive: only its violations.
    const fresh = !runs.has(runId);
    const r = runFor(runId);
    if (fresh) setStatus(r, 'refused', 'nothing delivered', 'bad');
    else if (quiet && !r.ended) setStatus(r, 'stalled', d.rule === 'run_stalled' ? 'stalled' : 'tool timed out', 'warn');
    r.el.append(node);
  }

  // Other custom events (e.g. /burst's demo.tick) as one counting line each.
  function onCustom(ev) {
    const last = timeline.lastElementChild;
    if (last && last.dataset.type === 'custom' && last.dataset.eventType === ev.type) {
      const n = Number(last.dataset.count) + 1;
      last.dataset.count = String(n);
      last.lastChild.textContent = ` \u00D7 ${n}`;
      return;
    }
    timeline.append(el('div', { class: 'event custom-line', 'data-type': 'custom', 'data-event-type': ev.type, 'data-count': '1' },
      el('span', { class: 'mono' }, ev.type), el('span', {}, ' \u00D7 1')));
  }

  const LIFECYCLE = {
    agent_started: onStarted,
    agent_thinking: onThinking,
    tool_executing: onToolExecuting,
    tool_completed: onToolCompleted,
    agent_completed: onCompleted,
    agent_error: onError,
  };

  function onEvent(ev) {
    state.events.push(ev);
    stickToBottom(() => {
      const fn = LIFECYCLE[ev.type];
      if (fn && ev.run_id) fn(runFor(ev.run_id), ev);
      else if (ev.type === 'validation.violation') onViolation(ev);
      else onCustom(ev);
    });
  }

  function notice(text, cls, attrs) {
    stickToBottom(() => timeline.append(el('div', Object.assign({ class: `notice ${cls || ''}` }, attrs || {}), text)));
  }

  function onControl(msg) {
    state.controls.push(msg);
    if (msg.type === 'error') notice(`server: ${msg.code}: ${msg.message || ''}`, 'error', { 'data-type': 'error', 'data-code': msg.code });
    else if (msg.type === 'gap') notice(`events ${msg.from}\u2013${msg.to} are no longer held`, '', { 'data-type': 'gap' });
    else if (msg.type === 'welcome' && msg.historyLost) {
      // A new epoch: run ids may be handed out again, so later events start new blocks.
      runs.clear();
      notice('the server restarted: earlier events are gone', '', { 'data-type': 'welcome' });
    }
    else if (msg.type === 'token_expiring') notice(`the token expires in ${msg.in_s} s`, '', { 'data-type': 'token_expiring' });
  }

  function onStatus(s, detail) {
    statusEl.dataset.state = s;
    statusEl.textContent = s === 'open' ? 'connected' : detail ? `${s}: ${detail}` : s;
    const open = s === 'open';
    input.disabled = !open;
    sendButton.disabled = !open;
    state.ready = open;
    if (open) input.focus();
  }

  function send(text) {
    if (!text || !state.client.send({ type: 'user_message', text })) return;
    stickToBottom(() => timeline.append(el('div', { class: 'msg user', 'data-type': 'user_message' }, text)));
  }

  document.getElementById('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = input.value;
    input.value = '';
    send(text);
  });
  const scenarios = document.getElementById('scenarios');
  for (const s of SCENARIOS) {
    const b = el('button', { type: 'button', 'data-scenario': s, title: `send "/broken ${s}"` }, s);
    b.addEventListener('click', () => send(`/broken ${s}`));
    scenarios.append(b);
  }

  state.client = new window.AgentwsClient({ user, token: params.get('token') || '', onEvent, onControl, onStatus });
  state.client.connect();
})();
