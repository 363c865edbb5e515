// ws-server: the Node `ws` peer for bench/run-peers.sh, the same modes as
// lws-server.c, written the way ws applications are written (ws.send per
// message; Node's net.Socket batches writes queued while one is in flight).
//
//   node ws-server.mjs --mode echo|fanout|room|paced [--port 0] [--conns 0]
//                      [--size 200] [--interval-ms 10] [--high 64] [--max-run 3600]
//
//   echo    every text/binary message goes back to its sender.
//   fanout  each connection (?user=u<k>) is its own user's stream, fed a
//           fresh event whenever it has room (see backpressure below).
//   room    one stream for all connections: each event is encoded once and
//           sent to every connection; events are made while no connection
//           is over the backpressure bound.
//   paced   one event to every connection each --interval-ms.
//
// --conns N: no events until N connections are open (as fanout-host waits
// for its N). Needed here, not only for symmetry: under a flood Node
// accepts one connection per event-loop turn, and a turn over N busy
// connections grows with N, so 1,000 connections would take minutes.
//
// Backpressure: a connection has at most --high messages not yet handed to
// the kernel. ws.send's callback runs when its write completed; asking for
// one every CB_EVERY messages tells how far the socket got without a
// closure per message. Sending resumes below half of --high. So fanout and
// room measure the sustained rate, not how much Node can buffer.
//
// Events match lws-server's and libagentws's shape ("ts" wall ms, data
// "emit_us" wall us, taken when the event is made), non-echo connections
// first get a welcome, agentws.v1 is accepted when offered. Listens on
// 127.0.0.1 only, prints "listening on 127.0.0.1:PORT"; SIGINT/SIGTERM stop
// it (exit 0), as does --max-run seconds (exit 1).
import { WebSocketServer } from 'ws';
import { performance } from 'node:perf_hooks';

const CB_EVERY = 8;
const ECHO_STOP_READ = 4 << 20; // echo: bytes queued before we stop reading

function parseArgs(argv) {
  const o = { mode: null, port: 0, conns: 0, size: 200, intervalMs: 10, high: 64, maxRun: 3600 };
  const num = (name, v, lo, hi) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < lo || n > hi) {
      console.error(`ws-server: --${name} must be a number in [${lo}, ${hi}]`);
      process.exit(2);
    }
    return n;
  };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i], v = argv[i + 1];
    switch (a) {
      case '--mode': o.mode = v; i++; break;
      case '--port': o.port = num('port', v, 0, 65535); i++; break;
      case '--conns': o.conns = num('conns', v, 0, 1000000); i++; break;
      case '--size': o.size = num('size', v, 64, 4096); i++; break;
      case '--interval-ms': o.intervalMs = num('interval-ms', v, 1, 60000); i++; break;
      case '--high': o.high = num('high', v, CB_EVERY * 2, 1 << 20); i++; break;
      case '--max-run': o.maxRun = num('max-run', v, 0, 86400); i++; break;
      default: o.mode = 'bad'; i = argv.length; break;
    }
  }
  if (!['echo', 'fanout', 'room', 'paced'].includes(o.mode)) {
    console.error('usage: node ws-server.mjs --mode echo|fanout|room|paced [--port 0] [--conns 0]\n' +
                  '         [--size 200] [--interval-ms 10] [--high 64] [--max-run 3600]');
    process.exit(2);
  }
  return o;
}

const o = parseArgs(process.argv);
const LOW = o.high >> 1;

// Padding so the envelope is ~size bytes (13-digit ts, 16-digit emit_us,
// 6-digit seq), as lws-server and fanout-host size theirs.
const FIXED = '{"type":"custom_event","run_id":"r-1","ts":1763769600123,' +
              '"data":{"emit_us":1763769600123456,"pad":""},"seq":123456}';
let PAD = '';
for (let i = 0; i < o.size - FIXED.length; i++) PAD += String.fromCharCode(97 + (i % 26));

// Wall clock in us: timeOrigin is the wall time at start, now() the
// monotonic time since, so this has us resolution (Date.now() has ms).
function wallUs() {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000);
}

function makeEvent(seq) {
  const us = wallUs();
  return `{"type":"custom_event","run_id":"r-1","ts":${Math.floor(us / 1000)},` +
         `"data":{"emit_us":${us},"pad":"${PAD}"},"seq":${seq}}`;
}

const TEXT = { binary: false };
const conns = new Set(); // per-connection state, open ones only
let events = 0, writes = 0, blocked = 0, producing = false, paceSkipped = 0;
let started = o.conns === 0;

