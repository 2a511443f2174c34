// JavaScript filters against the real binary: the API, what filters may do, and every way a
// filter can fail, each answered as the contract says with nothing stored.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Weir } from './lib/weir.mjs';

const weir = new Weir({ args: ['--filter-timeout', '200'] });
before(async () => {
  await weir.start();
  await weir.createNamespace('fa');
  await weir.createNamespace('fb');
});
after(() => weir.cleanup());

const api = (path, init) => fetch(`${weir.api}${path}`, init);

async function putFilter(ns, name, body) {
  return api(`/api/v2/namespaces/${ns}/filters/${name}`, { method: 'PUT', body });
}

function send(path, id, { type = 'com.example.t', source = '/src', data = '{"n":1}', base = weir.sink } = {}) {
  return fetch(`${base}${path}`, {
    method: 'POST', body: data,
    headers: { 'ce-specversion': '1.0', 'ce-id': id, 'ce-source': source, 'ce-type': type, 'content-type': 'application/json' },
  });
}

const stored = async (ns, id) => (await weir.history(ns)).find((i) => i.event.id === id)?.event;

test('filters: save, read, list, replace and delete', async () => {
  let res = await putFilter('fa', 'keep', 'return event;');
  assert.equal(res.status, 201);
  assert.equal((await res.json()).name, 'keep');
  res = await putFilter('fa', 'keep', '// replaced\nreturn event;');
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  res = await api('/api/v2/namespaces/fa/filters/keep');
  assert.equal(res.status, 200);
  assert.equal(await res.text(), '// replaced\nreturn event;');
  const list = await (await api('/api/v2/namespaces/fa/filters')).json();
  assert.deepEqual(list.items.map((f) => f.name), ['keep']);
  res = await api('/api/v2/namespaces/fa/filters/keep', { method: 'DELETE' });
  assert.equal(res.status, 204);
  res = await api('/api/v2/namespaces/fa/filters/keep');
  assert.equal(res.status, 404);
  await res.arrayBuffer();
  res = await api('/api/v2/namespaces/fa/filters/keep', { method: 'DELETE' });
  assert.equal(res.status, 404);
  await res.arrayBuffer();
});

test('a filter that does not compile is refused with its line and message', async () => {
  const res = await putFilter('fa', 'broken', 'var a = 1;\nreturn event +;');
  assert.equal(res.status, 400);
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  const problem = await res.json();
  assert.match(problem.detail, /line 2/);
  assert.equal((await api('/api/v2/namespaces/fa/filters/broken')).status, 404);
});

test('a filter too large to compile is refused with 413, and nothing is saved', async () => {
  // Short, but a regexp's quantified group is copied as many times as it repeats.
  const hex = (n) => `\\u${n.toString(16).padStart(4, '0')}`;
  const ranges = Array.from({ length: 150 }, (_, i) => `${hex(0x100 + 4 * i)}-${hex(0x101 + 4 * i)}`);
  const res = await putFilter('fa', 'huge', `var r = /(?:(?:[${ranges.join('')}]|x){1000}){100}/;\nreturn event;`);
  assert.equal(res.status, 413);
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  assert.match((await res.json()).detail, /too large to compile/);
  const get = await api('/api/v2/namespaces/fa/filters/huge');
  assert.equal(get.status, 404);
  await get.arrayBuffer();
});

test('bad filter names and unknown namespaces are refused', async () => {
  let res = await putFilter('fa', '-bad', 'return event;');
  assert.equal(res.status, 400);
  await res.arrayBuffer();
  res = await putFilter('nowhere', 'f', 'return event;');
  assert.equal(res.status, 404);
  await res.arrayBuffer();
});

