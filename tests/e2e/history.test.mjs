// History against the real binary: paging under concurrent writes, filters, page bounds, the
// live stream (server-sent events) with reconnection, heartbeats, gaps, slow clients and
// shutdown, replay, retention, and the refusal of bad input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Weir } from './lib/weir.mjs';
import { SseClient } from './lib/sse.mjs';
import { Target } from './lib/target.mjs';

// Without system events, so that a namespace holds exactly the events a test sent.
const weir = new Weir({ args: ['--system-events=false', '--stream-heartbeat', '1', '--stream-write-timeout', '5', '--max-subscribers', '3'] });
before(() => weir.start());
after(() => weir.cleanup());

const api = (path, init) => fetch(`${weir.api}${path}`, init);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function problem(res, status, attribute) {
  assert.equal(res.status, status);
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  const body = await res.json();
  assert.equal(body.status, status);
  assert.equal(typeof body.title, 'string');
  assert.equal(typeof body.detail, 'string');
  assert.match(body.type, /^urn:weir:problem:/);
  if (attribute !== undefined) assert.equal(body.attribute, attribute);
  return body;
}

// Sends events (objects merged over a default event) in one batched request; returns the seqs.
async function send(target, ns, events) {
  const body = events.map((e) => ({ specversion: '1.0', source: '/hist', type: 'com.example.t', data: { n: 1 }, ...e }));
  const res = await fetch(`${target.api}/api/v2/namespaces/${ns}/events/broadcast`, {
    method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/cloudevents-batch+json' },
  });
  assert.equal(res.status, 202, await res.clone().text());
  return (await res.json()).events.map((e) => e.seq);
}

const ids = (prefix, from, to) => Array.from({ length: to - from }, (_, i) => ({ id: `${prefix}${from + i}` }));

// What a bad request must leave as it was: every namespace with its settings and its events.
async function snapshot(target = weir) {
  const list = await (await fetch(`${target.api}/api/v2/namespaces?limit=1000`)).json();
  const state = {};
  for (const { name } of list.items) {
    state[name] = { ns: await (await fetch(`${target.api}/api/v2/namespaces/${name}`)).json(), events: await target.history(name) };
  }
  return state;
}

function subscribe(ns, { after, lastId, target = weir } = {}) {
  const url = `${target.api}/api/v2/namespaces/${ns}/events/history/subscribe` + (after !== undefined ? `?after=${after}` : '');
  return new SseClient(url, lastId !== undefined ? { 'last-event-id': String(lastId) } : {});
}

// ---- paging and filters --------------------------------------------------------------------

test('paging visits every event exactly once while new events arrive', async () => {
  await weir.createNamespace('paging');
  for (let i = 0; i < 300; i += 100) await send(weir, 'paging', ids('p', i, i + 100));
  let writing = true;
  const writer = (async () => {
    for (let i = 0; writing && i < 50; i++) await send(weir, 'paging', ids(`w${i}-`, 0, 10));
  })();

  const seen = [];
  let cursor = '';
  for (let pages = 0; pages < 100; pages++) {
    const res = await api(`/api/v2/namespaces/paging/events/history?limit=13${cursor}`);
    assert.equal(res.status, 200);
    const page = await res.json();
    seen.push(...page.items);
    if (!page.next_cursor) break;
    cursor = `&cursor=${page.next_cursor}`;
    await sleep(5); // let the writer interleave
  }
  writing = false;
  await writer;

  const seqs = seen.map((i) => i.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => b - a), 'newest first, strictly');
  assert.equal(new Set(seqs).size, seqs.length, 'no event twice');
  const pIds = new Set(seen.map((i) => i.event.id).filter((id) => /^p\d+$/.test(id)));
  assert.equal(pIds.size, 300, 'every event stored before paging began');
});

