// The API against the real binary: namespaces, broadcast, history, operations endpoints.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Weir, curl } from './lib/weir.mjs';

// Without system events, so that a namespace holds exactly the events a test sent.
const weir = new Weir({ args: ['--system-events=false'] });
before(() => weir.start());
after(() => weir.cleanup());

const api = (path, init) => fetch(`${weir.api}${path}`, init);

async function problem(res, status) {
  assert.equal(res.status, status);
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  const body = await res.json();
  assert.equal(body.status, status);
  return body;
}

function binary(ns, id, { type = 't', source = '/api-test', body = '{}', path = 'events/broadcast' } = {}) {
  return api(`/api/v2/namespaces/${ns}/${path}`, {
    method: 'POST', body,
    headers: { 'ce-specversion': '1.0', 'ce-id': id, 'ce-source': source, 'ce-type': type, 'content-type': 'application/json' },
  });
}

test('namespaces: create, get, list with paging, delete', async () => {
  let res = await api('/api/v2/namespaces/ns-one', { method: 'PUT' });
  assert.equal(res.status, 201);
  assert.equal((await res.json()).name, 'ns-one');
  res = await api('/api/v2/namespaces/ns-one', { method: 'PUT' });
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  for (const n of ['ns-two', 'ns-three']) await weir.createNamespace(n);

  res = await api('/api/v2/namespaces/ns-two');
  assert.equal(res.status, 200);
  assert.ok(Date.parse((await res.json()).created) > 0);

  const names = [];
  let cursor = '';
  for (let pages = 0; pages < 10; pages++) {
    const page = await (await api(`/api/v2/namespaces?limit=1${cursor}`)).json();
    names.push(...page.items.map((i) => i.name));
    if (!page.next_cursor) break;
    cursor = `&cursor=${page.next_cursor}`;
  }
  assert.deepEqual(names, ['ns-one', 'ns-three', 'ns-two']);

  res = await api('/api/v2/namespaces/ns-three', { method: 'DELETE' });
  assert.equal(res.status, 204);
  await problem(await api('/api/v2/namespaces/ns-three'), 404);
  await problem(await api('/api/v2/namespaces/ns-three', { method: 'DELETE' }), 404);
});

test('namespaces: bad names and methods are refused', async () => {
  const list = async () => (await (await api('/api/v2/namespaces?limit=1000')).json()).items;
  const before = await list();
  for (const bad of ['Upper', '-lead', 'trail-', 'has_underscore', 'a'.repeat(64), 'api', 'weir-x', '9start']) {
    const body = await problem(await api(`/api/v2/namespaces/${bad}`, { method: 'PUT' }), 400);
    assert.equal(body.attribute, 'namespace', bad);
    assert.ok(body.detail.length > 0);
  }
  assert.deepEqual(await list(), before, 'nothing created');
  assert.equal((await problem(await api('/api/v2/namespaces/absent', { method: 'DELETE' }), 404)).attribute, 'namespace');
  let res = await api('/api/v2/namespaces', { method: 'POST' });
  assert.equal(res.status, 405);
  assert.equal(res.headers.get('allow'), 'GET');
  await res.arrayBuffer();
  for (const method of ['POST', 'PATCH']) {
    res = await api('/api/v2/namespaces/ns-one', { method });
    await problem(res, 405);
    assert.equal(res.headers.get('allow'), 'GET, PUT, DELETE');
  }
  for (const limit of ['0', '1001', '+5', '%205', '5x', '']) {
    await problem(await api(`/api/v2/namespaces?limit=${limit}`), 400);
  }
  await problem(await api('/api/v2/nothing'), 404);
});

test('changes with system events off: made whole, and no event is stored', async () => {
  let res = await api('/api/v2/namespaces/quiet', { method: 'PUT', body: '{"retention":{"max_count":5}}' });
  assert.equal(res.status, 201);
  assert.equal((await res.json()).retention.max_count, 5, 'created with its retention');
  res = await api('/api/v2/namespaces/quiet', { method: 'PUT', body: '{"retention":{"max_count":6}}' });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).retention.max_count, 6);
  for (const [path, method, body, status] of [
    ['/filters/f', 'PUT', 'return event;', 201],
    ['/filters/f', 'PUT', 'return null;', 200],
    ['/filters/f', 'DELETE', undefined, 204],
  ]) {
    res = await api(`/api/v2/namespaces/quiet${path}`, { method, body });
    assert.equal(res.status, status, `${method} ${path}`);
    await res.arrayBuffer();
  }
  res = await api('/api/v2/namespaces/quiet/events/listeners', {
    method: 'POST', body: JSON.stringify({ mode: 'simple', events: [{ type: 't' }], sink: 'http://127.0.0.1:9/' }) });
  assert.equal(res.status, 201);
  const { id } = await res.json();
  res = await api(`/api/v2/namespaces/quiet/events/listeners/${id}`, { method: 'DELETE' });
  assert.equal(res.status, 204);
  assert.deepEqual(await weir.history('quiet'), []);

  // A change that fails is refused with nothing made: a filter of a namespace that is not there.
  await problem(await api('/api/v2/namespaces/absent/filters/f', { method: 'PUT', body: 'return event;' }), 404);
  await problem(await api('/api/v2/namespaces/absent'), 404);
});

