// The sink against the real binary: every mode, every client, every bad input of the contract.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CloudEvent, HTTP } from 'cloudevents';
import { statSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { Weir, curl } from './lib/weir.mjs';

const weir = new Weir();
before(async () => {
  await weir.start();
  await weir.createNamespace('alpha');
  await weir.createNamespace('beta');
});
after(() => weir.cleanup());

async function post(path, message) {
  return fetch(`${weir.sink}${path}`, { method: 'POST', headers: message.headers, body: message.body });
}

const storedIds = async (ns) => (await weir.history(ns)).map((item) => item.event.id);

test('binary mode from the JavaScript SDK keeps every attribute and the data', async () => {
  const ev = new CloudEvent({
    id: 'bin-1', source: '/sdk/binary', type: 'com.example.bin', subject: 'sub', time: '2024-05-06T07:08:09.123Z',
    datacontenttype: 'application/json', data: { n: 1, s: 'x' }, myext: 'extvalue',
  });
  const res = await post('/alpha', HTTP.binary(ev));
  assert.equal(res.status, 202);
  assert.equal(await res.text(), '');
  const [item] = (await weir.history('alpha')).filter((i) => i.event.id === 'bin-1');
  assert.deepEqual(item.event, {
    specversion: '1.0', id: 'bin-1', source: '/sdk/binary', type: 'com.example.bin', subject: 'sub',
    time: '2024-05-06T07:08:09.123Z', datacontenttype: 'application/json', myext: 'extvalue', data: { n: 1, s: 'x' },
  });
  assert.ok(item.seq > 0);
});

test('structured mode from the JavaScript SDK', async () => {
  const ev = new CloudEvent({ id: 'str-1', source: '/sdk/structured', type: 'com.example.str', data: 'plain text', datacontenttype: 'text/plain' });
  const res = await post('/alpha', HTTP.structured(ev));
  assert.equal(res.status, 202);
  const [item] = (await weir.history('alpha')).filter((i) => i.event.id === 'str-1');
  assert.equal(item.event.data, 'plain text');
  assert.equal(item.event.type, 'com.example.str');
});

test('string data under a type that is not JSON reads back as the same string', async () => {
  const body = JSON.stringify({ specversion: '1.0', id: 'xml-1', source: '/xml', type: 't', datacontenttype: 'application/xml', data: '<much wow="xml"/>' });
  const res = await fetch(`${weir.sink}/alpha`, { method: 'POST', body, headers: { 'content-type': 'application/cloudevents+json' } });
  assert.equal(res.status, 202);
  const [item] = (await weir.history('alpha')).filter((i) => i.event.id === 'xml-1');
  assert.deepEqual(item.event, JSON.parse(body));
  const found = await (await fetch(`${weir.api}/api/v2/namespaces/alpha/events/history?text=${encodeURIComponent('wow=')}`)).json();
  assert.deepEqual(found.items.map((i) => i.event.id), ['xml-1']);
});

test('an attribute value of 64 KiB is kept, in structured mode and in a binary-mode header', async () => {
  const value = 'é'.repeat(32768); // 65,536 bytes of UTF-8: the longest value accepted
  const body = JSON.stringify({ specversion: '1.0', id: 'long-1', source: '/long', type: 't', big: value });
  const res = await fetch(`${weir.sink}/alpha`, { method: 'POST', body, headers: { 'content-type': 'application/cloudevents+json' } });
  assert.equal(res.status, 202);
  const header = 'h'.repeat(20000); // all headers together must fit libmicrohttpd's 32 KiB buffer
  const bin = await fetch(`${weir.sink}/alpha`, { method: 'POST', body: 'x',
    headers: { 'ce-specversion': '1.0', 'ce-id': 'long-2', 'ce-source': '/long', 'ce-type': 't', 'ce-big': header } });
  assert.equal(bin.status, 202);
  const items = await weir.history('alpha');
  assert.equal(items.find((i) => i.event.id === 'long-1').event.big, value);
  assert.equal(items.find((i) => i.event.id === 'long-2').event.big, header);
});

test('binary data is kept byte for byte', async () => {
  const bytes = Buffer.from([0, 1, 2, 255, 254, 10, 13, 0x80]);
  const res = await fetch(`${weir.sink}/alpha`, {
    method: 'POST', body: bytes,
    headers: { 'ce-specversion': '1.0', 'ce-id': 'bytes-1', 'ce-source': '/bytes', 'ce-type': 't', 'content-type': 'application/octet-stream' },
  });
  assert.equal(res.status, 202);
  const [item] = (await weir.history('alpha')).filter((i) => i.event.id === 'bytes-1');
  assert.deepEqual(Buffer.from(item.event.data_base64, 'base64'), bytes);
});

test('JSON data keeps its exact text', async () => {
  const body = '{"big":12345678901234567890,"f":1.50,"e":1e3}';
  const res = await fetch(`${weir.sink}/alpha`, {
    method: 'POST', body,
    headers: { 'ce-specversion': '1.0', 'ce-id': 'json-1', 'ce-source': '/json', 'ce-type': 't', 'content-type': 'application/json' },
  });
  assert.equal(res.status, 202);
  const page = await (await fetch(`${weir.api}/api/v2/namespaces/alpha/events/history/json-1`)).text();
  assert.ok(page.includes(`"data":${body}`), page);
});

test('batched mode with curl stores each event', async () => {
  const batch = JSON.stringify([
    { specversion: '1.0', id: 'batch-1', source: '/curl', type: 'com.example.batch', data: { i: 1 } },
    { specversion: '1.0', id: 'batch-2', source: '/curl', type: 'com.example.batch', data_base64: 'AAEC' },
  ]);
  const res = await curl(['-X', 'POST', `${weir.sink}/beta`, '-H', 'content-type: application/cloudevents-batch+json', '--data-binary', batch]);
  assert.equal(res.status, 202);
  const items = await weir.history('beta');
  assert.deepEqual(items.find((i) => i.event.id === 'batch-1').event,
    { specversion: '1.0', id: 'batch-1', source: '/curl', type: 'com.example.batch', data: { i: 1 } });
  assert.deepEqual(items.find((i) => i.event.id === 'batch-2').event,
    { specversion: '1.0', id: 'batch-2', source: '/curl', type: 'com.example.batch', data_base64: 'AAEC' });
});

test('percent-encoded and raw header values are decoded once', async () => {
  const send = (id, subject) => curl(['-X', 'POST', `${weir.sink}/beta`, '-H', 'ce-specversion: 1.0', '-H', `ce-id: ${id}`,
    '-H', 'ce-source: /curl', '-H', 'ce-type: t', '-H', `ce-subject: ${subject}`, '--data-binary', 'x', '-H', 'content-type: text/plain']);
  assert.equal((await send('pct-1', '100%25%20caf%C3%A9')).status, 202);
  assert.equal((await send('pct-2', '100% café')).status, 202);
  assert.equal((await send('pct-3', '%2541')).status, 202);
  // Double-quoted strings are unescaped first (older senders did not percent-encode), and the
  // white space around a value is not part of it.
  assert.equal((await send('pct-4', '"say \\"hi\\"" 100%25')).status, 202);
  assert.equal((await send('pct-5', 'spaced  ')).status, 202);
  const items = await weir.history('beta');
  const subject = (id) => items.find((i) => i.event.id === id).event.subject;
  assert.equal(subject('pct-1'), '100% café');
  assert.equal(subject('pct-2'), '100% café');
  assert.equal(subject('pct-3'), '%41');
  assert.equal(subject('pct-4'), 'say "hi" 100%');
  assert.equal(subject('pct-5'), 'spaced');
});

test('specversion 0.3 is accepted', async () => {
  const res = await curl(['-X', 'POST', `${weir.sink}/beta`, '-H', 'ce-specversion: 0.3', '-H', 'ce-id: v03-1',
    '-H', 'ce-source: /old', '-H', 'ce-type: t', '-H', 'ce-schemaurl: /schema', '--data-binary', 'hello', '-H', 'content-type: text/plain']);
  assert.equal(res.status, 202);
  const item = (await weir.history('beta')).find((i) => i.event.id === 'v03-1');
  assert.equal(item.event.specversion, '0.3');
  assert.equal(item.event.schemaurl, '/schema');
  assert.equal(item.event.data, 'hello');
});

test('POST / stores the event in every namespace', async () => {
  const ev = new CloudEvent({ id: 'all-1', source: '/everyone', type: 't', data: { x: 1 } });
  assert.equal((await post('/', HTTP.binary(ev))).status, 202);
  assert.ok((await storedIds('alpha')).includes('all-1'));
  assert.ok((await storedIds('beta')).includes('all-1'));
});

test('a duplicate is acknowledged and stored once', async () => {
  const ev = new CloudEvent({ id: 'dup-1', source: '/dup', type: 't', data: 'a' });
  assert.equal((await post('/alpha', HTTP.binary(ev))).status, 202);
  assert.equal((await post('/alpha', HTTP.binary(ev))).status, 202);
  assert.equal((await storedIds('alpha')).filter((id) => id === 'dup-1').length, 1);
});

test('OPTIONS answers the webhook handshake', async () => {
  const res = await fetch(`${weir.sink}/alpha`, { method: 'OPTIONS', headers: { 'WebHook-Request-Origin': 'eventemitter.example.com' } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('allow'), 'POST, OPTIONS');
  assert.equal(res.headers.get('webhook-allowed-origin'), 'eventemitter.example.com');
});

const good = { 'ce-specversion': '1.0', 'ce-id': 'bad-x', 'ce-source': '/bad', 'ce-type': 't' };
const STRUCTURED = { 'content-type': 'application/cloudevents+json' };
const BATCH = { 'content-type': 'application/cloudevents-batch+json' };
const base = { specversion: '1.0', id: 'bad-s', source: '/bad', type: 't' };
// A structured-mode event: fields over a valid event; an undefined field is left out.
const structured = (fields) => ({ headers: STRUCTURED, body: JSON.stringify({ ...base, ...fields }) });
// A batch whose first event is valid and whose second is not: all or nothing.
const badBatch = JSON.stringify([{ ...base, id: 'batch-ok' }, { ...base, id: undefined }]);

// Everything stored, in every namespace: a refused request must leave it exactly as it was.
const snapshot = async () => ({ alpha: await weir.history('alpha'), beta: await weir.history('beta') });

const badCases = [
  // binary mode
  { name: 'missing id', path: '/alpha', headers: { ...good, 'ce-id': undefined }, status: 400, attribute: 'id' },
  { name: 'missing source', path: '/alpha', headers: { ...good, 'ce-source': undefined }, status: 400, attribute: 'source' },
  { name: 'missing type', path: '/alpha', headers: { ...good, 'ce-type': undefined }, status: 400, attribute: 'type' },
  { name: 'missing specversion', path: '/alpha', headers: { ...good, 'ce-specversion': undefined }, status: 400, attribute: 'specversion' },
  { name: 'unknown specversion', path: '/alpha', headers: { ...good, 'ce-specversion': '2.0' }, status: 400, attribute: 'specversion' },
  { name: 'empty id', path: '/alpha', headers: { ...good, 'ce-id': '' }, status: 400, attribute: 'id' },
  { name: 'bad time', path: '/alpha', headers: { ...good, 'ce-time': 'yesterday' }, status: 400, attribute: 'time' },
  { name: 'invalid UTF-8 in a decoded header', path: '/alpha', headers: { ...good, 'ce-subject': '%FF%FE' }, status: 400, attribute: 'subject' },
  { name: 'a control character in a decoded header', path: '/alpha', headers: { ...good, 'ce-subject': 'a%0Ab' }, status: 400, attribute: 'subject' },
  { name: 'a Unicode noncharacter in a decoded header', path: '/alpha', headers: { ...good, 'ce-subject': 'a%EF%BF%BFb' }, status: 400, attribute: 'subject' },
  { name: 'an unclosed double-quoted header value', path: '/alpha', headers: { ...good, 'ce-subject': '"abc' }, status: 400, attribute: 'subject',
    detail: /a double-quoted string is not closed/ },
  { name: 'a ce-datacontenttype header', path: '/alpha', headers: { ...good, 'ce-datacontenttype': 'text/plain' }, status: 400, attribute: 'datacontenttype' },
  { name: 'a misspelt extension header', path: '/alpha', headers: { ...good, 'ce-My_Ext': 'x' }, status: 400, attribute: 'My_Ext',
    detail: /a ce- header must name an attribute of 1 to 64 letters and digits/ },
  // structured mode
  { name: 'structured: missing id', path: '/alpha', ...structured({ id: undefined }), status: 400, attribute: 'id' },
  { name: 'structured: an id that is a number', path: '/alpha', ...structured({ id: 5 }), status: 400, attribute: 'id' },
  { name: 'structured: empty source', path: '/alpha', ...structured({ source: '' }), status: 400, attribute: 'source' },
  { name: 'structured: bad time', path: '/alpha', ...structured({ time: 'yesterday' }), status: 400, attribute: 'time' },
  { name: 'structured: both data and data_base64', path: '/alpha', ...structured({ data: 1, data_base64: 'AA==' }), status: 400, attribute: 'data' },
  { name: 'structured: a datacontenttype that is a number', path: '/alpha', ...structured({ datacontenttype: 5 }), status: 400, attribute: 'datacontenttype' },
  { name: 'structured: an extension that is an object', path: '/alpha', ...structured({ myext: { a: 1 } }), status: 400, attribute: 'myext' },
  { name: 'structured: a value longer than 64 KiB', path: '/alpha', ...structured({ big: 'é'.repeat(32768) + 'x' }), status: 400, attribute: 'big',
    detail: /^value is longer than 65536 bytes$/ },
  { name: 'structured: a misspelt extension', path: '/alpha', ...structured({ My_Ext: 'x' }), status: 400, attribute: 'My_Ext',
    detail: /attribute names are 1 to 64 lower-case letters and digits/ },
  { name: 'bad JSON', path: '/alpha', headers: STRUCTURED, body: '{"specversion":', status: 400, detail: /not valid JSON/ },
  { name: 'invalid UTF-8 in JSON', path: '/alpha', headers: STRUCTURED,
    body: Buffer.concat([Buffer.from('{"specversion":"1.0","id":"'), Buffer.from([0xc3, 0x28]), Buffer.from('","source":"/s","type":"t"}')]),
    status: 400, detail: /not valid UTF-8/ },
  { name: 'nesting too deep', path: '/alpha', headers: STRUCTURED,
    body: `{"specversion":"1.0","id":"deep","source":"/s","type":"t","data":${'['.repeat(100)}${']'.repeat(100)}}`, status: 400 },
  // batched mode
  { name: 'a batch that is not an array', path: '/alpha', headers: BATCH, body: '{}', status: 400 },
  { name: 'a batch with one bad event', path: '/alpha', headers: BATCH, body: badBatch, status: 400, attribute: 'id', detail: /^batch element 1: / },
  { name: 'a batch mixing spec versions', path: '/alpha', headers: BATCH,
    body: JSON.stringify([{ ...base, id: 'v10' }, { ...base, id: 'v03', specversion: '0.3' }]), status: 400, attribute: 'specversion',
    detail: /^batch element 1: is not that of element 0 \(1\.0\)$/ },
  { name: 'a batch of more than 1000 events', path: '/alpha', headers: BATCH,
    body: JSON.stringify(Array.from({ length: 1001 }, (_, i) => ({ ...base, id: `many-${i}` }))), status: 413,
    detail: /a batch holds at most 1000 events/ },
  { name: 'a batch in a format other than JSON', path: '/alpha', headers: { 'content-type': 'application/cloudevents-batch+avro' }, body: 'xx', status: 415 },
  // every namespace at once: nothing is stored in any of them
  { name: 'POST / with a missing type', path: '/', headers: { ...good, 'ce-type': undefined }, status: 400, attribute: 'type' },
  { name: 'POST / with bad JSON', path: '/', headers: STRUCTURED, body: '{"specversion":', status: 400 },
  { name: 'POST / with a batch with one bad event', path: '/', headers: BATCH, body: badBatch, status: 400, attribute: 'id' },
  { name: 'POST / with an unknown filter', path: '/?filter=nope', headers: good, status: 404, attribute: 'filter' },
  // the path
  { name: 'unknown namespace', path: '/nowhere', headers: good, status: 404, detail: /namespace does not exist/ },
  { name: 'a path too deep', path: '/alpha/more', headers: good, status: 404 },
  { name: 'an unknown filter', path: '/alpha?filter=nope', headers: good, status: 404, attribute: 'filter', detail: /no filter named nope/ },
  { name: 'an empty filter name', path: '/alpha?filter=', headers: good, status: 400, attribute: 'filter', detail: /^must name a filter$/ },
  { name: 'a filter parameter without a value', path: '/alpha?filter', headers: good, status: 400, attribute: 'filter' },
  { name: 'a format other than JSON', path: '/alpha', headers: { 'content-type': 'application/cloudevents+avro' }, body: 'xx', status: 415 },
];

for (const c of badCases) {
  test(`bad input: ${c.name} is answered ${c.status} and stores nothing`, async () => {
    const before = await snapshot();
    const headers = Object.fromEntries(Object.entries(c.headers).filter(([, v]) => v !== undefined));
    const res = await fetch(`${weir.sink}${c.path}`, { method: 'POST', headers, body: c.body ?? 'payload' });
    assert.equal(res.status, c.status);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
    const problem = await res.json();
    assert.equal(problem.status, c.status);
    assert.ok(problem.detail.length > 0);
    assert.equal(problem.attribute, c.attribute);
    if (c.detail) assert.match(problem.detail, c.detail);
    assert.deepEqual(await snapshot(), before);
  });
}

test('a method other than POST or OPTIONS is answered 405 with Allow', async () => {
  for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
    const res = await fetch(`${weir.sink}/alpha`, { method });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'POST, OPTIONS');
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
    assert.equal((await res.json()).status, 405);
  }
});

