// The source side: what goes out to K_SINK and what never does, the exact headers (percent-
// encoding, the namespace extension, K_CE_OVERRIDES, the bearer token), system events, a sink
// that is down and comes back, a crash with events in the outbox, refusals, a full outbox, and
// https with K_CA_CERTS. A node server on loopback stands in for the broker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Weir } from './lib/weir.mjs';
import { Target } from './lib/target.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const work = mkdtempSync(join(tmpdir(), 'weir-source-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

function source(url, { args = [], env = {}, dataDir } = {}) {
  return new Weir({ dataDir, args: ['--source-sink', url, '--source-token-file', join(work, 'none'), ...args], env });
}

async function broadcast(weir, ns, events) {
  const body = events.map((e) => ({ specversion: '1.0', source: '/src', type: 'com.example.out', data: { n: 1 }, ...e }));
  const res = await fetch(`${weir.api}/api/v2/namespaces/${ns}/events/broadcast`, {
    method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/cloudevents-batch+json' },
  });
  return res;
}

async function sink(weir, ns, id) {
  const res = await fetch(`${weir.sink}/${ns}`, {
    method: 'POST', body: '{"from":"sink"}',
    headers: { 'ce-specversion': '1.0', 'ce-id': id, 'ce-source': '/sink', 'ce-type': 'com.example.in', 'content-type': 'application/json' },
  });
  assert.equal(res.status, 202);
}