test('each history filter narrows to exactly the matching events, also across pages', async () => {
  await weir.createNamespace('filters');
  const events = [];
  for (let i = 0; i < 40; i++) {
    events.push({ id: `f${i}`, type: i % 4 === 0 ? 'com.example.order.paid' : 'com.example.user.seen',
      source: `/shop/${i % 3}`, data: { note: i === 5 ? '50%_off' : i === 6 ? '50%off' : `plain${i}` } });
  }
  await send(weir, 'filters', events.slice(0, 20));
  await sleep(20);
  const mid = new Date().toISOString();
  await sleep(20);
  await send(weir, 'filters', events.slice(20));
  const all = await weir.history('filters'); // oldest first

  const query = async (q) => {
    const found = [];
    let cursor = '';
    for (;;) {
      const res = await api(`/api/v2/namespaces/filters/events/history?limit=3&${q}${cursor}`);
      assert.equal(res.status, 200, q);
      const page = await res.json();
      found.push(...page.items.map((i) => i.event.id));
      if (!page.next_cursor) return found.reverse();
      cursor = `&cursor=${page.next_cursor}`;
    }
  };
  const expect = (pred) => all.filter(pred).map((i) => i.event.id);
  const cases = [
    ['type=order', (i) => i.event.type.includes('order')],
    ['type=ORDER', () => false],
    ['source=%2Fshop%2F1', (i) => i.event.source === '/shop/1'],
    ['source=%2Fshop', () => false],
    ['type=user&source=%2Fshop%2F2', (i) => i.event.type.includes('user') && i.event.source === '/shop/2'],
    ['text=50%25_off', (i) => i.event.data.note === '50%_off'],
    ['text=plain1', (i) => String(i.event.data.note).startsWith('plain1')],
    [`from=${mid}`, (i) => i.received >= mid],
    [`until=${mid}`, (i) => i.received < mid],
    [`from=${mid}&type=order&source=%2Fshop%2F0`, (i) => i.received >= mid && i.event.type.includes('order') && i.event.source === '/shop/0'],
    // CESQL, with the Subscriptions API's rule: only a true without error keeps an event.
    [`cesql=${encodeURIComponent("type LIKE '%.order.%' AND source = '/shop/1'")}`,
      (i) => i.event.type.includes('.order.') && i.event.source === '/shop/1'],
    [`cesql=${encodeURIComponent("id IN ('f1', 'f2', 'f39') OR subject = 'none'")}`, (i) => ['f1', 'f2', 'f39'].includes(i.event.id)],
    [`cesql=${encodeURIComponent('INT(missing) = 1')}`, () => false],
    [`cesql=${encodeURIComponent("SUBSTRING(id, 2) = '7'")}&type=user`, (i) => i.event.id === 'f7'],
  ];
  for (const [q, pred] of cases) {
    assert.deepEqual(await query(q), expect(pred), q);
  }
  assert.equal(expect((i) => i.received >= mid).length, 20);
});

test('a page that holds the last event has no next_cursor', async () => {
  await weir.createNamespace('exact');
  await send(weir, 'exact', ids('x', 0, 3));
  let page = await (await api('/api/v2/namespaces/exact/events/history?limit=3')).json();
  assert.equal(page.items.length, 3);
  assert.equal(page.next_cursor, null);
  page = await (await api('/api/v2/namespaces/exact/events/history?limit=2')).json();
  assert.deepEqual(page.items.map((i) => i.event.id), ['x2', 'x1']);
  assert.equal(page.next_cursor, String(page.items[1].seq));
  page = await (await api(`/api/v2/namespaces/exact/events/history?limit=2&cursor=${page.next_cursor}`)).json();
  assert.deepEqual(page.items.map((i) => i.event.id), ['x0']);
  assert.equal(page.next_cursor, null);
});