test('a body over the limit is answered 413 and stores nothing', async () => {
  const before = await snapshot();
  const file = join(weir.dataDir, 'big.bin');
  writeFileSync(file, 'x'.repeat(2 * 1024 * 1024));
  for (const chunked of [false, true]) {
    const res = await curl(['-X', 'POST', `${weir.sink}/alpha`, '-H', 'ce-specversion: 1.0', '-H', 'ce-id: big',
      '-H', 'ce-source: /big', '-H', 'ce-type: t', '--data-binary', `@${file}`,
      ...(chunked ? ['-H', 'transfer-encoding: chunked'] : [])]);
    assert.equal(res.status, 413, `chunked: ${chunked}`);
    assert.equal(res.headers['content-type'], 'application/problem+json');
    const problem = JSON.parse(res.body.toString());
    assert.equal(problem.status, 413);
    assert.match(problem.detail, /larger than the limit of 1048576 bytes/);
  }
  assert.deepEqual(await snapshot(), before);
});

test('more than 128 headers are answered 400 and store nothing', async () => {
  const before = await snapshot();
  const headers = { ...good, 'ce-id': 'many-headers', 'content-type': 'text/plain' };
  for (let i = 0; i < 130; i++) headers[`x-extra-${i}`] = 'v';
  const res = await fetch(`${weir.sink}/alpha`, { method: 'POST', headers, body: 'x' });
  assert.equal(res.status, 400);
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  assert.match((await res.json()).detail, /more than 128 headers/);
  assert.deepEqual(await snapshot(), before);
});