async function metric(weir, name) {
  const text = await (await fetch(`${weir.api}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

async function until(check, ms = 10000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`${what} not met within ${ms} ms`);
}

// A port that nothing listens on (for a sink that is down).
async function closedPort() {
  const t = await new Target().start();
  await t.stop();
  return t.port;
}

const ids = (hits) => hits.map((h) => h.headers['ce-id']);
const byType = (hits, type) => hits.filter((h) => h.headers['ce-type'] === type);

test('what goes out, with its exact headers, and what never does', async () => {
  const broker = await new Target().start();
  const replier = await new Target(() => ({
    status: 200, body: '{"ok":true}',
    headers: { 'ce-specversion': '1.0', 'ce-id': 'reply-1', 'ce-source': '/replier', 'ce-type': 'com.example.reply', 'content-type': 'application/json' },
  })).start();
  const token = join(work, 'token');
  writeFileSync(token, 'tok-1\n');
  const weir = new Weir({
    args: ['--source-sink', broker.url, '--source-token-file', token],
    env: { K_CE_OVERRIDES: '{"extensions":{"cluster":"east","tier":1}}' },
  });
  try {
    await weir.start();
    await weir.createNamespace('demo');
    await sink(weir, 'demo', 'from-sink');
    const res = await fetch(`${weir.api}/api/v2/namespaces/demo/events/broadcast`, {
      method: 'POST', body: '{"x":1}',
      headers: { 'ce-specversion': '1.0', 'ce-id': 'b1', 'ce-source': '/api', 'ce-type': 'com.example.b',
        'ce-subject': '100%25%20caf%C3%A9%2F%C3%BC', 'content-type': 'application/json' },
    });
    assert.equal(res.status, 202);
    await broker.until(2);

    const [created, b1] = broker.got;
    assert.equal(created.headers['ce-type'], 'io.weir.namespace.created');
    assert.equal(created.headers['ce-source'], '/weir/namespaces/demo');
    assert.deepEqual(JSON.parse(created.body), { namespace: 'demo' });
    const h = b1.headers;
    assert.equal(h['ce-id'], 'b1');
    assert.equal(h['ce-specversion'], '1.0');
    assert.equal(h['ce-source'], '/api');
    assert.equal(h['ce-type'], 'com.example.b');
    assert.equal(h['ce-subject'], '100%25%20caf%C3%A9/%C3%BC');
    assert.equal(h['ce-weirnamespace'], 'demo');
    assert.equal(h['ce-cluster'], 'east');
    assert.equal(h['ce-tier'], '1');
    assert.equal(h['content-type'], 'application/json');
    assert.equal(h.authorization, 'Bearer tok-1');
    assert.equal(b1.body, '{"x":1}');
    assert.equal(h.prefer, undefined);

    // A rotated token is read again (at most a second later).
    await sleep(1100);
    writeFileSync(token, 'tok-2');
    await sleep(1100);
    assert.equal((await broadcast(weir, 'demo', [{ id: 'b2' }])).status, 202);
    await broker.until(3);
    assert.equal(broker.got[2].headers['ce-id'], 'b2');
    assert.equal(broker.got[2].headers.authorization, 'Bearer tok-2');

    // A replay goes out again; a filter's creation is a system event, in history too.
    assert.equal((await fetch(`${weir.api}/api/v2/namespaces/demo/events/history/replay/b1`, { method: 'POST' })).status, 202);
    assert.equal((await fetch(`${weir.api}/api/v2/namespaces/demo/filters/f1`, { method: 'PUT', body: 'return event;' })).status, 201);
    await broker.until(5);
    assert.equal(broker.got[3].headers['ce-id'], 'b1');
    const filter = broker.got[4];
    assert.equal(filter.headers['ce-type'], 'io.weir.filter.created');
    assert.equal(filter.headers['ce-subject'], 'f1');
    assert.deepEqual(JSON.parse(filter.body), { namespace: 'demo', filter: 'f1' });

    // A listener's target replies: the reply enters the namespace and goes out; the event
    // that came through the sink does not.
    const lres = await fetch(`${weir.api}/api/v2/namespaces/demo/events/listeners`, {
      method: 'POST', body: JSON.stringify({ mode: 'simple', events: [{ type: 'com.example.in' }], sink: replier.url }) });
    assert.equal(lres.status, 201);
    const listener = (await lres.json()).id;
    await sink(weir, 'demo', 'wakes-replier');
    await replier.until(1);
    await until(() => ids(broker.got).includes('reply-1'), 10000, 'the reply went out');
    assert.equal(byType(broker.got, 'io.weir.listener.created')[0].headers['ce-subject'], listener);

    assert.equal((await fetch(`${weir.api}/api/v2/namespaces/demo`, { method: 'DELETE' })).status, 204);
    await until(() => byType(broker.got, 'io.weir.namespace.deleted').length === 1, 10000, 'the deletion went out');

    const out = ids(broker.got);
    assert.ok(!out.includes('from-sink') && !out.includes('wakes-replier'), `sink events went out: ${out}`);
    assert.equal(new Set(out.filter((i) => i === 'b1')).size, 1);
    assert.equal(out.filter((i) => i === 'b1').length, 2, 'b1 and its replay');
    assert.ok(broker.got.every((g) => g.headers['ce-weirnamespace'] === 'demo'));
    // The last removal from the outbox commits just after the sink answered.
    await until(async () => (await metric(weir, 'weir_outbox_depth')) === 0, 5000, 'an empty outbox');
    assert.equal(await metric(weir, 'weir_source_sent_total'), broker.got.length);
  } finally {
    await weir.cleanup();
    await broker.stop();
    await replier.stop();
  }
});

test('system events are in history and wake listeners', async () => {
  const broker = await new Target().start();
  const watcher = await new Target().start();
  const weir = source(broker.url);
  try {
    await weir.start();
    await weir.createNamespace('sys');
    const lres = await fetch(`${weir.api}/api/v2/namespaces/sys/events/listeners`, {
      method: 'POST', body: JSON.stringify({ mode: 'simple', events: [{ type: 'io.weir.filter.deleted' }], sink: watcher.url }) });
    assert.equal(lres.status, 201);
    await fetch(`${weir.api}/api/v2/namespaces/sys/filters/f`, { method: 'PUT', body: 'return event;' });
    await fetch(`${weir.api}/api/v2/namespaces/sys/filters/f`, { method: 'PUT', body: 'return null;' });
    await fetch(`${weir.api}/api/v2/namespaces/sys/filters/f`, { method: 'DELETE' });
    await fetch(`${weir.api}/api/v2/namespaces/sys`, { method: 'PUT', body: '{"retention":{"max_count":10}}' });
    const [hit] = await watcher.until(1);
    assert.equal(hit.headers['ce-type'], 'io.weir.filter.deleted');
    const types = (await weir.history('sys')).map((i) => i.event.type);
    assert.deepEqual(types, ['io.weir.namespace.created', 'io.weir.listener.created', 'io.weir.filter.created',
      'io.weir.filter.updated', 'io.weir.filter.deleted', 'io.weir.namespace.updated']);
    await broker.until(6);
    assert.deepEqual(broker.got.map((g) => g.headers['ce-type']), types);
  } finally {
    await weir.cleanup();
    await broker.stop();
    await watcher.stop();
  }
});

test('a full store queue refuses a change whole; every change made has its event', async () => {
  const broker = await new Target().start();
  // One write may wait for the writer: the broadcasts below keep the queue full.
  const weir = source(broker.url, { args: ['--queue-max', '1', '--batch-max', '1'] });
  try {
    await weir.start();
    await weir.createNamespace('busy');
    let stop = false;
    const flood = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; !stop; i++) await broadcast(weir, 'busy', [{ id: `f${w}-${i}` }]);
    });
    const puts = [];
    for (let i = 0; i < 20; i++) {
      puts.push(fetch(`${weir.api}/api/v2/namespaces/busy/filters/f${i}`, { method: 'PUT', body: 'return event;' }));
    }
    const answers = await Promise.all(puts.map(async (p, i) => {
      const res = await p;
      return { name: `f${i}`, status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.json() };
    }));
    stop = true;
    await Promise.all(flood);
    assert.ok(answers.every((a) => a.status === 201 || a.status === 503), answers.map((a) => a.status).join());
    for (const a of answers.filter((x) => x.status === 503)) {
      assert.equal(a.retryAfter, '1');
      assert.equal(a.body.detail, 'the store queue is full; retry later');
    }
    const made = answers.filter((a) => a.status === 201).map((a) => a.name).sort();
    const list = await (await fetch(`${weir.api}/api/v2/namespaces/busy/filters`)).json();
    assert.deepEqual(list.items.map((f) => f.name).sort(), made, 'exactly the filters answered 201 exist');
    const created = (await weir.history('busy')).filter((i) => i.event.type === 'io.weir.filter.created');
    assert.deepEqual(created.map((i) => i.event.subject).sort(), made, 'each has its event, and only they');
    await until(() => byType(broker.got, 'io.weir.filter.created').length === made.length, 20000, 'every event went out');
  } finally {
    await weir.cleanup();
    await broker.stop();
  }
});

// The steps each worker takes with one namespace of its own, and the system event of each.
const STEPS = [
  ['PUT', '', '{"retention":{"max_count":1000}}', 'io.weir.namespace.created'],
  ['PUT', '/filters/a', 'return event;', 'io.weir.filter.created'],
  ['PUT', '/filters/a', 'return null;', 'io.weir.filter.updated'],
  ['POST', '/events/listeners', null, 'io.weir.listener.created'],
  ['DELETE', '/filters/a', null, 'io.weir.filter.deleted'],
  ['PUT', '/filters/b', 'return event;', 'io.weir.filter.created'],
];

test('kill -9 during a burst of changes: each change that stands has its event, and no event stands without its change', async () => {
  const port = await closedPort(); // the outbox keeps every event that would go out
  const listener = JSON.stringify({ mode: 'simple', events: [{ type: 'com.example.never' }], sink: `http://127.0.0.1:${port}/` });
  const weir = source(`http://127.0.0.1:${port}/`);
  const answered = new Map(); // namespace -> steps answered (7: deleted too)
  try {
    await weir.start();
    let running = true;
    const worker = async (w) => {
      for (let i = 0; running; i++) {
        const ns = `k${w}-${i}`;
        answered.set(ns, 0);
        const steps = [...STEPS.map(([method, path, body]) => [method, path, body ?? (path ? listener : undefined)]),
          ...(i % 2 ? [['DELETE', '', undefined]] : [])];
        for (const [method, path, body] of steps) {
          let res;
          try {
            res = await fetch(`${weir.api}/api/v2/namespaces/${ns}${path}`, { method, body });
            await res.arrayBuffer();
          } catch {
            return; // weir is gone
          }
          assert.ok(res.status < 300, `${method} ${ns}${path}: ${res.status}`);
          answered.set(ns, answered.get(ns) + 1);
        }
      }
    };
    const workers = Array.from({ length: 8 }, (_, w) => worker(w));
    await sleep(1500);
    assert.equal((await weir.stop('SIGKILL')).signal, 'SIGKILL');
    running = false;
    await Promise.all(workers);

    await weir.start();
    let rows = 0;
    let checked = 0;
    for (const [ns, steps] of answered) {
      const res = await fetch(`${weir.api}/api/v2/namespaces/${ns}`);
      if (res.status === 404) {
        // Never created, or deleted with all its events: 6 events and the deletion's went out.
        rows += steps > 0 ? STEPS.length + 1 : 0;
        continue;
      }
      const shown = await res.json();
      const types = (await weir.history(ns)).map((i) => i.event.type);
      const k = types.length;
      assert.deepEqual(types, STEPS.slice(0, k).map((s) => s[3]), `${ns}: its events are its changes, in order`);
      assert.ok(k >= 1 && k >= Math.min(steps, STEPS.length), `${ns}: ${steps} changes answered, ${k} events`);
      assert.equal(shown.retention.max_count, 1000, `${ns}: created with its retention`);
      const filters = (await (await fetch(`${weir.api}/api/v2/namespaces/${ns}/filters`)).json()).items.map((f) => f.name);
      assert.deepEqual(filters, [...(k >= 2 && k <= 4 ? ['a'] : []), ...(k >= 6 ? ['b'] : [])], `${ns}: filters after ${k} events`);
      const listeners = (await (await fetch(`${weir.api}/api/v2/namespaces/${ns}/events/listeners`)).json()).items;
      assert.equal(listeners.length, k >= 4 ? 1 : 0, `${ns}: listeners after ${k} events`);
      rows += k;
      checked++;
    }
    assert.ok(checked > 8, `only ${checked} namespaces were made before the kill`);
    assert.equal(await metric(weir, 'weir_outbox_depth'), rows, 'every event, and only they, waits in the outbox');
  } finally {
    await weir.cleanup();
  }
});

test('a failed delivery is a system event that goes out', async () => {
  const broker = await new Target().start();
  const refuser = await new Target(() => ({ status: 400, body: 'no thanks' })).start();
  const weir = source(broker.url);
  try {
    await weir.start();
    await weir.createNamespace('dl');
    const lres = await fetch(`${weir.api}/api/v2/namespaces/dl/events/listeners`, {
      method: 'POST', body: JSON.stringify({ mode: 'simple', events: [{ type: 'com.example.in' }], sink: refuser.url }) });
    const listener = (await lres.json()).id;
    await sink(weir, 'dl', 'doomed');
    await until(() => byType(broker.got, 'io.weir.delivery.failed').length === 1, 10000, 'the failure went out');
    const [failed] = byType(broker.got, 'io.weir.delivery.failed');
    assert.equal(failed.headers['ce-subject'], listener);
    const data = JSON.parse(failed.body);
    assert.equal(data.listener, listener);
    assert.equal(data.status, 400);
    assert.equal(data.eventId, 'doomed');
    assert.equal(data.target, refuser.url);
    assert.equal(failed.headers['ce-weirhops'], '1');
  } finally {
    await weir.cleanup();
    await broker.stop();
    await refuser.stop();
  }
});

test('a dead-lettered delivery and a deleted listener are system events that go out', async () => {
  const broker = await new Target().start();
  const refuser = await new Target(() => ({ status: 400, body: 'no thanks' })).start();
  const dls = await new Target().start();
  const weir = source(broker.url);
  try {
    await weir.start();
    await weir.createNamespace('dead');
    const lres = await fetch(`${weir.api}/api/v2/namespaces/dead/events/listeners`, {
      method: 'POST', body: JSON.stringify({ mode: 'simple', events: [{ type: 'com.example.in' }], sink: refuser.url,
        delivery: { retry: 0, deadLetterSink: dls.url } }) });
    assert.equal(lres.status, 201);
    const listener = (await lres.json()).id;
    await sink(weir, 'dead', 'lettered');
    await dls.until(1);
    await until(() => byType(broker.got, 'io.weir.delivery.deadlettered').length === 1, 10000, 'the dead letter went out');
    const [dead] = byType(broker.got, 'io.weir.delivery.deadlettered');
    assert.equal(dead.headers['ce-subject'], listener);
    assert.equal(dead.headers['ce-source'], '/weir/namespaces/dead');
    assert.equal(dead.headers['ce-weirhops'], '1');
    const data = JSON.parse(dead.body);
    assert.equal(data.namespace, 'dead');
    assert.equal(data.listener, listener);
    assert.equal(data.target, refuser.url);
    assert.equal(data.deadLetterSink, dls.url);
    assert.equal(data.eventId, 'lettered');
    assert.equal(typeof data.delivery, 'number');
    assert.equal(data.status, 400); // the target's answer, not the dead-letter sink's 2xx
    assert.equal(typeof data.status, 'number');
    assert.ok(data.attempts >= 1);
    assert.ok(byType(broker.got, 'io.weir.delivery.failed').length === 0);

    assert.equal((await fetch(`${weir.api}/api/v2/namespaces/dead/events/listeners/${listener}`, { method: 'DELETE' })).status, 204);
    await until(() => byType(broker.got, 'io.weir.listener.deleted').length === 1, 10000, 'the deletion went out');
    const [deleted] = byType(broker.got, 'io.weir.listener.deleted');
    assert.equal(deleted.headers['ce-subject'], listener);
    assert.deepEqual(JSON.parse(deleted.body), { namespace: 'dead', listener });
    const types = (await weir.history('dead')).map((i) => i.event.type);
    assert.ok(types.includes('io.weir.delivery.deadlettered') && types.includes('io.weir.listener.deleted'), types.join());
  } finally {
    await weir.cleanup();
    await broker.stop();
    await refuser.stop();
    await dls.stop();
  }
});

test('after a 401 the token is read again at once, not at its next look', async () => {
  const token = join(work, 'token-401');
  writeFileSync(token, 'tok-old\n');
  // The broker refuses the old token, and the token is rotated as it does so.
  const broker = await new Target((hit) => {
    if (hit.headers.authorization !== 'Bearer tok-old') return { status: 202 };
    writeFileSync(token, 'tok-new\n');
    return { status: 401 };
  }).start();
  const weir = new Weir({ args: ['--source-sink', broker.url, '--source-token-file', token, '--system-events=false'] });
  try {
    await weir.start();
    await weir.createNamespace('auth');
    assert.equal((await broadcast(weir, 'auth', [{ id: 't1' }])).status, 202);
    await broker.until(2);
    // The retry comes 0.2 s later, well within the second between two looks at the file.
    assert.deepEqual(broker.got.map((g) => g.headers.authorization), ['Bearer tok-old', 'Bearer tok-new']);
    assert.deepEqual(ids(broker.got), ['t1', 't1']);
    assert.ok(broker.got[1].at - broker.got[0].at < 1000);
    await until(async () => (await metric(weir, 'weir_outbox_depth')) === 0, 5000, 'an empty outbox');
  } finally {
    await weir.cleanup();
    await broker.stop();
  }
});

test('a sink that is down, then failing, then back receives every event once, in order', async () => {
  const port = await closedPort();
  const weir = source(`http://127.0.0.1:${port}/`, { args: ['--system-events=false'] });
  let broker;
  try {
    await weir.start();
    await weir.createNamespace('down');
    const sent = [];
    for (let b = 0; b < 4; b++) {
      const batch = Array.from({ length: 10 }, (_, i) => ({ id: `d${b * 10 + i}` }));
      sent.push(...batch.map((e) => e.id));
      assert.equal((await broadcast(weir, 'down', batch)).status, 202);
    }
    await sleep(1000);
    assert.equal(await metric(weir, 'weir_outbox_depth'), 40);
    assert.ok((await metric(weir, 'weir_source_retries_total')) > 0);
    // Back, but answering 503 to the first three attempts.
    broker = await new Target((hit, n) => (n <= 3 ? { status: 503, headers: { 'retry-after': '0' } } : { status: 202 })).start(port);
    await broker.until(43, 30000);
    await sleep(300);
    const taken = ids(broker.got.slice(3));
    assert.deepEqual(taken, sent, 'every event once, in order');
    assert.deepEqual(ids(broker.got.slice(0, 3)), ['d0', 'd0', 'd0'], 'the oldest is retried first');
    await until(async () => (await metric(weir, 'weir_outbox_depth')) === 0, 5000, 'an empty outbox');
  } finally {
    await weir.cleanup();
    if (broker) await broker.stop();
  }
});

test('kill -9 with events in the outbox: every one arrives after the restart', async () => {
  const port = await closedPort();
  const dataDir = mkdtempSync(join(work, 'data-'));
  const first = source(`http://127.0.0.1:${port}/`, { dataDir, args: ['--system-events=false'] });
  const second = source(`http://127.0.0.1:${port}/`, { dataDir, args: ['--system-events=false'] });
  let broker;
  try {
    await first.start();
    await first.createNamespace('crash');
    const sent = Array.from({ length: 25 }, (_, i) => ({ id: `k${i}` }));
    assert.equal((await broadcast(first, 'crash', sent)).status, 202);
    await first.stop('SIGKILL');
    broker = await new Target().start(port);
    await second.start();
    await broker.until(25);
    await sleep(300);
    assert.deepEqual(ids(broker.got), sent.map((e) => e.id));
  } finally {
    await first.cleanup();
    await second.cleanup();
    rmSync(dataDir, { recursive: true, force: true });
    if (broker) await broker.stop();
  }
});

test('a refused event is dropped alone; a full outbox refuses broadcasts and counts the rest', async () => {
  const broker = await new Target((hit) => (hit.headers['ce-id'] === 'bad' ? { status: 400 } : { status: 202 })).start();
  const weir = source(broker.url, { args: ['--system-events=false'] });
  const port = await closedPort();
  const full = source(`http://127.0.0.1:${port}/`, { args: ['--outbox-max', '3'] });
  try {
    await weir.start();
    await weir.createNamespace('ref');
    assert.equal((await broadcast(weir, 'ref', [{ id: 'bad' }, { id: 'good' }])).status, 202);
    await until(() => ids(broker.got).includes('good'), 10000, 'the good event went out');
    assert.deepEqual(ids(broker.got), ['bad', 'good']);
    assert.equal(await metric(weir, 'weir_source_failed_total'), 1);
    await until(async () => (await metric(weir, 'weir_outbox_depth')) === 0, 5000, 'an empty outbox');

    await full.start();
    await full.createNamespace('full'); // its system event takes the first place
    assert.equal((await broadcast(full, 'full', [{ id: 'f1' }, { id: 'f2' }])).status, 202);
    await until(async () => (await metric(full, 'weir_outbox_depth')) === 3, 5000, 'a full outbox');
    const before = await full.history('full');
    const res = await broadcast(full, 'full', [{ id: 'f3' }]);
    assert.equal(res.status, 503);
    assert.ok(res.headers.get('retry-after'));
    assert.equal((await res.json()).status, 503);
    assert.deepEqual(await full.history('full'), before, 'nothing stored');
    // Events born of weir itself are stored, not queued, and counted.
    assert.equal((await fetch(`${full.api}/api/v2/namespaces/full/filters/x`, { method: 'PUT', body: 'return event;' })).status, 201);
    assert.equal((await full.history('full')).at(-1).event.type, 'io.weir.filter.created');
    assert.equal(await metric(full, 'weir_outbox_overflow_total'), 1);
    assert.equal(await metric(full, 'weir_outbox_depth'), 3);
  } finally {
    await weir.cleanup();
    await full.cleanup();
    await broker.stop();
  }
});

test('a broadcast the outbox has no room for is refused whole; every 202 goes out', async () => {
  const port = await closedPort();
  const weir = source(`http://127.0.0.1:${port}/`, { args: ['--system-events=false', '--outbox-max', '5'] });
  let broker;
  try {
    await weir.start();
    await weir.createNamespace('room');
    assert.equal((await broadcast(weir, 'room', [{ id: 'a1' }, { id: 'a2' }, { id: 'a3' }])).status, 202);
    // Two places left: a batch of three is refused whole, and nothing of it is stored.
    const res = await broadcast(weir, 'room', [{ id: 'b1' }, { id: 'b2' }, { id: 'b3' }]);
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '1');
    assert.match((await res.json()).detail, /outbox is full/);
    assert.deepEqual((await weir.history('room')).map((i) => i.event.id), ['a1', 'a2', 'a3']);
    assert.equal(await metric(weir, 'weir_outbox_depth'), 3);
    assert.equal(await metric(weir, 'weir_outbox_overflow_total'), 0);

    // Ten broadcasts at once for the two places: each is either taken and sent, or refused.
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => broadcast(weir, 'room', [{ id: `c${i}` }])));
    const accepted = answers.map((r, i) => (r.status === 202 ? `c${i}` : null)).filter(Boolean);
    assert.ok(answers.every((r) => r.status === 202 || r.status === 503), answers.map((r) => r.status).join());
    assert.equal(accepted.length, 2);
    const stored = (await weir.history('room')).map((i) => i.event.id);
    assert.deepEqual(stored.slice(0, 3), ['a1', 'a2', 'a3']);
    assert.deepEqual(stored.slice(3).sort(), accepted.sort());

    broker = await new Target().start(port);
    await broker.until(5, 30000);
    await sleep(300);
    assert.deepEqual(ids(broker.got), stored, 'every event answered 202 went out, in order');
    await until(async () => (await metric(weir, 'weir_outbox_depth')) === 0, 5000, 'an empty outbox');
  } finally {
    await weir.cleanup();
    if (broker) await broker.stop();
  }
});