test('a filter renames a source, enriches, changes data, and drops by type', async () => {
  const script = `
    if (event.type === 'com.example.noise') return null;
    event.source = '/renamed';
    event.enriched = 'yes';
    event.data = { doubled: event.data.n * 2 };
    nslog('saw', event.id);
    return event;`;
  assert.equal((await putFilter('fa', 'shape', script)).status, 201);
  let res = await send('/fa?filter=shape', 'shaped-1');
  assert.equal(res.status, 202);
  assert.equal(res.headers.get('weir-filter-dropped'), null);
  const ev = await stored('fa', 'shaped-1');
  assert.equal(ev.source, '/renamed');
  assert.equal(ev.enriched, 'yes');
  assert.deepEqual(ev.data, { doubled: 2 });

  res = await send('/fa?filter=shape', 'noise-1', { type: 'com.example.noise' });
  assert.equal(res.status, 202);
  assert.equal(res.headers.get('weir-filter-dropped'), '1');
  assert.equal(await stored('fa', 'noise-1'), undefined);

  const logs = await (await api('/api/v2/namespaces/fa/logs')).json();
  assert.ok(logs.items.some((l) => l.line === 'saw shaped-1'), JSON.stringify(logs));
});

test('concurrent saves and deletes leave the running filters as the store has them', async () => {
  for (let round = 0; round < 200; round++) {
    const name = `race${round % 4}`;
    const changes = [];
    for (let i = 0; i < 4; i++) {
      changes.push(putFilter('fa', name, 'return event;'), api(`/api/v2/namespaces/fa/filters/${name}`, { method: 'DELETE' }));
    }
    for (const res of await Promise.all(changes)) await res.arrayBuffer();
    const saved = await api(`/api/v2/namespaces/fa/filters/${name}`);
    await saved.arrayBuffer();
    const used = await send(`/fa?filter=${name}`, `race-${round}`);
    await used.arrayBuffer();
    assert.equal(used.status === 202, saved.status === 200,
      `round ${round}: the store answers ${saved.status}, an event with the filter ${used.status}`);
  }
});

test('a changed filter takes effect for the next event', async () => {
  await putFilter('fa', 'tag', 'event.version = "one"; return event;');
  await send('/fa?filter=tag', 'tag-1');
  await putFilter('fa', 'tag', 'event.version = "two"; return event;');
  await send('/fa?filter=tag', 'tag-2');
  assert.equal((await stored('fa', 'tag-1')).version, 'one');
  assert.equal((await stored('fa', 'tag-2')).version, 'two');
});

test('an unknown filter is 404 and stores nothing', async () => {
  const before = (await weir.history('fa')).length;
  const res = await send('/fa?filter=nope', 'unknown-1');
  assert.equal(res.status, 404);
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  assert.equal((await weir.history('fa')).length, before);
});

test('POST / applies each namespace its own filter of that name', async () => {
  await putFilter('fb', 'only', 'event.seenby = "fb"; return event;');
  const res = await send('/?filter=only', 'all-f-1');
  assert.equal(res.status, 202);
  assert.equal((await stored('fb', 'all-f-1')).seenby, 'fb');
  assert.equal((await stored('fa', 'all-f-1')).seenby, undefined, 'fa has no filter "only": unchanged');
  const none = await send('/?filter=nobody-has-this', 'all-f-2');
  assert.equal(none.status, 404);
  await none.arrayBuffer();
});

test('POST / stores in no namespace when the filter of one fails', async () => {
  await putFilter('fa', 'split', 'event.seenby = "fa"; return event;');
  await putFilter('fb', 'split', 'throw new Error("fb says no");');
  const before = [await weir.history('fa'), await weir.history('fb')];
  const res = await send('/?filter=split', 'split-1');
  assert.equal(res.status, 422);
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  assert.match((await res.json()).detail, /fb says no/);
  assert.deepEqual([await weir.history('fa'), await weir.history('fb')], before);
});

