// Node `ws` client against agentws-demo --mode echo (contract 14).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { ms, startDemo } from './lib/demo.mjs';

let demo;
let url;

before(async () => {
  demo = await startDemo();
  url = `ws://127.0.0.1:${demo.port}/ws`;
});

after(async () => {
  await demo.stop();
});

function withTimeout(promise, millis, what) {
  let timer;
  const timeout = new Promise((_, rej) => {
    timer = setTimeout(() => rej(new Error(`timed out after ${millis} ms: ${what}`)), millis);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function open(protocols = ['agentws.v1']) {
  const ws = new WebSocket(url, protocols, { perMessageDeflate: false });
  return withTimeout(
    new Promise((res, rej) => {
      ws.once('open', () => res(ws));
      ws.once('error', rej);
      ws.once('unexpected-response', (_req, resp) => rej(new Error(`HTTP ${resp.statusCode}`)));
    }),
    ms(10000),
    'open',
  );
}

function nextMessage(ws) {
  return withTimeout(
    new Promise((res, rej) => {
      ws.once('message', (data, isBinary) => res({ data, isBinary }));
      ws.once('close', (code) => rej(new Error(`closed with ${code} before a message`)));
    }),
    ms(10000),
    'message',
  );
}

function closed(ws) {
  return withTimeout(
    new Promise((res) => ws.once('close', (code, reason) => res({ code, reason: reason.toString() }))),
    ms(10000),
    'close',
  );
}

test('selects agentws.v1', async () => {
  const ws = await open(['foo', 'agentws.v1']);
  assert.equal(ws.protocol, 'agentws.v1');
  ws.close(1000);
  await closed(ws);
});

test('echoes text', async () => {
  const ws = await open();
  const text = 'héllo wörld — 世界 😀';
  ws.send(text);
  const { data, isBinary } = await nextMessage(ws);
  assert.equal(isBinary, false);
  assert.equal(data.toString('utf8'), text);
  ws.close(1000);
  assert.equal((await closed(ws)).code, 1000);
});

test('echoes binary of several sizes', async () => {
  const ws = await open();
  for (const size of [0, 1, 125, 126, 65535, 65536, 1048576]) {
    const buf = randomBytes(size);
    ws.send(buf);
    const { data, isBinary } = await nextMessage(ws);
    assert.equal(isBinary, true, `size ${size}`);
    assert.ok(Buffer.compare(data, buf) === 0, `binary echo of ${size} bytes differs`);
  }
  ws.close(1000);
  await closed(ws);
});

test('echoes a fragmented message as one', async () => {
  const ws = await open();
  ws.send('frag-', { fin: false });
  ws.send('men', { fin: false });
  ws.send('ted', { fin: true });
  const { data } = await nextMessage(ws);
  assert.equal(data.toString(), 'frag-mented');
  ws.close(1000);
  await closed(ws);
});

test('answers ping with the same payload', async () => {
  const ws = await open();
  const pong = withTimeout(new Promise((res) => ws.once('pong', res)), ms(5000), 'pong');
  ws.ping(Buffer.from('node-ping'));
  assert.equal((await pong).toString(), 'node-ping');
  ws.close(1000);
  await closed(ws);
});

test('echoes close code 4001', async () => {
  const ws = await open();
  ws.close(4001, 'custom close');
  const { code } = await closed(ws);
  assert.equal(code, 4001);
});

test('100 concurrent connections each echo', async () => {
  const sockets = await Promise.all(Array.from({ length: 100 }, () => open()));
  try {
    const results = await Promise.all(
      sockets.map(async (ws, i) => {
        const msg = `node client ${i}`;
        const reply = nextMessage(ws);
        ws.send(msg);
        return (await reply).data.toString() === msg;
      }),
    );
    assert.equal(results.filter(Boolean).length, 100);
  } finally {
    const done = sockets.map((ws) => closed(ws));
    sockets.forEach((ws) => ws.close(1000));
    const codes = (await Promise.all(done)).map((c) => c.code);
    assert.deepEqual(codes, Array(100).fill(1000));
  }
});
