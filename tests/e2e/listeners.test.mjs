// Listeners and delivery: each mode, glob and dialect filters, `and` sets and their lifespan,
// retries with their delays, dead letters, replies and their loop guard, a crash with
// deliveries pending, and the refusal of invalid listeners. Targets are node servers on
// loopback started by each test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { Weir } from './lib/weir.mjs';
import { Target } from './lib/target.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function send(weir, ns, { id, type, subject, source = '/test', data = '{"n":1}', extra = {} }) {
  const headers = { 'ce-specversion': '1.0', 'ce-id': id, 'ce-source': source, 'ce-type': type,
    'content-type': 'application/json', ...extra };
  if (subject !== undefined) headers['ce-subject'] = subject;
  const res = await fetch(`${weir.sink}/${ns}`, { method: 'POST', headers, body: data });
  assert.equal(res.status, 202, await res.text());
}

async function listen(weir, ns, spec) {
  const res = await fetch(`${weir.api}/api/v2/namespaces/${ns}/events/listeners`, {
    method: 'POST', body: JSON.stringify(spec) });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  return body;
}

async function state(weir, ns, id) {
  const res = await fetch(`${weir.api}/api/v2/namespaces/${ns}/events/listeners/${id}`);
  assert.equal(res.status, 200);
  return (await res.json()).state;
}

// Runs fn with a started weir holding namespace `demo`, and targets to stop afterwards.
async function withWeir(fn, weir = new Weir()) {
  const targets = [];
  const target = async (answer, port) => { const t = await new Target(answer).start(port); targets.push(t); return t; };
  try {
    await weir.start();
    await weir.createNamespace('demo');
    await fn(weir, target);
  } finally {
    await Promise.all(targets.map((t) => t.stop()));
    await weir.cleanup();
  }
}

test('simple: delivers in binary mode with encoded headers; globs choose', () => withWeir(async (weir, target) => {
  const t = await target();
  await listen(weir, 'demo', { mode: 'simple', events: [{ type: 'a', context: { subject: 'x*', source: '/t*' } }], sink: t.url });
  await send(weir, 'demo', { id: 'no', type: 'a', subject: 'yz' });
  await send(weir, 'demo', { id: 'other-type', type: 'b', subject: 'xyz' });
  // sent percent-encoded (fetch sends header bytes as latin1), decoded once on the way in
  await send(weir, 'demo', { id: '1', type: 'a', subject: 'x%20100%25%20caf%C3%A9', data: '{"hi":1}' });
  const [hit] = await t.until(1);
  assert.equal(hit.headers['ce-id'], '1');
  assert.equal(hit.headers['ce-subject'], 'x%20100%25%20caf%C3%A9');
  assert.equal(hit.headers['content-type'], 'application/json');
  assert.equal(hit.headers.prefer, 'reply');
  assert.equal(hit.body, '{"hi":1}');
  await sleep(300);
  assert.equal(t.got.length, 1);
}));

test('xor: any of its types; a duplicate event is delivered once', () => withWeir(async (weir, target) => {
  const t = await target();
  await listen(weir, 'demo', { mode: 'xor', events: [{ type: 'a' }, { type: 'b' }], sink: t.url });
  await send(weir, 'demo', { id: '1', type: 'a' });
  await send(weir, 'demo', { id: '2', type: 'b' });
  await send(weir, 'demo', { id: '2', type: 'b' });
  await send(weir, 'demo', { id: '3', type: 'c' });
  await t.until(2);
  await sleep(300);
  assert.deepEqual(t.got.map((h) => h.headers['ce-id']).sort(), ['1', '2']);
}));