test('deleting a namespace removes its events', async () => {
  await weir.createNamespace('gone');
  assert.equal((await binary('gone', 'g1')).status, 202);
  assert.equal((await weir.history('gone')).length, 1);
  assert.equal((await api('/api/v2/namespaces/gone', { method: 'DELETE' })).status, 204);
  await problem(await binary('gone', 'g2'), 404);
  await weir.createNamespace('gone');
  assert.equal((await weir.history('gone')).length, 0);
});

test('broadcast answers what became of each event', async () => {
  await weir.createNamespace('bc');
  let res = await binary('bc', 'b1');
  assert.equal(res.status, 202);
  const first = await res.json();
  assert.equal(first.events.length, 1);
  assert.equal(first.events[0].duplicate, false);
  res = await binary('bc', 'b1');
  const again = await res.json();
  assert.equal(again.events[0].duplicate, true);
  assert.equal(again.events[0].seq, first.events[0].seq);
  const bad = await problem(await api('/api/v2/namespaces/bc/events/broadcast', {
    method: 'POST', body: '{}', headers: { 'ce-specversion': '1.0', 'ce-source': '/x', 'ce-type': 't' },
  }), 400);
  assert.equal(bad.attribute, 'id');
  res = await api('/api/v2/namespaces/bc/events/broadcast');
  assert.equal(res.status, 405);
  await res.arrayBuffer();
  await problem(await binary('nope', 'x'), 404);
});

test('broadcast refuses what the sink refuses, with the same answers, and stores nothing', async () => {
  await weir.createNamespace('bcbad');
  assert.equal((await binary('bcbad', 'kept')).status, 202);
  const before = await weir.history('bcbad');
  const url = '/api/v2/namespaces/bcbad/events/broadcast';
  const ev = { specversion: '1.0', id: 'x', source: '/x', type: 't' };
  const structured = { 'content-type': 'application/cloudevents+json' };
  const batch = { 'content-type': 'application/cloudevents-batch+json' };
  for (const [name, path, headers, body, status, attribute] of [
    ['structured without source', url, structured, JSON.stringify({ ...ev, source: undefined }), 400, 'source'],
    ['bad JSON', url, structured, '{"id":', 400, undefined],
    ['a batch with one bad event', url, batch, JSON.stringify([ev, { ...ev, id: 'y', time: 'noon' }]), 400, 'time'],
    ['a batch of more than 1000 events', url, batch,
      JSON.stringify(Array.from({ length: 1001 }, (_, i) => ({ ...ev, id: `m${i}` }))), 413, undefined],
    ['a format other than JSON', url, { 'content-type': 'application/cloudevents+avro' }, 'xx', 415, undefined],
    ['an unknown filter', `${url}?filter=nope`, structured, JSON.stringify(ev), 404, 'filter'],
    ['a path below broadcast', `${url}/more`, structured, JSON.stringify(ev), 404, undefined],
  ]) {
    const res = await api(path, { method: 'POST', headers, body });
    const p = await problem(res, status);
    assert.equal(p.attribute, attribute, name);
  }
  for (const method of ['GET', 'PUT']) {
    const res = await api(url, { method });
    await problem(res, 405);
    assert.equal(res.headers.get('allow'), 'POST');
  }
  // Refused from its Content-Length before the body is read, then the connection is closed:
  // curl reads that answer while still sending, where fetch may fail with EPIPE.
  const big = join(weir.dataDir, 'big.bin');
  writeFileSync(big, 'x'.repeat(2 * 1024 * 1024));
  const res = await curl(['-X', 'POST', `${weir.api}${url}`, '-H', 'ce-specversion: 1.0', '-H', 'ce-id: big',
    '-H', 'ce-source: /x', '-H', 'ce-type: t', '--data-binary', `@${big}`]);
  assert.equal(res.status, 413);
  assert.equal(res.headers['content-type'], 'application/problem+json');
  assert.deepEqual(await weir.history('bcbad'), before);
});

