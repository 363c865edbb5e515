// A small agentws.v1 client for the demo pages (docs/PROTOCOL.md): one
// WebSocket to /ws, the (epoch, seq) of every stream it follows, reconnect
// with resume after a drop (?epoch=&last_seq= for the user stream, join with
// epoch/last_seq for rooms) and cumulative acks. No framework, no build.
'use strict';

(function () {
  const ACK_DELAY_MS = 250;   // acks are cumulative: one per quiet moment is enough
  const BACKOFF_MIN_MS = 500; // PROTOCOL.md §6.4: 0.5 s doubling to 30 s, jittered
  const BACKOFF_MAX_MS = 30000;
  // Closes that reconnecting cannot fix (client bugs, §10).
  const NO_RETRY = new Set([1002, 1007, 1008, 1009]);

  class AgentwsClient {
    // opts: user (dev mode ?user=), token (sent as the "bearer.<token>"
    // subprotocol), rooms [{room, replay}] to join (replay: from the oldest
    // event the room still holds), onEvent(msg), onControl(msg),
    // onStatus(state, detail).
    constructor(opts) {
      this.opts = Object.assign({ path: '/ws', rooms: [] }, opts);
      this.user = { epoch: null, seq: 0 };      // the user stream
      this.rooms = new Map();                   // room -> {epoch, seq, replay}
      for (const r of this.opts.rooms) this.rooms.set(r.room, { epoch: null, seq: 0, replay: !!r.replay });
      this.ws = null;
      this.delay = BACKOFF_MIN_MS;
      this.stopped = false;
      this.acked = new Map();   // stream key ('' = user) -> seq acked on this connection
      this.received = new Map(); // stream key -> highest seq received on this connection
      this.ackTimer = null;
      this.session = null;
    }

    url() {
      const q = new URLSearchParams();
      if (this.opts.user) q.set('user', this.opts.user);
      if (this.user.epoch !== null) {
        q.set('epoch', this.user.epoch);
        q.set('last_seq', String(this.user.seq));
      }
      const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
      const qs = q.toString();
      return `${proto}//${location.host}${this.opts.path}${qs ? '?' + qs : ''}`;
    }

    connect() {
      const protocols = ['agentws.v1'];
      if (this.opts.token) protocols.push('bearer.' + this.opts.token);
      this.status('connecting');
      let ws;
      try {
        ws = new WebSocket(this.url(), protocols);
      } catch (e) {
        this.status('closed', String(e));
        return;
      }
      this.ws = ws;
      this.acked = new Map();
      this.received = new Map();
      ws.onmessage = (e) => this.onMessage(e.data);
      ws.onclose = (e) => this.onClose(e);
    }

    status(state, detail) {
      if (this.opts.onStatus) this.opts.onStatus(state, detail || '');
    }

    send(obj) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
      this.ws.send(JSON.stringify(obj));
      return true;
    }

    join(room, st) {
      const msg = { type: 'join', room };
      if (st.epoch !== null) {
        msg.epoch = st.epoch;
        msg.last_seq = st.seq;
      } else if (st.replay) {
        msg.last_seq = 0; // the current epoch is assumed (§8)
      }
      this.send(msg);
    }

    onMessage(raw) {
      let msg;
      try {
        msg = JSON.parse(raw);
      } catch (e) {
        return;
      }
      if (typeof msg !== 'object' || msg === null) return;
      switch (msg.type) {
        case 'welcome':
          this.delay = BACKOFF_MIN_MS;
          this.session = msg.session;
          if (msg.epoch !== this.user.epoch) {
            const resumed = this.user.epoch !== null;
            // A resume into a new epoch replays what it holds: take it all.
            // A first connection starts at the live edge.
            this.user.seq = resumed ? 0 : msg.seq;
            this.user.epoch = msg.epoch;
            if (resumed) msg.historyLost = true;
          } else if (msg.seq < this.user.seq) {
            this.user.seq = msg.seq;
          }
          this.status('open', msg.user);
          for (const [room, st] of this.rooms) this.join(room, st);
          break;
        case 'joined': {
          const st = this.rooms.get(msg.room);
          if (st) {
            const resuming = st.epoch !== null || st.replay;
            if (msg.epoch !== st.epoch) st.seq = resuming ? 0 : msg.seq;
            st.epoch = msg.epoch;
          }
          break;
        }
        default:
          break;
      }
      if (typeof msg.seq === 'number' && msg.data !== undefined && !('from' in msg)) {
        if (!this.accept(msg)) return;
        if (this.opts.onEvent) this.opts.onEvent(msg);
        return;
      }
      if (this.opts.onControl) this.opts.onControl(msg);
    }

    // Keeps each stream's last seq; false for an event already processed.
    accept(msg) {
      const key = msg.stream || '';
      const st = key === '' ? this.user : this.rooms.get(key.replace(/^room:/, ''));
      if (st) {
        if (msg.seq <= st.seq) return false;
        st.seq = msg.seq;
      }
      this.received.set(key, msg.seq);
      if (this.ackTimer === null) this.ackTimer = setTimeout(() => this.flushAcks(), ACK_DELAY_MS);
      return true;
    }

    flushAcks() {
      this.ackTimer = null;
      for (const [key, seq] of this.received) {
        if ((this.acked.get(key) || 0) >= seq) continue;
        const msg = { type: 'ack', seq };
        if (key !== '') msg.stream = key;
        if (this.send(msg)) this.acked.set(key, seq);
      }
    }

    onClose(e) {
      this.ws = null;
      if (this.ackTimer !== null) {
        clearTimeout(this.ackTimer);
        this.ackTimer = null;
      }
      const why = `closed ${e.code}${e.reason ? ' ' + e.reason : ''}`;
      if (this.stopped || NO_RETRY.has(e.code)) {
        this.status('closed', why);
        return;
      }
      // After a shutdown or a slow-consumer close the server wants us back
      // soon (§10); otherwise back off.
      if (e.code === 1001 || e.code === 1013) this.delay = BACKOFF_MIN_MS;
      const wait = this.delay * (0.75 + Math.random() * 0.5);
      this.delay = Math.min(this.delay * 2, BACKOFF_MAX_MS);
      this.status('reconnecting', `${why}; again in ${(wait / 1000).toFixed(1)} s`);
      setTimeout(() => this.connect(), wait);
    }

    close() {
      this.stopped = true;
      if (this.ws) this.ws.close(1000);
    }
  }

  window.AgentwsClient = AgentwsClient;
})();