test('Knative filter dialects', () => withWeir(async (weir, target) => {
  const t = await target();
  const filters = [
    { exact: { source: '/test' } },
    { prefix: { subject: 'ord' } },
    { suffix: { subject: '-eu' } },
    { any: [{ exact: { region: 'a' } }, { exact: { region: 'b' } }] },
    { not: { exact: { region: 'b' } } },
    { cesql: "LENGTH(subject) > 6 AND subject LIKE 'order%'" },
    // accepted as Knative accepts them, and with no say, as in Knative's broker
    { all: [] },
    { any: [] },
    { any: [{ all: [] }, { exact: { type: 'a' } }] },
  ];
  await listen(weir, 'demo', { mode: 'simple', events: [{ type: 'a', filters }], sink: t.url });
  const ok = { type: 'a', subject: 'order-eu', extra: { 'ce-region': 'a' } };
  await send(weir, 'demo', { ...ok, id: 'wrong-region', extra: { 'ce-region': 'b' } });
  await send(weir, 'demo', { ...ok, id: 'no-region', extra: {} });
  await send(weir, 'demo', { ...ok, id: 'wrong-suffix', subject: 'order-us' });
  await send(weir, 'demo', { ...ok, id: 'wrong-source', source: '/else' });
  await send(weir, 'demo', { ...ok, id: 'match' });
  await t.until(1);
  await sleep(300);
  assert.deepEqual(t.got.map((h) => h.headers['ce-id']), ['match']);
}));

test('and: one event per set once all types are in, correlated; expired members drop', () => withWeir(async (weir, target) => {
  const t = await target();
  const l = await listen(weir, 'demo', { mode: 'and', events: [{ type: 'a' }, { type: 'b' }],
    correlate: ['subject'], lifespan: 'PT1S', sink: t.url });
  await send(weir, 'demo', { id: '1', type: 'a', subject: 'k1', data: '{"from":"a"}' });
  await send(weir, 'demo', { id: '2', type: 'b', subject: 'k2' });
  const st = await state(weir, 'demo', l.id);
  assert.equal(st.collected.length, 2);
  await send(weir, 'demo', { id: '3', type: 'b', subject: 'k1', data: '{"from":"b"}' });
  const [hit] = await t.until(1);
  assert.equal(hit.headers['ce-type'], 'io.weir.listener.and');
  assert.equal(hit.headers['ce-source'], `/weir/namespaces/demo/listeners/${l.id}`);
  const set = JSON.parse(hit.body);
  assert.deepEqual(Object.keys(set).sort(), ['a', 'b']);
  assert.deepEqual(set.a.data, { from: 'a' });
  assert.equal(set.b.id, '3');
  // k2's b is now older than the lifespan: an a for k2 does not complete the set.
  await sleep(1300);
  await send(weir, 'demo', { id: '4', type: 'a', subject: 'k2' });
  await sleep(400);
  assert.equal(t.got.length, 1);
  await send(weir, 'demo', { id: '5', type: 'b', subject: 'k2' });
  await t.until(2);
}));

test('retries: a target that fails twice then succeeds gets exactly three attempts, backed off', () => withWeir(async (weir, target) => {
  const t = await target((hit, n) => ({ status: n <= 2 ? 503 : 200 }));
  const l = await listen(weir, 'demo', { mode: 'simple', events: [{ type: 'a' }], sink: t.url,
    delivery: { retry: 3, backoffPolicy: 'exponential', backoffDelay: 'PT0.2S' } });
  await send(weir, 'demo', { id: '1', type: 'a' });
  const hits = await t.until(3);
  const gaps = [hits[1].at - hits[0].at, hits[2].at - hits[1].at];
  // exponential: the nth retry waits 0.2 s * 2^(n-1)
  assert.ok(Math.abs(gaps[0] - 200) < 150, `first wait ${gaps[0]} ms`);
  assert.ok(Math.abs(gaps[1] - 400) < 150, `second wait ${gaps[1]} ms`);
  await sleep(1000);
  assert.equal(t.got.length, 3);
  const st = await state(weir, 'demo', l.id);
  assert.equal(st.delivered, 1);
  assert.equal(st.pending, 0);
}));

test('a 400 goes to the dead-letter sink at once, with the Knative error extensions', () => withWeir(async (weir, target) => {
  const t = await target(() => ({ status: 400, body: 'bad thing' }));
  const dls = await target();
  const l = await listen(weir, 'demo', { mode: 'simple', events: [{ type: 'a' }], sink: t.url,
    delivery: { retry: 5, backoffDelay: 'PT0.1S', deadLetterSink: dls.url } });
  await send(weir, 'demo', { id: '1', type: 'a' });
  const [dead] = await dls.until(1);
  assert.equal(t.got.length, 1);
  assert.equal(dead.headers['ce-id'], '1');
  assert.equal(dead.headers['ce-knativeerrordest'], t.url);
  assert.equal(dead.headers['ce-knativeerrorcode'], '400');
  assert.equal(Buffer.from(decodeURIComponent(dead.headers['ce-knativeerrordata']), 'base64').toString(), 'bad thing');
  await sleep(300);
  const st = await state(weir, 'demo', l.id);
  assert.equal(st.dead_lettered, 1);
  assert.equal(st.pending, 0);
  assert.ok(weir.logs.some((x) => x.includes('dead-letter sink') && x.includes('answered 400')));
}));

