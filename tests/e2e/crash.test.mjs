// Durability: events answered 202 survive kill -9 and an orderly stop mid-load, exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Weir } from './lib/weir.mjs';

const SENDERS = 32;
const MAX_PER_SENDER = 2000; // bounds the load even if the stop never comes

// Runs SENDERS concurrent senders until `stopAfterMs`, then `stopper()`, and returns the ids
// that were answered 202.
async function loadUntil(weir, stopAfterMs, stopper) {
  const acked = [];
  let running = true;
  const sender = async (n) => {
    for (let i = 0; running && i < MAX_PER_SENDER; i++) {
      const id = `s${n}-e${i}`;
      try {
        const res = await fetch(`${weir.sink}/crash`, {
          method: 'POST', body: JSON.stringify({ n, i }),
          headers: { 'ce-specversion': '1.0', 'ce-id': id, 'ce-source': '/load', 'ce-type': 'load', 'content-type': 'application/json' },
        });
        await res.arrayBuffer();
        if (res.status === 202) acked.push(id);
      } catch {
        return; // the server is gone
      }
    }
  };
  const senders = Array.from({ length: SENDERS }, (_, n) => sender(n));
  await new Promise((r) => setTimeout(r, stopAfterMs));
  const exit = await stopper();
  running = false;
  await Promise.all(senders);
  return { acked, exit };
}

async function checkStored(weir, acked) {
  const ids = (await weir.history('crash')).map((item) => item.event.id);
  const counts = new Map();
  for (const id of ids) counts.set(id, (counts.get(id) || 0) + 1);
  const missing = acked.filter((id) => !counts.has(id));
  const doubled = [...counts].filter(([, c]) => c > 1);
  assert.deepEqual(missing, [], `${missing.length} acknowledged events were lost`);
  assert.deepEqual(doubled, [], 'some events were stored twice');
  return ids.length;
}

test('kill -9 under load loses no acknowledged event', async () => {
  const weir = new Weir();
  try {
    await weir.start();
    await weir.createNamespace('crash');
    const { acked, exit } = await loadUntil(weir, 1500, () => weir.stop('SIGKILL'));
    assert.equal(exit.signal, 'SIGKILL');
    assert.ok(acked.length > 100, `only ${acked.length} events were acknowledged before the kill`);
    await weir.start();
    const stored = await checkStored(weir, acked);
    assert.ok(stored >= acked.length);
  } finally {
    await weir.cleanup();
  }
});

for (const timeout of ['30', '0']) {
  test(`SIGTERM under load finishes what is in flight and exits cleanly (--shutdown-timeout ${timeout})`, async () => {
    // With 0 the drain gives up at once: requests whose events the store has taken must still
    // be answered after their commit, and the stop must not break on a parked connection.
    await stopUnderLoad(['--shutdown-timeout', timeout]);
  });
}

async function stopUnderLoad(args) {
  const weir = new Weir({ args });
  try {
    await weir.start();
    await weir.createNamespace('crash');
    const { acked, exit } = await loadUntil(weir, 1000, () => weir.stop('SIGTERM'));
    assert.equal(exit.code, 0, weir.logs.join('\n'));
    assert.ok(weir.logs.some((l) => l.includes('"msg":"stopped"')));
    await weir.start();
    await checkStored(weir, acked);
  } finally {
    await weir.cleanup();
  }
}

// A raw HTTP/1.1 connection, so that a test decides when each byte is sent.
class RawConnection {
  constructor(port) {
    this.port = port;
    this.received = '';
  }

  async open() {
    this.sock = connect(this.port, '127.0.0.1');
    this.sock.on('data', (d) => { this.received += d.toString('latin1'); });
    await new Promise((resolve, reject) => { this.sock.once('connect', resolve); this.sock.once('error', reject); });
    return this;
  }

  send(text) { this.sock.write(text); }

  // Waits for one whole response (headers and a Content-Length body) and takes it off the input.
  async response() {
    for (let waited = 0; waited < 10000; waited += 10) {
      const end = this.received.indexOf('\r\n\r\n');
      if (end >= 0) {
        const head = this.received.slice(0, end);
        const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (this.received.length >= end + 4 + len) {
          const body = this.received.slice(end + 4, end + 4 + len);
          this.received = this.received.slice(end + 4 + len);
          return { status: Number(head.split(' ')[1]), head, body };
        }
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`no whole response; received: ${this.received}`);
  }

  close() { this.sock.destroy(); }
}

function binaryRequest(id, body, { keepAlive = true } = {}) {
  return `POST /crash HTTP/1.1\r\nHost: x\r\nce-specversion: 1.0\r\nce-id: ${id}\r\nce-source: /raw\r\n` +
    `ce-type: t\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
    (keepAlive ? '' : 'connection: close\r\n') + `\r\n`;
}

test('after SIGTERM a new request on a kept-alive connection is refused 503, stores nothing, and the one in flight finishes', async () => {
  const weir = new Weir();
  try {
    await weir.start();
    await weir.createNamespace('crash');

    const kept = await new RawConnection(weir.sinkPort).open();
    kept.send(binaryRequest('before', 'one') + 'one');
    assert.equal((await kept.response()).status, 202);

    // A request whose body is half sent keeps the stop waiting for it.
    const slow = await new RawConnection(weir.sinkPort).open();
    slow.send(binaryRequest('in-flight', 'half and half') + 'half ');
    await new Promise((r) => setTimeout(r, 100));

    weir.proc.kill('SIGTERM');
    for (let i = 0; i < 500 && !weir.logs.some((l) => l.includes('stopping on signal')); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }

    kept.send(binaryRequest('after-stop', 'refused body'));
    await new Promise((r) => setTimeout(r, 50));
    kept.send('refused body');
    const refused = await kept.response();
    assert.equal(refused.status, 503);
    assert.match(refused.head, /retry-after: 1/i);
    assert.match(refused.body, /weir is stopping/);

    slow.send('and half');
    assert.equal((await slow.response()).status, 202);
    const exit = await weir.exited;
    assert.equal(exit.code, 0, weir.logs.join('\n'));
    kept.close();
    slow.close();

    await weir.start();
    const stored = (await weir.history('crash')).filter((item) => item.event.source === '/raw')
      .map((item) => [item.event.id, item.event.data]);
    assert.deepEqual(stored, [['before', 'one'], ['in-flight', 'half and half']]);
  } finally {
    await weir.cleanup();
  }
});