test('history filters, pages and finds single events', async () => {
  await weir.createNamespace('hist');
  const t0 = new Date().toISOString();
  for (let i = 0; i < 25; i++) {
    const type = i % 2 ? 'com.example.odd' : 'com.example.even';
    const res = await binary('hist', `h${i}`, { type, source: `/src/${i % 3}`, body: JSON.stringify({ n: i, word: i === 7 ? 'needle' : 'hay' }) });
    assert.equal(res.status, 202);
  }
  const t1 = new Date(Date.now() + 1000).toISOString();
  const q = async (query) => {
    const res = await api(`/api/v2/namespaces/hist/events/history?limit=1000&${query}`);
    assert.equal(res.status, 200);
    return (await res.json()).items.map((i) => i.event.id);
  };
  assert.equal((await q('')).length, 25);
  assert.equal((await q('')).at(0), 'h24', 'newest first');
  assert.equal((await q('type=odd')).length, 12);
  assert.equal((await q('source=/src/1')).length, 8);
  assert.deepEqual(await q('text=needle'), ['h7']);
  assert.equal((await q(`from=${t0}&until=${t1}`)).length, 25);
  assert.equal((await q(`until=${t0}`)).length, 0);

  const seen = [];
  let cursor = '';
  for (let pages = 0; pages < 20; pages++) {
    const page = await (await api(`/api/v2/namespaces/hist/events/history?limit=7${cursor}`)).json();
    seen.push(...page.items.map((i) => i.event.id));
    if (!page.next_cursor) break;
    cursor = `&cursor=${page.next_cursor}`;
  }
  assert.equal(seen.length, 25);
  assert.equal(new Set(seen).size, 25);
});

test('history of one event, with an id holding a slash', async () => {
  await weir.createNamespace('one');
  assert.equal((await binary('one', 'a/b/c', { source: '/first' })).status, 202);
  assert.equal((await binary('one', 'a/b/c', { source: '/second' })).status, 202);
  let res = await api('/api/v2/namespaces/one/events/history/a/b/c');
  assert.equal(res.status, 200);
  assert.equal((await res.json()).event.source, '/second');
  res = await api('/api/v2/namespaces/one/events/history/a/b/c?source=/first');
  assert.equal((await res.json()).event.source, '/first');
  await problem(await api('/api/v2/namespaces/one/events/history/missing'), 404);
  await problem(await api('/api/v2/namespaces/nowhere/events/history'), 404);
});

test('history/{id} and replay/{id} take an id of any number of segments', async () => {
  await weir.createNamespace('deep');
  const deep = Array.from({ length: 20 }, (_, i) => `s${i}`).join('/');
  for (const id of [deep, '/lead//double/', 'replay/x', 'subscribe']) {
    assert.equal((await binary('deep', id)).status, 202, id);
  }
  for (const id of [deep, '/lead//double/', 'replay/x']) {
    const res = await api(`/api/v2/namespaces/deep/events/history/${id}`);
    assert.equal(res.status, 200, id);
    assert.equal((await res.json()).event.id, id);
  }
  const res = await api(`/api/v2/namespaces/deep/events/history/replay/${deep}`, { method: 'POST' });
  assert.equal(res.status, 202);
  assert.equal((await res.json()).id, deep);
  // Too deep for an id that does not exist is still a plain 404 about the event.
  await problem(await api(`/api/v2/namespaces/deep/events/history/${deep}/more`), 404);
  // history/subscribe is the live stream: an event of that id is found by listing, not by id.
  const ids = (await (await api('/api/v2/namespaces/deep/events/history')).json()).items.map((i) => i.event.id);
  assert.ok(ids.includes('subscribe'));
  // Other routes keep their exact shape.
  await problem(await api(`/api/v2/namespaces/deep/events/listeners/${deep}`), 404);
});

test('history refuses malformed parameters', async () => {
  await weir.createNamespace('params');
  for (const [query, attribute] of [['limit=0', 'limit'], ['limit=1001', 'limit'], ['limit=abc', 'limit'],
    ['limit=%205', 'limit'], ['limit=+5', 'limit'], ['limit=5%20', 'limit'], ['limit=', 'limit'], ['limit', 'limit'],
    ['cursor=xyz', 'cursor'], ['cursor=-5', 'cursor'], ['cursor=99999999999999999999', 'cursor'],
    ['from=yesterday', 'from'], ['until=2024-13-01T00:00:00Z', 'until']]) {
    const body = await problem(await api(`/api/v2/namespaces/params/events/history?${query}`), 400);
    assert.equal(body.attribute, attribute, query);
  }
});

test('health, readiness and metrics', async () => {
  assert.equal((await api('/healthz')).status, 200);
  assert.equal((await api('/readyz')).status, 200);
  await weir.createNamespace('metered');
  await binary('metered', 'm1');
  const text = await (await api('/metrics')).text();
  assert.match(text, /weir_events_received_total\{namespace="metered",outcome="stored"\} 1/);
  assert.match(text, /weir_store_ready 1/);
  assert.match(text, /# TYPE weir_ingest_latency_seconds histogram/);
});

// With SO_REUSEPORT a second weir would start too, and the kernel would share the port's
// requests between the two stores.
test('a second weir does not start on ports that are in use', async () => {
  for (const flag of ['--sink-addr', '--api-addr']) {
    const port = flag === '--sink-addr' ? weir.sinkPort : weir.apiPort;
    const second = new Weir({ args: [flag, `127.0.0.1:${port}`] });
    try {
      await assert.rejects(second.start(), /exited with 1[\s\S]*cannot listen/);
    } finally {
      await second.cleanup();
    }
  }
});