test('a dead-letter sink that fails once still gets the error of the target, not its own', () => withWeir(async (weir, target) => {
  const t = await target(() => ({ status: 400, body: 'bad thing' }));
  const dls = await target((hit, n) => (n === 1 ? { status: 503, body: 'dead-letter sink down' } : { status: 202 }));
  const l = await listen(weir, 'demo', { mode: 'simple', events: [{ type: 'a' }], sink: t.url,
    delivery: { retry: 2, backoffDelay: 'PT0.1S', deadLetterSink: dls.url } });
  await send(weir, 'demo', { id: '1', type: 'a' });
  const hits = await dls.until(2);
  for (const hit of hits) {
    assert.equal(hit.headers['ce-knativeerrordest'], t.url);
    assert.equal(hit.headers['ce-knativeerrorcode'], '400');
    assert.equal(Buffer.from(decodeURIComponent(hit.headers['ce-knativeerrordata']), 'base64').toString(), 'bad thing');
  }
  await sleep(300);
  assert.equal(t.got.length, 1);
  const st = await state(weir, 'demo', l.id);
  assert.equal(st.dead_lettered, 1);
  assert.equal(st.pending, 0);
}));

test('the log line of a failed delivery says why a target gave no answer', () => withWeir(async (weir, target) => {
  const probe = await new Target().start();
  const closed = probe.url;
  await probe.stop();
  const hung = [];
  const server = http.createServer((req, res) => { req.resume(); hung.push(res); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    await listen(weir, 'demo', { mode: 'simple', events: [{ type: 'refused' }], sink: closed, delivery: { retry: 0 } });
    await listen(weir, 'demo', { mode: 'simple', events: [{ type: 'slow' }],
      sink: `http://127.0.0.1:${server.address().port}/`, delivery: { retry: 0, timeout: 'PT0.3S' } });
    await send(weir, 'demo', { id: '1', type: 'refused' });
    await send(weir, 'demo', { id: '2', type: 'slow' });
    const failed = (what) => weir.logs.filter((x) => x.includes('failed after 1 attempts') && x.includes(what));
    for (let i = 0; i < 50 && (failed(closed).length === 0 || hung.length === 0 || failed('timed out').length === 0); i++) await sleep(100);
    const [refusedLine] = failed(closed);
    assert.ok(refusedLine, weir.logs.join('\n'));
    assert.match(JSON.parse(refusedLine).msg, /did not answer: .*(connect|refused)/i);
    const [slowLine] = failed('timed out');
    assert.ok(slowLine, weir.logs.join('\n'));
    assert.match(JSON.parse(slowLine).msg, /did not answer: .*timed out/i);
    assert.ok(!weir.logs.some((x) => x.includes('answered 0')));
  } finally {
    for (const res of hung) res.destroy();
    server.closeAllConnections();
    server.close();
  }
}));

// Of an answer that cannot be a reply only the first KiB is kept (enough for knativeerrordata):
// many attempts in flight whose targets answer with large bodies must not hold them whole.
test('large error answers are not held in memory, and the dead letter gets their first KiB', () => withWeir(async (weir, target) => {
  const size = 600 * 1024;
  const body = Buffer.alloc(size, 'x');
  body.write('trouble: ');
  const held = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(503, { 'content-length': size });
      res.write(body.subarray(0, size - 1));
      // the last byte comes later, so that many bodies are being read at once
      held.push(setTimeout(() => res.end(body.subarray(size - 1)), 1500));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const hwm = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${weir.proc.pid}/status`, 'utf8'))[1]);
  try {
    const dls = await target();
    await listen(weir, 'demo', { mode: 'simple', events: [{ type: 'big' }], sink: `http://127.0.0.1:${server.address().port}/`,
      delivery: { retry: 0, deadLetterSink: dls.url } });
    const n = 60;
    const before = hwm();
    await Promise.all(Array.from({ length: n }, (_, i) => send(weir, 'demo', { id: `b${i}`, type: 'big' })));
    const hits = await dls.until(n, 30000);
    const grown = hwm() - before;
    assert.ok(grown < 20 * 1024, `resident memory grew by ${grown} kB`);
    const data = Buffer.from(decodeURIComponent(hits[0].headers['ce-knativeerrordata']), 'base64');
    assert.equal(data.length, 1024);
    assert.equal(data.toString(), body.subarray(0, 1024).toString());
    assert.equal(hits[0].headers['ce-knativeerrorcode'], '503');
  } finally {
    held.forEach(clearTimeout);
    server.closeAllConnections();
    server.close();
  }
// Under AddressSanitizer freed memory waits in a quarantine, which would count here as held.
}, new Weir({ env: { ASAN_OPTIONS: [process.env.ASAN_OPTIONS, 'quarantine_size_mb=0'].filter(Boolean).join(':') } })));