// Sends one event whose data is a JSON string of `size` characters (binary mode).
async function sendBig(ns, id, size) {
  const res = await api(`/api/v2/namespaces/${ns}/events/broadcast`, {
    method: 'POST', body: JSON.stringify(id.padEnd(size, '.')),
    headers: { 'ce-specversion': '1.0', 'ce-id': id, 'ce-source': '/big', 'ce-type': 't.big', 'content-type': 'application/json' },
  });
  assert.equal(res.status, 202, await res.clone().text());
  return (await res.json()).events[0].seq;
}

test('a page of big events stops at 4 MiB, and paging still sees each event once', async () => {
  await weir.createNamespace('big');
  for (let i = 0; i < 10; i++) await sendBig('big', `big${i}`, 900 * 1000);
  const pages = [];
  let cursor = '';
  for (let n = 0; n < 20; n++) {
    const res = await api(`/api/v2/namespaces/big/events/history?limit=50${cursor}`);
    assert.equal(res.status, 200);
    const page = await res.json();
    pages.push(page.items.map((i) => i.event.id));
    if (!page.next_cursor) break;
    assert.equal(page.next_cursor, String(page.items.at(-1).seq));
    cursor = `&cursor=${page.next_cursor}`;
  }
  // 900 kB each: four fit in 4 MiB, a fifth would not.
  assert.deepEqual(pages.map((p) => p.length), [4, 4, 2]);
  assert.deepEqual(pages.flat(), Array.from({ length: 10 }, (_, i) => `big${9 - i}`));
  // One event bigger than the budget on its own still comes, alone.
  const page = await (await api('/api/v2/namespaces/big/events/history?limit=1')).json();
  assert.equal(page.items[0].event.data.length, 900 * 1000);
});

test('a filtered page examines at most 10000 events and goes on from where it stopped', async () => {
  await weir.createNamespace('haystack');
  await send(weir, 'haystack', [{ id: 'needle', data: { word: 'needle' } }]);
  for (let i = 0; i < 12000; i += 1000) await send(weir, 'haystack', ids('hay', i, i + 1000)); // 1000 a batch at most
  const H = '/api/v2/namespaces/haystack/events/history?text=needle';
  let page = await (await api(H)).json();
  assert.deepEqual(page.items, [], 'the newest 10000 hold no match');
  assert.notEqual(page.next_cursor, null);
  page = await (await api(`${H}&cursor=${page.next_cursor}`)).json();
  assert.deepEqual(page.items.map((i) => i.event.id), ['needle']);
  assert.equal(page.next_cursor, null);
  // Without a filter nothing is skipped: a full page at once.
  page = await (await api('/api/v2/namespaces/haystack/events/history?limit=1000')).json();
  assert.equal(page.items.length, 1000);
});

// ---- the live stream -----------------------------------------------------------------------