test('the broadcast API takes ?filter= too', async () => {
  await putFilter('fa', 'drop-all', 'return null;');
  const res = await send('/api/v2/namespaces/fa/events/broadcast?filter=drop-all', 'bc-f-1', { base: weir.api });
  assert.equal(res.status, 202);
  assert.equal(res.headers.get('weir-filter-dropped'), '1');
  const body = await res.json();
  assert.equal(body.dropped, 1);
  assert.equal(body.events.length, 0);
  assert.equal(await stored('fa', 'bc-f-1'), undefined);

  // A batch of which the filter keeps one: the header counts the other two.
  await putFilter('fa', 'keep-odd', 'return event.id.slice(-1) % 2 ? event : null;');
  const batch = [1, 2, 3].map((n) => ({ specversion: '1.0', id: `bc-odd-${n + 1}`, source: '/src', type: 'com.example.t' }));
  const kept = await fetch(`${weir.api}/api/v2/namespaces/fa/events/broadcast?filter=keep-odd`, {
    method: 'POST', body: JSON.stringify(batch), headers: { 'content-type': 'application/cloudevents-batch+json' },
  });
  assert.equal(kept.status, 202);
  assert.equal(kept.headers.get('weir-filter-dropped'), '2');
  const answer = await kept.json();
  assert.equal(answer.dropped, 2);
  assert.deepEqual(answer.events.map((e) => e.id), ['bc-odd-3']);

  const none = await send('/api/v2/namespaces/fa/events/broadcast', 'bc-f-2', { base: weir.api });
  assert.equal(none.status, 202);
  assert.equal(none.headers.get('weir-filter-dropped'), null);
  await none.arrayBuffer();
});

test('a filter result larger than the body limit is answered 422 and stores nothing', async () => {
  // The body limit is the default, 1 MiB.
  assert.equal((await putFilter('fb', 'inflate', 'event.data = "x".repeat(2 << 20); return event;')).status, 201);
  assert.equal((await putFilter('fb', 'grow-data', 'event.data = {big: "y".repeat(1100000)}; return event;')).status, 201);
  assert.equal((await putFilter('fb', 'just-under', 'event.data = {pad: "z".repeat(1000000)}; return event;')).status, 201);
  const before = (await weir.history('fb')).length;
  for (const name of ['inflate', 'grow-data']) {
    const res = await send(`/fb?filter=${name}`, `big-${name}`);
    assert.equal(res.status, 422);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
    assert.match((await res.json()).detail, /^filter returned an event of \d+ bytes in the JSON format, more than the body limit of 1048576 bytes$/);
    const bc = await send(`/api/v2/namespaces/fb/events/broadcast?filter=${name}`, `big-bc-${name}`, { base: weir.api });
    assert.equal(bc.status, 422);
    await bc.arrayBuffer();
  }
  assert.equal((await weir.history('fb')).length, before);

  const ok = await send('/fb?filter=just-under', 'big-ok');
  assert.equal(ok.status, 202);
  assert.equal((await stored('fb', 'big-ok')).data.pad.length, 1000000);
});

const failing = [
  ['an endless loop', 'while (true) {}', /timed out/],
  ['endless allocation', 'var a = []; while (true) { a.push(new Array(100000).join("x")); }', /memory|timed out/],
  ['a throw', 'throw new Error("no thanks");', /no thanks/],
  ['a return of 42', 'return 42;', /number/],
  ['require', 'var fs = require("fs"); return event;', /require|not defined|ReferenceError/],
  ['eval of a huge string', 'return eval("1+".repeat(5000000) + "1");', /.+/],
  ['deep recursion', 'function f(n) { return f(n + 1) + 1; } return f(0);', /.+/],
  ['an invalid event', 'delete event.id; return event;', /id/],
];

for (const [name, script, message] of failing) {
  test(`a filter with ${name} is answered 422, stores nothing, and weir stays healthy`, async () => {
    const filter = `f${failing.findIndex((f) => f[0] === name)}`;
    assert.equal((await putFilter('fb', filter, script)).status, 201);
    const before = (await weir.history('fb')).length;
    const res = await send(`/fb?filter=${filter}`, `fail-${filter}`);
    assert.equal(res.status, 422);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
    const problem = await res.json();
    assert.match(problem.detail, message);
    assert.equal((await weir.history('fb')).length, before);
    assert.equal((await api('/healthz')).status, 200);
    const ok = await send('/fb', `after-${filter}`);
    assert.equal(ok.status, 202);
  });
}