// Sends |data| on st's connection, asking for a completion every CB_EVERY.
function sendTracked(st, data) {
  const n = ++st.sent;
  writes++;
  if (n % CB_EVERY === 0) st.ws.send(data, TEXT, (err) => onDone(st, n, err));
  else st.ws.send(data, TEXT);
}

function onDone(st, n, err) {
  if (err || !st.open) return;
  st.done = n;
  if (st.sent - st.done > LOW) return;
  if (o.mode === 'fanout') {
    schedulePump(st);
  } else if (st.blocked) {
    st.blocked = false;
    if (--blocked === 0) scheduleProduce();
  }
}

// fanout: fill this connection up to the bound with fresh events.
function pump(st) {
  while (started && st.open && st.sent - st.done < o.high) {
    sendTracked(st, makeEvent(st.seq++));
    events++;
  }
}

// A write that completes at once calls back through process.nextTick, so
// pumping from the callback would never yield to the event loop (no
// accepts, no reads): the refill waits for the next turn instead.
function schedulePump(st) {
  if (!st.pumping) {
    st.pumping = true;
    setImmediate(() => {
      st.pumping = false;
      pump(st);
    });
  }
}

// room: events while nobody is over the bound; setImmediate between
// batches so reads, write completions and signals get their turn.
function produce() {
  producing = false;
  for (let k = 0; k < 16 && blocked === 0 && conns.size > 0; k++) {
    const buf = Buffer.from(makeEvent(events++)); // encoded once, shared
    for (const st of conns) {
      sendTracked(st, buf);
      if (!st.blocked && st.sent - st.done >= o.high) {
        st.blocked = true;
        blocked++;
      }
    }
  }
  if (blocked === 0 && conns.size > 0) scheduleProduce();
}

function scheduleProduce() {
  if (!producing) {
    producing = true;
    setImmediate(produce);
  }
}

// paced: one event to everyone every intervalMs, on an absolute schedule.
let nextPace = performance.now() + o.intervalMs;
function pace() {
  if (started && conns.size > 0) {
    const buf = Buffer.from(makeEvent(events++));
    for (const st of conns) {
      if (st.sent - st.done >= o.high) { paceSkipped++; continue; } // a stalled reader
      sendTracked(st, buf);
    }
  }
  const now = performance.now();
  nextPace += o.intervalMs;
  if (nextPace < now) nextPace = now;
  setTimeout(pace, nextPace - now);
}

const wss = new WebSocketServer({
  host: '127.0.0.1', // loopback only
  port: o.port,
  perMessageDeflate: false,
  clientTracking: false,
  handleProtocols: (protocols) => (protocols.has('agentws.v1') ? 'agentws.v1' : false),
});

wss.on('connection', (ws, req) => {
  if (o.mode === 'echo') {
    ws.on('message', (data, isBinary) => {
      writes++;
      if (ws.bufferedAmount > ECHO_STOP_READ && !ws.isPaused) {
        ws.pause(); // the client sends faster than it reads
        ws.send(data, { binary: isBinary }, () => ws.resume());
      } else {
        ws.send(data, { binary: isBinary });
      }
    });
    return;
  }
  const user = new URL(req.url, 'http://x').searchParams.get('user') || 'anonymous';
  const st = { ws, open: true, sent: 0, done: 0, seq: 0, blocked: false, pumping: false };
  conns.add(st);
  ws.on('close', () => {
    st.open = false;
    conns.delete(st);
    if (st.blocked) {
      st.blocked = false;
      if (--blocked === 0) scheduleProduce();
    }
  });
  ws.on('error', () => {});
  sendTracked(st, JSON.stringify({ type: 'welcome', user, seq: 0 }));
  if (!started && conns.size >= o.conns) {
    started = true;
    console.error(`ws-server: ${conns.size} connections open, sending`);
    if (o.mode === 'fanout') for (const c of conns) pump(c);
  }
  if (!started) return;
  if (o.mode === 'fanout') pump(st);
  else if (o.mode === 'room') scheduleProduce();
});

wss.on('listening', () => {
  console.log(`listening on 127.0.0.1:${wss.address().port}`);
  console.error(`ws-server: node ${process.version}, mode ${o.mode}, events ~${o.size} bytes`);
  if (o.mode === 'paced') setTimeout(pace, o.intervalMs);
});

wss.on('error', (err) => {
  console.error(`ws-server: ${err.message}`);
  process.exit(1);
});

function stop(code) {
  console.error(`ws-server: ${events} events made, ${writes} messages written` +
                (paceSkipped ? `, ${paceSkipped} paced sends skipped (reader behind)` : ''));
  process.exit(code);
}

process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
if (o.maxRun > 0) {
  setTimeout(() => {
    console.error(`ws-server: --max-run ${o.maxRun} s reached`);
    stop(1);
  }, o.maxRun * 1000).unref();
}