test('a reply enters the namespace and wakes listeners; the hop limit stops loops', () => withWeir(async (weir, target) => {
  const replier = await target((hit) => ({ status: 200, body: '{"r":1}', headers: {
    'ce-specversion': '1.0', 'ce-id': `r-${hit.headers['ce-id']}`, 'ce-source': '/replier',
    'ce-type': 'reply', 'content-type': 'application/json' } }));
  const next = await target();
  await listen(weir, 'demo', { mode: 'simple', events: [{ type: 'a' }], sink: replier.url });
  await listen(weir, 'demo', { mode: 'simple', events: [{ type: 'reply' }], sink: next.url });
  await send(weir, 'demo', { id: '1', type: 'a' });
  const [hit] = await next.until(1);
  assert.equal(hit.headers['ce-id'], 'r-1');
  assert.equal(hit.headers['ce-weirhops'], '1');
  const stored = (await weir.history('demo')).find((i) => i.event.id === 'r-1');
  assert.ok(stored, 'the reply is in the history');

  // A target that answers every `loop` event with a new `loop` event: stopped at 8 hops.
  let n = 0;
  const looper = await target(() => ({ status: 200, headers: { 'ce-specversion': '1.0',
    'ce-id': `loop-${++n}`, 'ce-source': '/looper', 'ce-type': 'loop' } }));
  await listen(weir, 'demo', { mode: 'simple', events: [{ type: 'loop' }], sink: looper.url });
  await send(weir, 'demo', { id: 'start', type: 'loop' });
  await looper.until(9);
  await sleep(500);
  assert.equal(looper.got.length, 9);
  assert.ok(weir.logs.some((x) => x.includes('replies deep')));
}));

test('kill -9 with deliveries pending: every matched event reaches its target after restart', async () => {
  const weir = new Weir();
  let t = null;
  try {
    await weir.start();
    await weir.createNamespace('demo');
    // A port nobody listens on yet: every attempt is refused, so deliveries stay pending.
    const probe = await new Target().start();
    const port = probe.port;
    await probe.stop();
    await listen(weir, 'demo', { mode: 'simple', events: [{ type: 'a' }], sink: `http://127.0.0.1:${port}/`,
      delivery: { retry: 50, backoffPolicy: 'linear', backoffDelay: 'PT0.2S' } });
    const ids = Array.from({ length: 50 }, (_, i) => `e${i}`);
    await Promise.all(ids.map((id) => send(weir, 'demo', { id, type: 'a' })));
    await weir.stop('SIGKILL');
    t = await new Target().start(port);
    await weir.start();
    await t.until(50, 20000);
    await sleep(500);
    const got = new Set(t.got.map((h) => h.headers['ce-id']));
    assert.deepEqual([...ids].filter((id) => !got.has(id)), []);
  } finally {
    if (t) await t.stop();
    await weir.cleanup();
  }
});