test('a stream killed mid-way and resumed with Last-Event-ID sees every event once, in order', async () => {
  await weir.createNamespace('live');
  const sent = [];
  const push = async (from, to) => {
    const batch = ids('l', from, to);
    sent.push(...batch.map((e) => e.id));
    await send(weir, 'live', batch);
  };
  await push(0, 50);

  const first = subscribe('live');
  const head = await first.open();
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-type'], 'text/event-stream');
  const writer = (async () => { for (let i = 50; i < 200; i += 10) { await push(i, i + 10); await sleep(10); } })();
  await first.until((c) => c.events().length >= 60);
  first.kill();
  const got = first.events();

  const second = subscribe('live', { lastId: first.lastId(), after: 3 }); // the header wins
  assert.equal((await second.open()).status, 200);
  await writer;
  await second.until((c) => got.length + c.events().length >= 200);
  await sleep(300); // nothing more may follow
  second.kill();
  const all = [...got, ...second.events()];

  assert.deepEqual(all.map((e) => e.event.id), sent);
  const seqs = all.map((e) => e.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  assert.equal(new Set(seqs).size, 200);
  // The data is the event as stored: the same as history shows.
  const stored = await weir.history('live');
  assert.deepEqual(all.map((e) => e.event), stored.map((i) => i.event));
});

test('?after= starts after a seq, and a stream of a quiet namespace gets heartbeats', async () => {
  await weir.createNamespace('quiet');
  const seqs = await send(weir, 'quiet', ids('q', 0, 5));
  const c = subscribe('quiet', { after: seqs[2] });
  assert.equal((await c.open()).status, 200);
  await c.until((x) => x.events().length === 2 && x.comments.filter((m) => m === 'keep-alive').length >= 2, 5000);
  assert.deepEqual(c.events().map((e) => e.event.id), ['q3', 'q4']);
  c.kill();
});

test('a data line per line of the stored JSON', async () => {
  await weir.createNamespace('lines');
  const res = await fetch(`${weir.api}/api/v2/namespaces/lines/events/broadcast`, {
    method: 'POST', body: '{\r\n  "a": 1,\n  "b": [2]\n}',
    headers: { 'ce-specversion': '1.0', 'ce-id': 'ml', 'ce-source': '/s', 'ce-type': 't', 'content-type': 'application/json' },
  });
  assert.equal(res.status, 202);
  const c = subscribe('lines');
  await c.open();
  await c.until((x) => x.events().length === 1);
  c.kill();
  assert.deepEqual(c.events()[0].event.data, { a: 1, b: [2] });
});

// Resolves once the server has let go of every live stream of the earlier tests.
async function streamsClosed() {
  for (let i = 0; i < 50; i++) {
    const text = await (await api('/metrics')).text();
    if (/^weir_live_streams 0$/m.test(text)) return;
    await sleep(100);
  }
  assert.fail('live streams still open after 5 s');
}

test('subscribers are capped, and a freed slot can be taken again', async () => {
  await weir.createNamespace('capped');
  await streamsClosed();
  const open = [];
  for (let i = 0; i < 3; i++) {
    const c = subscribe('capped');
    assert.equal((await c.open()).status, 200);
    open.push(c);
  }
  const refused = subscribe('capped');
  const head = await refused.open();
  assert.equal(head.status, 503);
  assert.equal(head.headers['retry-after'], '1');
  assert.equal(JSON.parse(head.body).status, 503);
  open.pop().kill();
  let again;
  for (let i = 0; i < 50; i++) { // the server notices the closed socket at its next write
    again = subscribe('capped');
    if ((await again.open()).status === 200) break;
    await sleep(100);
  }
  assert.equal(again.res.statusCode, 200);
  again.kill();
  for (const c of open) c.kill();
  await streamsClosed();
});

test('deleting the namespace ends its streams with a reason', async () => {
  await weir.createNamespace('doomed');
  const c = subscribe('doomed');
  await c.open();
  assert.equal((await api('/api/v2/namespaces/doomed', { method: 'DELETE' })).status, 204);
  await c.until((x) => x.ended, 5000);
  assert.deepEqual(c.messages.at(-1), { id: undefined, event: 'closed', data: '{"reason":"namespace-deleted"}' });
});

// The open live streams, as /metrics counts them.
async function liveStreams(target) {
  const text = await (await fetch(`${target.api}/metrics`)).text();
  return Number(/^weir_live_streams (\d+)$/m.exec(text)[1]);
}

test('a client that stops reading is cut off after the write timeout; the others go on', async () => {
  const w = new Weir({ args: ['--system-events=false', '--stream-write-timeout', '2', '--stream-heartbeat', '1'] });
  await w.start();
  try {
    await w.createNamespace('slow');
    // 12 events of 900 kB: more than the socket buffers of loopback hold.
    for (let i = 0; i < 12; i++) {
      const res = await fetch(`${w.api}/api/v2/namespaces/slow/events/broadcast`, {
        method: 'POST', body: JSON.stringify(`s${i}`.padEnd(900 * 1000, '.')),
        headers: { 'ce-specversion': '1.0', 'ce-id': `s${i}`, 'ce-source': '/slow', 'ce-type': 't', 'content-type': 'application/json' },
      });
      assert.equal(res.status, 202);
    }
    const healthy = subscribe('slow', { target: w });
    await healthy.open();

    // A raw client that reads the head and a little, then nothing more.
    const sock = net.connect(w.apiPort, '127.0.0.1');
    const chunks = [];
    let closed = false;
    sock.on('data', (c) => { chunks.push(c); if (chunks.length === 1) sock.pause(); });
    sock.on('close', () => { closed = true; });
    sock.write('GET /api/v2/namespaces/slow/events/history/subscribe HTTP/1.1\r\nHost: weir\r\nAccept: text/event-stream\r\n\r\n');
    for (let i = 0; i < 50 && await liveStreams(w) !== 2; i++) await sleep(20);
    assert.equal(await liveStreams(w), 2);
    const t0 = Date.now();
    await healthy.until((x) => x.events().length === 12, 20000);
    while (await liveStreams(w) !== 1) {
      assert.ok(Date.now() - t0 < 8000, 'the stalled stream is still open');
      await sleep(100);
    }
    assert.ok(w.logs.some((l) => l.includes('"ns":"slow"') && l.includes('live stream cut off: the client did not read')));

    // Reading again, the client gets what the sockets held, then the end: not all 12 events.
    sock.resume();
    for (let i = 0; i < 100 && !closed; i++) await sleep(50);
    assert.ok(closed, 'the connection was closed');
    const text = Buffer.concat(chunks).toString('latin1');
    assert.match(text, /^HTTP\/1\.1 200/);
    assert.ok((text.match(/event: cloudevent/g) || []).length < 12);

    // The healthy stream and ingest are untouched.
    const [seq] = await send(w, 'slow', ids('after', 0, 1));
    await healthy.until((x) => x.events().length === 13);
    assert.equal(healthy.events().at(-1).seq, seq);
    healthy.kill();
  } finally {
    await w.cleanup();
  }
});

test('SIGTERM ends open streams at once, so the stop does not wait for the drain timeout', async () => {
  const w = new Weir({ args: ['--system-events=false', '--shutdown-timeout', '20'] });
  await w.start();
  try {
    await w.createNamespace('s');
    await send(w, 's', ids('s', 0, 3));
    const c = subscribe('s', { target: w });
    await c.open();
    await c.until((x) => x.events().length === 3);
    const t0 = Date.now();
    const exited = w.stop();
    await c.until((x) => x.ended, 5000);
    const { code } = await exited;
    assert.equal(code, 0);
    assert.ok(Date.now() - t0 < 5000, `stopped in ${Date.now() - t0} ms`);
    assert.deepEqual(c.messages.at(-1), { id: undefined, event: 'closed', data: '{"reason":"stopping"}' });
  } finally {
    await w.cleanup();
  }
});

test('a position above the newest seq is refused, the newest itself is fine', async () => {
  await weir.createNamespace('ahead');
  const [seq] = await send(weir, 'ahead', ids('a', 0, 1));
  const H = '/api/v2/namespaces/ahead/events/history/subscribe';
  const state = await snapshot();
  const newest = (await (await api('/api/v2/namespaces/ahead/events/history?limit=1')).json()).items[0].seq;
  assert.equal(newest, seq);
  let body = await problem(await api(H, { headers: { 'last-event-id': String(seq + 1000000) } }), 400, 'Last-Event-ID');
  assert.match(body.detail, /above the newest seq/);
  body = await problem(await api(`${H}?after=${seq + 1000000}`), 400, 'after');
  assert.match(body.detail, /above the newest seq/);
  assert.deepEqual(await snapshot(), state);

  const c = subscribe('ahead', { lastId: seq });
  assert.equal((await c.open()).status, 200);
  const [next] = await send(weir, 'ahead', ids('a', 1, 2));
  await c.until((x) => x.events().length === 1);
  assert.equal(c.events()[0].seq, next);
  c.kill();
});

test('a stream that resumes below what retention removed is told of the gap', async () => {
  const w = new Weir({ args: ['--system-events=false', '--retention-interval', '1'] });
  await w.start();
  try {
    const res = await fetch(`${w.api}/api/v2/namespaces/gappy`, { method: 'PUT', body: JSON.stringify({ retention: { max_count: 3 } }) });
    assert.equal(res.status, 201);
    const seqs = await send(w, 'gappy', ids('g', 0, 10));
    for (let i = 0; i < 60 && (await w.history('gappy')).length !== 3; i++) await sleep(100);
    assert.equal((await w.history('gappy')).length, 3);

    const resumed = subscribe('gappy', { lastId: seqs[1], target: w });
    await resumed.open();
    await resumed.until((x) => x.events().length === 3);
    resumed.kill();
    const gap = { reason: 'retention', after: seqs[1], through: seqs[6] };
    assert.deepEqual(resumed.messages.map((m) => m.event), ['gap', 'cloudevent', 'cloudevent', 'cloudevent']);
    assert.equal(resumed.messages[0].id, undefined);
    assert.deepEqual(JSON.parse(resumed.messages[0].data), gap);
    assert.deepEqual(resumed.events().map((e) => e.event.id), ['g7', 'g8', 'g9']);

    // From the oldest there is nothing to miss; above the removed ones, nothing was missed.
    for (const [opts, expect] of [[{}, ['g7', 'g8', 'g9']], [{ after: seqs[6] }, ['g7', 'g8', 'g9']], [{ after: seqs[8] }, ['g9']]]) {
      const c = subscribe('gappy', { ...opts, target: w });
      await c.open();
      await c.until((x) => x.events().length === expect.length);
      await sleep(200);
      c.kill();
      assert.deepEqual(c.messages.map((m) => m.event), expect.map(() => 'cloudevent'), JSON.stringify(opts));
      assert.deepEqual(c.events().map((e) => e.event.id), expect);
    }
  } finally {
    await w.cleanup();
  }
});

// ---- replay --------------------------------------------------------------------------------

test('replay answers 202 with the event and adds no history row', async () => {
  await weir.createNamespace('replay');
  const [s1, s2] = await send(weir, 'replay', [{ id: 'r/1', source: '/one' }, { id: 'r/1', source: '/two' }]);
  const before = await weir.history('replay');

  let res = await api('/api/v2/namespaces/replay/events/history/replay/r/1', { method: 'POST' });
  assert.equal(res.status, 202);
  assert.deepEqual(await res.json(), { namespace: 'replay', id: 'r/1', source: '/two', seq: s2, replayed: true });
  res = await api('/api/v2/namespaces/replay/events/history/replay/r/1?source=/one', { method: 'POST' });
  assert.equal(res.status, 202);
  assert.equal((await res.json()).seq, s1);

  assert.deepEqual(await weir.history('replay'), before);
  // A stream sees no replay: it is no new history row.
  const c = subscribe('replay', { after: s2 });
  await c.open();
  await api('/api/v2/namespaces/replay/events/history/replay/r/1', { method: 'POST' });
  await sleep(500);
  c.kill();
  assert.equal(c.events().length, 0);
});

test('a replay reaches the target of a listener that matches it, once more', async () => {
  const w = new Weir({ args: ['--system-events=false'] });
  const target = await new Target().start();
  await w.start();
  try {
    await w.createNamespace('again');
    const res = await fetch(`${w.api}/api/v2/namespaces/again/events/listeners`, {
      method: 'POST', body: JSON.stringify({ mode: 'simple', events: [{ type: 'com.example.t' }], sink: target.url }),
    });
    assert.equal(res.status, 201);
    const [seq] = await send(w, 'again', [{ id: 'once/more', data: { n: 7 } }, { id: 'other', type: 'com.example.other' }]);
    await target.until(1);

    const replay = await fetch(`${w.api}/api/v2/namespaces/again/events/history/replay/once/more`, { method: 'POST' });
    assert.equal(replay.status, 202);
    assert.equal((await replay.json()).seq, seq);
    const [first, second] = await target.until(2);
    for (const hit of [first, second]) {
      assert.equal(hit.headers['ce-id'], 'once/more');
      assert.equal(hit.headers['ce-type'], 'com.example.t');
      assert.deepEqual(JSON.parse(hit.body), { n: 7 });
    }
    // The event of another type matched nothing, then or now; no history row was added.
    await sleep(300);
    assert.equal(target.got.length, 2);
    assert.equal((await w.history('again')).length, 2);
  } finally {
    await target.stop();
    await w.cleanup();
  }
});

// ---- bad input -----------------------------------------------------------------------------

test('bad input is refused with the exact status and problem, and changes nothing', async () => {
  await weir.createNamespace('bad');
  await send(weir, 'bad', ids('b', 0, 3));
  const state = await snapshot();
  const H = '/api/v2/namespaces/bad/events/history';

  const cases = [
    [`${H}?limit=0`, {}, 400, 'limit'],
    [`${H}?limit=1001`, {}, 400, 'limit'],
    [`${H}?limit=99999999999999999999`, {}, 400, 'limit'],
    [`${H}?limit=-1`, {}, 400, 'limit'],
    [`${H}?limit=1e3`, {}, 400, 'limit'],
    [`${H}?cursor=abc`, {}, 400, 'cursor'],
    [`${H}?cursor=0`, {}, 400, 'cursor'],
    [`${H}?from=2024-02-30T00:00:00Z`, {}, 400, 'from'],
    [`${H}?until=now`, {}, 400, 'until'],
    [`${H}?cesql=${encodeURIComponent("type = 'a' AND")}`, {}, 400, 'cesql', 'at 15: unexpected end of expression'],
    [`${H}?cesql=${encodeURIComponent('NOPE(id)')}`, {}, 400, 'cesql', 'at 1: no function NOPE taking 1 arguments'],
    [`${H}/subscribe`, { headers: { 'last-event-id': 'abc' } }, 400, 'Last-Event-ID'],
    [`${H}/subscribe`, { headers: { 'last-event-id': '-1' } }, 400, 'Last-Event-ID'],
    [`${H}/subscribe`, { headers: { 'last-event-id': '99999999999999999999' } }, 400, 'Last-Event-ID'],
    [`${H}/subscribe?after=1.5`, {}, 400, 'after'],
    [`${H}/nothing-here`, {}, 404, 'id'],
    [`${H}/replay/nothing-here`, { method: 'POST' }, 404, 'id'],
    [`${H}/replay/b1?source=/elsewhere`, { method: 'POST' }, 404, 'id'],
    ['/api/v2/namespaces/nowhere/events/history', {}, 404],
    ['/api/v2/namespaces/nowhere/events/history/subscribe', {}, 404],
    ['/api/v2/namespaces/nowhere/events/history/replay/b1', { method: 'POST' }, 404],
    [`${H}/replay/b1`, { method: 'PUT' }, 405],
    [`${H}/subscribe`, { method: 'POST' }, 405],
  ];
  for (const [path, init, status, attribute, detail] of cases) {
    const res = await api(path, init);
    const body = await problem(res, status, attribute);
    if (detail !== undefined) assert.equal(body.detail, detail, path);
    if (status === 405) assert.ok(res.headers.get('allow').includes('GET'), path);
  }
  assert.deepEqual(await snapshot(), state);
});

test('namespace retention through the API: set, shown, reset, and refused when malformed', async () => {
  const put = (name, body) => api(`/api/v2/namespaces/${name}`, { method: 'PUT', body: body === undefined ? undefined : JSON.stringify(body) });
  let res = await put('kept', { retention: { max_age: 'P7DT12H', max_count: 1000 } });
  assert.equal(res.status, 201);
  assert.deepEqual((await res.json()).retention,
    { max_age: 'P7DT12H', max_count: 1000, effective: { max_age: 'P7DT12H', max_count: 1000 } });
  res = await put('kept', { retention: { max_age: 90 } });
  assert.equal(res.status, 200);
  assert.deepEqual((await res.json()).retention,
    { max_age: 'PT1M30S', max_count: null, effective: { max_age: 'PT1M30S', max_count: 0 } });
  res = await put('kept'); // no body: as before, and the settings stay
  assert.equal(res.status, 200);
  assert.equal((await res.json()).retention.max_age, 'PT1M30S');
  res = await put('kept', { retention: null });
  assert.deepEqual((await res.json()).retention,
    { max_age: null, max_count: null, effective: { max_age: 'PT0S', max_count: 0 } });

  await put('kept', { retention: { max_count: 7 } });
  const state = await snapshot();
  for (const [body, attribute] of [
    [{ retention: { max_age: 'seven days' } }, 'retention.max_age'],
    [{ retention: { max_age: -1 } }, 'retention.max_age'],
    [{ retention: { max_age: 1.5 } }, 'retention.max_age'],
    [{ retention: { max_count: -3 } }, 'retention.max_count'],
    [{ retention: { max_count: '10' } }, 'retention.max_count'],
    [{ retention: { maxAge: 'P1D' } }, 'retention'],
    [{ retention: 5 }, 'retention'],
    [[1], undefined],
  ]) {
    await problem(await put('kept', body), 400, attribute);
    await problem(await put('fresh', body), 400, attribute);
  }
  const broken = await problem(await api('/api/v2/namespaces/kept', { method: 'PUT', body: '{"retention":' }), 400);
  assert.equal(broken.detail, 'the body: not valid JSON: unexpected end of text at byte 13');
  assert.deepEqual(await snapshot(), state, 'nothing changed, nothing created');
});

// ---- retention -----------------------------------------------------------------------------

test('retention removes what it should and nothing else', async () => {
  const w = new Weir({ args: ['--system-events=false', '--retention-interval', '1', '--retention-max-count', '5'] });
  await w.start();
  try {
    const put = (name, body) => fetch(`${w.api}/api/v2/namespaces/${name}`, { method: 'PUT', body: JSON.stringify(body) });
    await w.createNamespace('bycount');
    assert.equal((await put('forever', { retention: { max_age: 0, max_count: 0 } })).status, 201);
    assert.equal((await put('byage', { retention: { max_age: 'PT4S', max_count: 100 } })).status, 201);
    assert.equal((await put('both', { retention: { max_age: 'PT4S', max_count: 2 } })).status, 201);
    await send(w, 'bycount', ids('c', 0, 12));
    await send(w, 'forever', ids('f', 0, 12));
    await send(w, 'byage', ids('old', 0, 4));
    await send(w, 'both', ids('old', 0, 1));
    await sleep(4500);
    await send(w, 'byage', ids('new', 0, 3));
    await send(w, 'both', ids('new', 0, 3));

    const until = async (ns, n) => {
      for (let i = 0; i < 60; i++) {
        const h = await w.history(ns);
        if (h.length === n) return h;
        await sleep(100);
      }
      throw new Error(`${ns} did not reach ${n} events`);
    };
    assert.deepEqual((await until('bycount', 5)).map((i) => i.event.id), ['c7', 'c8', 'c9', 'c10', 'c11']);
    assert.deepEqual((await until('byage', 3)).map((i) => i.event.id), ['new0', 'new1', 'new2']);
    // Both set: the old one goes for its age, the oldest new one for the count.
    assert.deepEqual((await until('both', 2)).map((i) => i.event.id), ['new1', 'new2']);
    await sleep(1500); // another sweep: still nothing more goes
    assert.equal((await w.history('bycount')).length, 5);
    assert.equal((await w.history('forever')).length, 12);
    assert.ok(w.logs.some((l) => l.includes('"ns":"bycount"') && l.includes('retention removed 7 events')));
  } finally {
    await w.cleanup();
  }
});