test('POST / with no namespace at all is answered 404, and weir stops cleanly after', async () => {
  const empty = new Weir();
  try {
    await empty.start();
    const ev = new CloudEvent({ id: 'none-1', source: '/none', type: 't' });
    const msg = HTTP.binary(ev);
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${empty.sink}/`, { method: 'POST', headers: msg.headers, body: msg.body });
      assert.equal(res.status, 404);
      assert.equal(res.headers.get('content-type'), 'application/problem+json');
      assert.match((await res.json()).detail, /no namespace exists/);
    }
    // The sanitizer build checks for leaks at exit: a clean stop must exit 0.
    const exit = await empty.stop('SIGTERM');
    assert.equal(exit.code, 0, empty.logs.join('\n'));
  } finally {
    await empty.cleanup();
  }
});

test('a full store queue is answered 503 with Retry-After, and only what was answered 202 is stored', async () => {
  const busy = new Weir({ args: ['--queue-max', '1', '--batch-max', '1'] });
  try {
    await busy.start();
    await busy.createNamespace('busy');
    const answers = await Promise.all(Array.from({ length: 300 }, async (_, i) => {
      const res = await fetch(`${busy.sink}/busy`, {
        method: 'POST', body: `{"i":${i}}`,
        headers: { ...good, 'ce-id': `q-${i}`, 'ce-source': '/queue', 'content-type': 'application/json' },
      });
      const body = await res.text();
      return { id: `q-${i}`, status: res.status, retryAfter: res.headers.get('retry-after'), type: res.headers.get('content-type'), body };
    }));
    const refused = answers.filter((a) => a.status === 503);
    const accepted = answers.filter((a) => a.status === 202);
    assert.equal(refused.length + accepted.length, answers.length);
    assert.ok(refused.length > 0, 'the queue never filled');
    for (const a of refused) {
      assert.equal(a.retryAfter, '1');
      assert.equal(a.type, 'application/problem+json');
      assert.match(JSON.parse(a.body).detail, /queue is full/);
    }
    const stored = (await busy.history('busy')).filter((i) => i.event.source === '/queue').map((i) => i.event.id);
    assert.deepEqual(stored.sort(), accepted.map((a) => a.id).sort());
    const metrics = await (await fetch(`${busy.api}/metrics`)).text();
    assert.match(metrics, new RegExp(`weir_events_received_total\\{namespace="busy",outcome="overloaded"\\} ${refused.length}\\b`));
  } finally {
    await busy.cleanup();
  }
});

test('bodies past --max-inflight-bytes are answered 503 with Retry-After; the one held is stored', async () => {
  const tight = new Weir({ args: ['--max-body', '65536', '--max-inflight-bytes', '65536', '--system-events=false'] });
  try {
    await tight.start();
    await tight.createNamespace('tight');
    // The first request declares the whole budget and sends its body only after its 100 Continue,
    // which weir gives once it has reserved the bytes.
    const body = 'x'.repeat(65536);
    const held = connect(tight.sinkPort, '127.0.0.1');
    await once(held, 'connect');
    let answer = '';
    held.on('data', (chunk) => { answer += chunk.toString(); });
    held.write('POST /tight HTTP/1.1\r\nHost: 127.0.0.1\r\nce-specversion: 1.0\r\nce-id: held\r\n' +
      'ce-source: /tight\r\nce-type: t\r\ncontent-type: text/plain\r\nexpect: 100-continue\r\n' +
      `content-length: ${body.length}\r\n\r\n`);
    while (!answer.includes('100 Continue')) await once(held, 'data');

    const res = await fetch(`${tight.sink}/tight`, {
      method: 'POST', body: 'second', headers: { ...good, 'ce-id': 'second', 'content-type': 'text/plain' },
    });
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '1');
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
    assert.equal((await res.json()).detail, 'too many request bodies are held in memory; retry later');

    held.write(body);
    while (!/HTTP\/1\.1 202/.test(answer)) await once(held, 'data');
    held.destroy();
    assert.deepEqual((await tight.history('tight')).map((i) => i.event.id), ['held']);
  } finally {
    await tight.cleanup();
  }
});

test('request headers that do not arrive within --header-timeout close the connection, on both listeners', async () => {
  const slow = new Weir({ args: ['--header-timeout', '2', '--idle-timeout', '3', '--system-events=false'] });
  try {
    await slow.start();
    await slow.createNamespace('slow');
    const head = 'POST /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nce-specversion: 1.0\r\nce-source: /slow\r\n' +
      'ce-type: t\r\ncontent-length: 1\r\n';
    // Sends the headers a byte every 200 ms, which keeps libmicrohttpd's idle timeout from ever
    // closing the connection, after a whole request when first is given; resolves to what was
    // answered once the connection is closed, or to 'open' after 15 s.
    const dribble = async (port, first = '') => {
      const socket = connect(port, '127.0.0.1');
      await once(socket, 'connect');
      let answer = '';
      socket.on('data', (chunk) => { answer += chunk.toString(); });
      socket.on('error', () => {});
      const closed = once(socket, 'close').then(() => answer);
      if (first) {
        socket.write(first);
        while (!answer.includes('\r\n\r\n')) await once(socket, 'data'); // a 202 has no body
      }
      let sent = 0;
      const timer = setInterval(() => socket.write(head[sent++ % head.length]), 200);
      let wait;
      const open = new Promise((resolve) => { wait = setTimeout(resolve, 15000, 'open'); });
      const result = await Promise.race([closed, open]);
      clearTimeout(wait);
      clearInterval(timer);
      socket.destroy();
      return result;
    };
    const whole = `${head.replace('ce-type', 'ce-id: kept\r\nce-type')}\r\nx`;
    const [sink, api, kept] = await Promise.all([
      dribble(slow.sinkPort), dribble(slow.apiPort), dribble(slow.sinkPort, whole),
    ]);
    assert.equal(sink, ''); // closed unanswered
    assert.equal(api, '');
    assert.match(kept, /^HTTP\/1\.1 202 /); // the whole request was answered, then the next one cut
    assert.equal(kept.match(/HTTP\/1\.1/g).length, 1);

    assert.equal((await fetch(`${slow.sink}/slow`, { method: 'POST', body: 'x', headers: { ...good, 'ce-id': 'after' } })).status, 202);
    assert.deepEqual((await slow.history('slow')).map((i) => i.event.id), ['kept', 'after']);
    const cut = slow.logs.map((line) => /closed (\d+) connections whose request headers did not arrive within --header-timeout/.exec(line))
      .filter(Boolean).reduce((sum, m) => sum + Number(m[1]), 0);
    assert.equal(cut, 3);
    const metrics = await (await fetch(`${slow.api}/metrics`)).text();
    assert.match(metrics, /^weir_http_header_timeouts_total 3$/m);
  } finally {
    await slow.cleanup();
  }
});

// Starts a request whose declared body of 64 KiB takes the whole --max-inflight-bytes budget, and
// resolves once weir has said 100 Continue. The bytes of the request before are given back when
// its exchange completes, which may be just after its answer reached us: a 503 then is retried.
async function holdBudget(port) {
  for (let attempt = 0; ; attempt++) {
    const held = connect(port, '127.0.0.1');
    await once(held, 'connect');
    let text = '';
    held.on('data', (chunk) => { text += chunk.toString(); });
    held.on('error', () => {});
    const closed = once(held, 'close');
    held.write('POST /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nce-specversion: 1.0\r\nce-id: slow\r\n' +
      'ce-source: /slow\r\nce-type: t\r\nexpect: 100-continue\r\ncontent-length: 65536\r\n\r\n');
    while (!text.includes('\r\n\r\n') && !held.destroyed) await Promise.race([once(held, 'data'), closed]);
    if (text.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) {
      const interim = text.length;
      return { held, closed, answer: () => text.slice(interim) };
    }
    assert.match(text, /^HTTP\/1\.1 503 /);
    assert.ok(attempt < 50, 'the budget was never given back');
    held.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('a body that does not arrive within --body-timeout is cut, and the memory it held freed', async () => {
  const slow = new Weir({ args: ['--max-body', '65536', '--max-inflight-bytes', '65536', '--body-timeout', '2', '--idle-timeout', '60', '--system-events=false'] });
  try {
    await slow.start();
    await slow.createNamespace('slow');
    const send = (id) => fetch(`${slow.sink}/slow`, {
      method: 'POST', body: 'x', headers: { ...good, 'ce-id': id, 'content-type': 'text/plain' },
    });
    // A client that sends no byte of its body, and one that sends a byte every 200 ms: the idle
    // timeout alone would close the first after a minute and the second never.
    for (const dribble of [false, true]) {
      const { held, closed, answer } = await holdBudget(slow.sinkPort);
      const timer = dribble ? setInterval(() => held.write('x'), 200) : null;

      const refused = await send(`refused-${dribble}`);
      assert.equal(refused.status, 503); // the declared body holds the whole budget
      await refused.arrayBuffer();
      let wait;
      const idle = new Promise((resolve) => { wait = setTimeout(resolve, 20000, 'open'); });
      assert.notEqual(await Promise.race([closed, idle]), 'open', 'closed only by the idle timeout');
      clearTimeout(wait);
      clearInterval(timer);
      assert.equal(answer(), ''); // no answer: the connection just closes

      const after = await send(`after-${dribble}`);
      assert.equal(after.status, 202, `dribble: ${dribble}`);
    }
    assert.deepEqual((await slow.history('slow')).map((i) => i.event.id), ['after-false', 'after-true']);
    const metrics = await (await fetch(`${slow.api}/metrics`)).text();
    assert.match(metrics, /weir_events_received_total\{namespace="",outcome="timed_out"\} 2\b/);
    const logged = slow.logs.filter((line) => line.includes('--body-timeout'));
    assert.equal(logged.length, 2, logged.join('\n'));
    assert.match(logged[0], /"level":"info","module":"sink","msg":"closed POST \/slow: its body did not arrive within --body-timeout \(0 bytes of it did\)"/);
    assert.ok(Number(/\((\d+) bytes of it did\)/.exec(logged[1])[1]) > 0, logged[1]); // what dribbled in
  } finally {
    await slow.cleanup();
  }
});

test('past the file size limit, as on a full disk, the sink answers 503 and weir is not ready, until the limit is raised', async () => {
  const full = new Weir({ args: ['--system-events=false'] });
  try {
    await full.start();
    await full.createNamespace('full');
    const send = (id, size = 100) => fetch(`${full.sink}/full`, {
      method: 'POST', body: 'x'.repeat(size), headers: { ...good, 'ce-id': id, 'content-type': 'text/plain' },
    });
    for (const id of ['before-1', 'before-2']) assert.equal((await send(id)).status, 202);
    const before = await full.history('full');
    // The WAL grows with each commit: with the limit at its size, the next commit cannot be
    // written (EFBIG). Without SIGXFSZ ignored, the kernel would kill weir here.
    const wal = statSync(join(full.dataDir, 'weir.db-wal')).size;
    const limit = (value) => execFileSync('prlimit', ['--pid', String(full.proc.pid), `--fsize=${value}:`]);
    limit(wal);
    for (const id of ['refused-1', 'refused-2']) {
      const res = await send(id, 20000);
      assert.equal(res.status, 503, id);
      assert.equal(res.headers.get('content-type'), 'application/problem+json');
      assert.ok(res.headers.get('retry-after'));
      assert.equal((await res.json()).detail, 'the store is unavailable; retry later');
    }
    const ready = async () => (await fetch(`${full.api}/readyz`)).status;
    assert.equal(await ready(), 503);
    assert.deepEqual(await full.history('full'), before); // reads go on, and nothing changed

    limit('unlimited');
    for (let i = 0; await ready() !== 200; i++) {
      assert.ok(i < 100, 'not ready 10 s after the limit was raised');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal((await send('after', 20000)).status, 202);
    assert.equal((await send('refused-1', 20000)).status, 202); // a retry of a refused one is new
    assert.deepEqual((await full.history('full')).map((i) => i.event.id), ['before-1', 'before-2', 'after', 'refused-1']);
    const metrics = await (await fetch(`${full.api}/metrics`)).text();
    assert.match(metrics, /weir_events_received_total\{namespace="full",outcome="store_failed"\} 2\b/);
    assert.equal(full.proc.exitCode, null);
  } finally {
    await full.cleanup();
  }
});

// One request written as it is, bytes and all, as no HTTP client would; resolves to everything
// the server sent until it closed the connection.
function raw(port, text) {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(text));
    let answer = '';
    socket.on('data', (chunk) => { answer += chunk.toString(); });
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

test('an encoded NUL in the path names no namespace, and stores nothing', async () => {
  const before = await snapshot();
  for (const path of ['/alpha%00beta', '/alpha%00', '/%00']) {
    const res = await fetch(`${weir.sink}${path}`, { method: 'POST', headers: { ...good, 'ce-id': 'nul-path' }, body: 'x' });
    assert.equal(res.status, 404, path);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
    assert.equal((await res.json()).detail, 'namespace does not exist');
  }
  const res = await fetch(`${weir.api}/api/v2/namespaces/beta%00/events/history/x`, { method: 'DELETE' });
  assert.equal(res.status, 404);
  await res.arrayBuffer();
  assert.deepEqual(await snapshot(), before); // beta too: its history is still there
});

test('a body whose length is ambiguous is refused, and the connection closed', async () => {
  const before = await snapshot();
  const head = 'POST /alpha HTTP/1.1\r\nHost: x\r\nce-specversion: 1.0\r\nce-source: /frame\r\nce-type: t\r\n' +
    'content-type: application/json\r\n';
  const hidden = `POST /beta HTTP/1.1\r\nHost: x\r\nce-specversion: 1.0\r\nce-source: /frame\r\nce-type: t\r\nce-id: hidden\r\ncontent-length: 2\r\n\r\n{}`;
  for (const [framing, body, status, detail] of [
    ['content-length: 60\r\ntransfer-encoding: chunked\r\n', `0\r\n\r\n${hidden}`, 400, 'Content-Length and Transfer-Encoding together'],
    ['content-length: 2\r\ncontent-length: 200\r\n', `{}${hidden}`, 400, 'more than one Content-Length'],
    ['transfer-encoding: gzip\r\n', '{}', 501, 'the only transfer coding taken is chunked'],
  ]) {
    const answer = await raw(weir.sinkPort, `${head}ce-id: framed\r\n${framing}\r\n${body}`);
    const responses = answer.split('HTTP/1.1 ').length - 1;
    assert.equal(responses, 1, answer);
    assert.match(answer, new RegExp(`^HTTP/1.1 ${status} `));
    assert.match(answer, /\r\nConnection: close\r\n/i);
    assert.match(answer, /\r\nContent-Type: application\/problem\+json\r\n/i);
    assert.equal(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).detail, detail);
  }
  // Content-Type picks the mode and the data's type: given twice, in any mode, neither is taken.
  // (Connection: close, as raw() waits for the close, which libmicrohttpd may not make after the
  // client's half-close of a kept-alive connection: see docs/operations.md.)
  const twice = await raw(weir.sinkPort, `${head}ce-id: typed\r\ncontent-type: application/cloudevents+json\r\n` +
    'connection: close\r\ncontent-length: 2\r\n\r\n{}');
  assert.match(twice, /^HTTP\/1.1 400 /);
  assert.equal(JSON.parse(twice.slice(twice.indexOf('\r\n\r\n') + 4)).detail, 'Content-Type is given more than once');
  assert.deepEqual(await snapshot(), before);
});