test('https: K_CA_CERTS is trusted, and without it nothing goes out', async () => {
  const key = join(work, 'key.pem');
  const cert = join(work, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const pem = readFileSync(cert, 'utf8');
  const broker = await new Target().start(0, { key: readFileSync(key), cert: pem });
  const trusting = source(broker.url, { env: { K_CA_CERTS: pem } });
  const untrusting = source(broker.url);
  try {
    await trusting.start();
    await trusting.createNamespace('tls');
    const [hit] = await broker.until(1);
    assert.equal(hit.headers['ce-type'], 'io.weir.namespace.created');

    await untrusting.start();
    await untrusting.createNamespace('tls');
    await until(async () => (await metric(untrusting, 'weir_source_retries_total')) > 0, 5000, 'a failed attempt');
    assert.equal(broker.got.length, 1);
    assert.equal(await metric(untrusting, 'weir_outbox_depth'), 1);
  } finally {
    await trusting.cleanup();
    await untrusting.cleanup();
    await broker.stop();
  }
});

test('bad source settings stop weir at start with the setting named', async () => {
  for (const [env, args, named] of [
    [{ K_CE_OVERRIDES: '{"extensions":' }, ['--source-sink', 'http://127.0.0.1:9/'],
      'K_CE_OVERRIDES: not valid JSON: unexpected end of text at byte 14'],
    [{ K_CE_OVERRIDES: '{"extensions":{"id":"x"}}' }, ['--source-sink', 'http://127.0.0.1:9/'], 'K_CE_OVERRIDES'],
    [{ K_CE_OVERRIDES: '{"extensions":{"weirnamespace":"x"}}' }, ['--source-sink', 'http://127.0.0.1:9/'], 'cannot be overridden'],
    [{ K_SINK: 'ftp://127.0.0.1/' }, [], 'K_SINK'],
  ]) {
    const weir = new Weir({ args, env });
    try {
      await assert.rejects(weir.start(), /weir exited with 1/);
      assert.ok(weir.logs.some((l) => l.includes(named)), weir.logs.join('\n'));
    } finally {
      await weir.cleanup();
    }
  }
});

test('a second weir on the same data directory stops at its start: it would send every event again', async () => {
  const broker = await new Target().start();
  const dataDir = mkdtempSync(join(work, 'data-'));
  const first = source(broker.url, { dataDir });
  const second = source(broker.url, { dataDir });
  try {
    await first.start();
    await assert.rejects(second.start(), /weir exited with 1/);
    assert.ok(second.logs.some((l) => l.includes('in use by another weir process')), second.logs.join('\n'));
    await first.createNamespace('one');
    await broker.until(1);
    await first.stop();
    await second.start(); // the lock goes with the first process
    await second.createNamespace('two');
    await broker.until(2);
    assert.deepEqual(broker.got.map((g) => g.headers['ce-weirnamespace']), ['one', 'two']);
  } finally {
    await first.cleanup();
    await second.cleanup();
    rmSync(dataDir, { recursive: true, force: true });
    await broker.stop();
  }
});