// A target that never answers holds its deliveries in flight until their timeout. Many of
// them, on the same host as a healthy one (as triggers share a broker's ingress), must leave
// that one its room: a target never tried gets one attempt, and once its attempts go without an
// answer for --delivery-stall it takes only from the stalled share.
test('hung targets, however many and on the same host too, do not hold up a healthy one', async () => {
  const hung = [];
  const ok = [];
  const server = http.createServer((req, res) => {
    req.resume();
    if (req.url.startsWith('/hang')) { hung.push(res); return; }
    req.on('end', () => { ok.push(req.headers['ce-id']); res.writeHead(202); res.end(); });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  const stalledShare = 40;
  const weir = new Weir({ args: ['--system-events=false', '--delivery-stall=1', `--delivery-stalled-inflight=${stalledShare}`] });
  const hungTargets = 30;
  try {
    await weir.start();
    await weir.createNamespace('fair');
    for (let i = 0; i < hungTargets; i++) {
      await listen(weir, 'fair', { mode: 'simple', events: [{ type: 'h' }], sink: `${base}/hang/${i}`, delivery: { timeout: 'PT30S' } });
    }
    await listen(weir, 'fair', { mode: 'simple', events: [{ type: 'ok' }], sink: `${base}/ok` });
    const batch = (type, n, from = 0) => JSON.stringify(Array.from({ length: n }, (_, i) => ({ specversion: '1.0', id: `${type}${from + i}`, source: '/fair', type })));
    const post = (body) => fetch(`${weir.sink}/fair`, { method: 'POST', body, headers: { 'content-type': 'application/cloudevents-batch+json' } });
    const okWithin = async (n, ms) => {
      const t0 = Date.now();
      while (ok.length < n && Date.now() - t0 < ms) await sleep(50);
      assert.equal(ok.length, n, `the healthy target got ${ok.length} of ${n} while ${hung.length} requests hung`);
    };
    const metric = async (name) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(await (await fetch(`${weir.api}/metrics`)).text())[1]);

    // 200 events for each hung target: one first attempt each, then the stalled share.
    assert.equal((await post(batch('h', 200))).status, 202);
    for (let i = 0; i < 100 && hung.length < hungTargets; i++) await sleep(50);
    assert.equal(hung.length, hungTargets, 'one first attempt per target never tried');
    assert.equal((await post(batch('ok', 20))).status, 202);
    await okWithin(20, 5000);

    // Past the stall time the hung targets share --delivery-stalled-inflight, no more.
    await sleep(2500);
    assert.ok(hung.length > hungTargets, `${hung.length} hung requests: the stalled share is used`);
    assert.ok(hung.length <= hungTargets + stalledShare, `${hung.length} hung requests`);
    assert.ok(await metric('weir_delivery_stalled_in_flight') <= stalledShare);
    assert.equal((await post(batch('ok', 200, 20))).status, 202);
    await okWithin(220, 5000);
    assert.ok(hung.length <= hungTargets + stalledShare, `${hung.length} hung requests`);
  } finally {
    for (const res of hung) res.destroy();
    server.closeAllConnections();
    server.close();
    await weir.cleanup();
  }
});

test('--reply-max-hops sets the reply loop guard', () => withWeir(async (weir, target) => {
  let n = 0;
  const looper = await target(() => ({ status: 200, headers: { 'ce-specversion': '1.0',
    'ce-id': `loop-${++n}`, 'ce-source': '/looper', 'ce-type': 'loop' } }));
  await listen(weir, 'demo', { mode: 'simple', events: [{ type: 'loop' }], sink: looper.url });
  await send(weir, 'demo', { id: 'start', type: 'loop' });
  await looper.until(3);
  await sleep(500);
  assert.equal(looper.got.length, 3);
}, new Weir({ args: ['--reply-max-hops=2'] })));

test('--delivery-per-host caps the attempts to one host:port across listeners', async () => {
  const hung = [];
  const server = http.createServer((req, res) => { req.resume(); hung.push(res); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  const weir = new Weir({ args: ['--system-events=false', '--delivery-per-host=3'] });
  try {
    await weir.start();
    await weir.createNamespace('host');
    for (let i = 0; i < 5; i++) {
      await listen(weir, 'host', { mode: 'simple', events: [{ type: 'h' }], sink: `${base}/l${i}`, delivery: { timeout: 'PT30S' } });
    }
    await send(weir, 'host', { id: '1', type: 'h' });
    await send(weir, 'host', { id: '2', type: 'h' });
    for (let i = 0; i < 40 && hung.length < 3; i++) await sleep(50);
    await sleep(500);
    assert.equal(hung.length, 3);
  } finally {
    for (const res of hung) res.destroy();
    server.closeAllConnections();
    server.close();
    await weir.cleanup();
  }
});

test('bad delivery settings are refused at start', async () => {
  for (const args of [['--delivery-inflight=1'], ['--delivery-per-target=0'], ['--delivery-stall=0'],
    ['--delivery-inflight=100', '--delivery-stalled-inflight=100'], ['--reply-max-hops=1001']]) {
    const weir = new Weir({ args });
    try {
      await assert.rejects(weir.start(), /weir exited with 2/, args.join(' '));
    } finally {
      await weir.cleanup();
    }
  }
});

test('past --delivery-pending-max the listener with the most gives up its oldest; others keep theirs', async () => {
  const probe = await new Target().start();
  const closed = probe.url;
  await probe.stop();
  const weir = new Weir({ args: ['--system-events=false', '--delivery-pending-max=100'] });
  try {
    await weir.start();
    await weir.createNamespace('demo');
    const delivery = { retry: 50, backoffPolicy: 'linear', backoffDelay: 'PT10S' };
    const keep = await listen(weir, 'demo', { mode: 'simple', events: [{ type: 'keep' }], sink: closed, delivery });
    const pile = await listen(weir, 'demo', { mode: 'simple', events: [{ type: 'pile' }], sink: closed, delivery });
    for (let i = 0; i < 20; i++) await send(weir, 'demo', { id: `k${i}`, type: 'keep' });
    for (let i = 0; i < 150; i++) await send(weir, 'demo', { id: `p${i}`, type: 'pile' });
    const kept = await state(weir, 'demo', keep.id);
    assert.equal(kept.pending, 20);
    assert.equal(kept.failed, 0);
    const piled = await state(weir, 'demo', pile.id);
    assert.ok(piled.pending <= 80 && piled.pending >= 79, `${piled.pending} pending`);
    assert.equal(piled.failed, 150 - piled.pending);
    const metrics = await (await fetch(`${weir.api}/metrics`)).text();
    assert.match(metrics, new RegExp(`^weir_delivery_dropped_total ${piled.failed}$`, 'm'));
    assert.match(metrics, new RegExp(`^weir_delivery_queue_depth ${20 + piled.pending}$`, 'm'));
    assert.ok(weir.logs.some((x) => x.includes(`pending deliveries of listener ${pile.id}`) && x.includes('limit of 100')));
    // every event is still in the history
    assert.equal((await weir.history('demo')).length, 170);
  } finally {
    await weir.cleanup();
  }
});

test('SIGTERM drains deliveries in flight and exits cleanly', () => withWeir(async (weir, target) => {
  const t = await target();
  await listen(weir, 'demo', { mode: 'simple', events: [{ type: 'a' }], sink: t.url });
  await Promise.all(Array.from({ length: 20 }, (_, i) => send(weir, 'demo', { id: `s${i}`, type: 'a' })));
  const exit = await weir.stop('SIGTERM');
  assert.equal(exit.code, 0, weir.logs.join('\n'));
}));

test('invalid listeners are refused with 400 naming the field, and nothing is stored', () => withWeir(async (weir) => {
  const sink = 'http://127.0.0.1:1/';
  const ok = { mode: 'simple', events: [{ type: 'a' }], sink };
  const cases = [
    [{ ...ok, mode: 'nand' }, 'mode'],
    [{ ...ok, events: [] }, 'events'],
    [{ ...ok, events: [{ type: 'a' }, { type: 'b' }] }, 'events'],
    [{ ...ok, events: [{}] }, 'events[0].type'],
    [{ ...ok, events: [{ type: 'a', color: 'red' }] }, 'events[0].color'],
    [{ ...ok, events: [{ type: 'a', context: { Subject: 'x' } }] }, 'events[0].context.Subject'],
    [{ ...ok, events: [{ type: 'a', context: { subject: 1 } }] }, 'events[0].context.subject'],
    [{ ...ok, events: [{ type: 'a', filters: [{ exact: { a: 'x' }, prefix: { a: 'y' } }] }] }, 'events[0].filters[0]'],
    [{ ...ok, events: [{ type: 'a', filters: [{ regex: { a: 'x' } }] }] }, 'events[0].filters[0].regex'],
    [{ ...ok, events: [{ type: 'a', filters: [{ cesql: 'subject =' }] }] }, 'events[0].filters[0].cesql'],
    [{ ...ok, events: [{ type: 'a', filters: [{ exact: { a: 'x', b: 'y' } }] }] }, 'events[0].filters[0].exact'],
    [{ ...ok, events: [{ type: 'a', filters: [{ any: [{ suffix: { a: 'x', b: 'y' } }] }] }] }, 'events[0].filters[0].any[0].suffix'],
    [{ ...ok, events: [{ type: 'a', filters: [{ prefix: { '1a': 'x' } }] }] }, 'events[0].filters[0].prefix'],
    [{ ...ok, lifespan: 'PT1M' }, 'lifespan'],
    [{ mode: 'and', events: [{ type: 'a' }, { type: 'b' }], sink }, 'lifespan'],
    [{ mode: 'and', events: [{ type: 'a' }, { type: 'a' }], lifespan: 'PT1M', sink }, 'events'],
    [{ mode: 'and', events: [{ type: 'a' }, { type: 'b' }], lifespan: 'PT1M', correlate: ['X'], sink }, 'correlate'],
    [{ ...ok, sink: 'ftp://x/' }, 'sink'],
    [{ ...ok, sink: undefined }, 'sink'],
    [{ ...ok, delivery: { retry: -1 } }, 'delivery.retry'],
    [{ ...ok, delivery: { backoffPolicy: 'random' } }, 'delivery.backoffPolicy'],
    [{ ...ok, delivery: { backoffDelay: '2s' } }, 'delivery.backoffDelay'],
    [{ ...ok, delivery: { timeout: 'PT0S' } }, 'delivery.timeout'],
    [{ ...ok, delivery: { deadLetterSink: 'nope' } }, 'delivery.deadLetterSink'],
    [{ ...ok, sink: 'http://user:secret@127.0.0.1:1/' }, 'sink'],
    [{ ...ok, delivery: { deadLetterSink: 'https://user:secret@127.0.0.1:1/' } }, 'delivery.deadLetterSink'],
    [{ ...ok, delivery: { retries: 3 } }, 'delivery.retries'],
    [{ ...ok, owner: 'me' }, 'owner'],
  ];
  for (const [spec, attr] of cases) {
    const res = await fetch(`${weir.api}/api/v2/namespaces/demo/events/listeners`, { method: 'POST', body: JSON.stringify(spec) });
    assert.equal(res.status, 400, JSON.stringify(spec));
    assert.match(res.headers.get('content-type'), /application\/problem\+json/);
    const problem = await res.json();
    assert.equal(problem.attribute, attr, JSON.stringify(spec));
    assert.ok(!JSON.stringify(problem).includes('secret'), JSON.stringify(problem));
  }
  const bad = await fetch(`${weir.api}/api/v2/namespaces/demo/events/listeners`, { method: 'POST', body: '{' });
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).detail, 'the body: not valid JSON: expected a member name at byte 1');
  const list = await (await fetch(`${weir.api}/api/v2/namespaces/demo/events/listeners`)).json();
  assert.deepEqual(list, { items: [], next_cursor: null });
}));

test('listing pages with a cursor; delete removes; unknown ids and namespaces are 404', () => withWeir(async (weir) => {
  const spec = { mode: 'simple', events: [{ type: 'a' }], sink: 'http://127.0.0.1:1/' };
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push((await listen(weir, 'demo', spec)).id);
  const base = `${weir.api}/api/v2/namespaces/demo/events/listeners`;
  const p1 = await (await fetch(`${base}?limit=2`)).json();
  assert.equal(p1.items.length, 2);
  const p2 = await (await fetch(`${base}?limit=2&cursor=${p1.next_cursor}`)).json();
  assert.equal(p2.items.length, 1);
  assert.equal(p2.next_cursor, null);
  assert.deepEqual([...p1.items, ...p2.items].map((l) => l.id).sort(), ids.sort());
  assert.equal((await fetch(`${base}/${ids[0]}`, { method: 'DELETE' })).status, 204);
  assert.equal((await fetch(`${base}/${ids[0]}`)).status, 404);
  assert.equal((await fetch(`${base}/${ids[0]}`, { method: 'DELETE' })).status, 404);
  assert.equal((await fetch(`${weir.api}/api/v2/namespaces/nope/events/listeners`)).status, 404);
  // listeners survive a restart
  await weir.stop();
  await weir.start();
  const after = await (await fetch(`${weir.api}/api/v2/namespaces/demo/events/listeners`)).json();
  assert.equal(after.items.length, 2);
}));
