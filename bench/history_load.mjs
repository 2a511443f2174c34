// Helpers of bench/history.sh; plain node, no dependencies.
//   node history_load.mjs preload SINK_URL COUNT SENDERS
//     stores COUNT events in batches of 1000 (batched mode) from SENDERS concurrent senders.
//     One event in 10 has the type weir.bench.rare (the others weir.bench.common), one in 100
//     carries the word "needle" in its data, and the source is one of 8, so that the filters
//     of the history queries each select a known minority.
//   node history_load.mjs query API_URL NS COUNT N
//     times history pages of 100 of a namespace holding the COUNT preloaded events: newest,
//     deep (reached by following cursors), oldest, and filtered by type, source, text and time;
//     each N times in a row, one request at a time (those that read nearly every event fewer).
//   node history_load.mjs fanout SINK_URL API_URL NS SUBSCRIBERS RATE SECONDS
//     opens SUBSCRIBERS live streams (history/subscribe) on NS, unless SUBSCRIBERS is 0, then
//     sends RATE binary-mode events a second for SECONDS, paced by the clock, and prints the
//     sink's figures and, with subscribers, what each received and the time from each event's
//     202 to its receipt.
import http from 'node:http';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const BATCH = 1000;
const now = () => process.hrtime.bigint(); // CLOCK_MONOTONIC: comparable across threads
const ms = (a, b) => Number(b - a) / 1e6;

function request(url, { method = 'GET', agent, headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function percentile(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN;
}

// ---- preload ----------------------------------------------------------------------------

function preloadEvent(i) {
  return {
    specversion: '1.0',
    id: `p${i}`,
    source: `/bench/${i % 8}`,
    type: i % 10 === 3 ? 'weir.bench.rare' : 'weir.bench.common',
    data: { n: i, tag: i % 100 === 7 ? 'needle' : 'hay', pad: 'x'.repeat(100) },
  };
}

async function preload(sink, count, senders) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: senders });
  const headers = { 'content-type': 'application/cloudevents-batch+json' };
  const t0 = now();
  let next = 0;
  const send = async () => {
    while (next < count) {
      const start = next;
      next = Math.min(next + BATCH, count);
      const evs = [];
      for (let i = start; i < next; i++) evs.push(preloadEvent(i));
      const res = await request(sink, { method: 'POST', agent, headers, body: JSON.stringify(evs) });
      if (res.status !== 202) throw new Error(`preload: ${res.status} ${res.body}`);
    }
  };
  await Promise.all(Array.from({ length: senders }, send));
  const s = ms(t0, now()) / 1000;
  console.log(`preload:        ${count} events in ${s.toFixed(1)} s (${(count / s).toFixed(0)} events/s, ` +
    `batches of ${BATCH}, ${senders} senders)`);
  agent.destroy();
}

// ---- history queries --------------------------------------------------------------------

async function get(url, agent) {
  const t = now();
  const res = await request(url, { agent });
  const took = ms(t, now());
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${res.body}`);
  return { took, body: JSON.parse(res.body) };
}

async function history(api, ns, params, agent) {
  const { took, body } = await get(`${api}/api/v2/namespaces/${ns}/events/history?${new URLSearchParams(params)}`, agent);
  return { took, items: body.items, cursor: body.next_cursor };
}

// Follows next_cursor `hops` times from the newest page and returns the cursor reached.
async function follow(api, ns, params, hops, agent) {
  let cursor;
  for (let i = 0; i < hops; i++) {
    const page = await history(api, ns, { ...params, ...(cursor ? { cursor } : {}) }, agent);
    if (!page.cursor) throw new Error(`ran out of pages after ${i + 1} hops`);
    cursor = page.cursor;
  }
  return cursor;
}

// Times `fetchOne` n times in a row; it answers the items it got. Prints one row of the table.
async function timeRow(label, n, fetchOne) {
  const lat = [];
  let items = 0;
  const t0 = now();
  for (let i = 0; i < n; i++) {
    const t = now();
    items = (await fetchOne()).length;
    lat.push(ms(t, now()));
  }
  const total = ms(t0, now()) / 1000;
  lat.sort((a, b) => a - b);
  console.log(`${label.padEnd(34)} ${String(items).padStart(5)} ${String(n).padStart(5)} ` +
    `${percentile(lat, 50).toFixed(2).padStart(9)} ${percentile(lat, 99).toFixed(2).padStart(9)} ` +
    `${(n / total).toFixed(0).padStart(8)}`);
}

// A history page, checked against its filter, so that a wrong answer is not timed as a fast one.
function timeQuery(api, ns, label, params, n, agent, check) {
  return timeRow(label, n, async () => {
    const { items } = await history(api, ns, params, agent);
    if (check && !items.every(check)) throw new Error(`${label}: an item does not match its filter`);
    return items;
  });
}

// A search that matches little: a page examines at most 10,000 events, so the client follows
// next_cursor until a page holds an item or none is left. Timed as one search, all its pages.
function timeSearch(api, ns, label, params, n, agent) {
  return timeRow(label, n, async () => {
    let cursor;
    for (;;) {
      const page = await history(api, ns, { ...params, ...(cursor ? { cursor } : {}) }, agent);
      if (page.items.length > 0 || !page.cursor) return page.items;
      cursor = page.cursor;
    }
  });
}

// history/{id}: one event by its id.
function timeGet(api, ns, label, id, n, agent) {
  return timeRow(label, n, async () => {
    const { body } = await get(`${api}/api/v2/namespaces/${ns}/events/history/${id}`, agent);
    if (body.event.id !== id) throw new Error(`${label}: got ${body.event.id}`);
    return [body];
  });
}

async function query(api, ns, count, n) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const few = Math.max(3, Math.ceil(n / 40)); // the queries that read (nearly) every event
  // As deep as a hundredth of the events (10,000 of a million), a twentieth for the rare type.
  const hops = Math.max(1, Math.min(10, Math.floor(count / 100000)));
  const page = { limit: '100' };
  const deep = await follow(api, ns, { limit: '1000' }, hops, agent);
  const rareHops = Math.max(1, Math.min(5, Math.floor(count / 200000)));
  const rareDeep = await follow(api, ns, { limit: '1000', type: 'rare' }, rareHops, agent);

  // The preload is the namespace's only writer, so its seqs are contiguous: the oldest event
  // is COUNT - 1 below the newest. `until` is the receipt time of the event 1% up from it.
  const newest = (await history(api, ns, { limit: '1' }, agent)).items[0].seq;
  const oldestPage = String(newest - count + 101);
  const at1pct = await history(api, ns, { limit: '1', cursor: String(newest - Math.floor(count * 0.99)) }, agent);
  const until = at1pct.items[0].received;

  const type = (it) => it.event.type.includes('rare');
  const text = (it) => JSON.stringify(it.event).includes('needle');
  console.log(`history of ${ns}: pages of 100, newest first, one request at a time`);
  console.log(`${'query'.padEnd(34)} items     n   p50 (ms)  p99 (ms)    req/s`);
  await timeQuery(api, ns, 'newest page', page, n, agent);
  await timeQuery(api, ns, `deep page (${hops} hops of 1000)`, { ...page, cursor: deep }, n, agent);
  await timeQuery(api, ns, 'oldest page', { ...page, cursor: oldestPage }, n, agent);
  await timeQuery(api, ns, 'type=rare (10%)', { ...page, type: 'rare' }, n, agent, type);
  await timeQuery(api, ns, `type=rare, deep (${rareHops} hops)`, { ...page, type: 'rare', cursor: rareDeep }, n, agent, type);
  await timeQuery(api, ns, 'source=/bench/5 (12.5%)', { ...page, source: '/bench/5' }, n, agent,
    (it) => it.event.source === '/bench/5');
  await timeQuery(api, ns, 'text=needle (1%)', { ...page, text: 'needle' }, n, agent, text);
  await timeSearch(api, ns, 'text matching nothing (every page)', { ...page, text: 'absent' }, few, agent);
  await timeSearch(api, ns, 'until= oldest 1% (to its 1st page)', { ...page, until }, few, agent);
  await timeGet(api, ns, 'history/{id}, newest event', `p${count - 1}`, n, agent);
  await timeGet(api, ns, 'history/{id}, oldest event', 'p0', n, agent);
  agent.destroy();
}

// ---- fan-out to live streams ------------------------------------------------------------

// A worker thread holding some of the subscribers, so that parsing their streams does not
// delay the loader's clock. It records, per subscriber, when each event id first arrived.
function subscriberWorker() {
  const { api, ns, count, total } = workerData;
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const subs = Array.from({ length: count }, () => ({ at: new Float64Array(total), got: 0, dups: 0 }));
  let open = 0;
  for (const sub of subs) {
    const url = `${api}/api/v2/namespaces/${ns}/events/history/subscribe`;
    const req = http.get(url, { agent, headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) throw new Error(`subscribe: ${res.statusCode}`);
      if (++open === count) parentPort.postMessage({ ready: true });
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (chunk) => {
        const t = Number(now()) / 1e6; // ms; a double holds the ns exactly for 104 days of uptime
        buf += chunk;
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const msg = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const m = /"id":"f(\d+)"/.exec(msg); // the loader's ids; the data holds no "id"
          if (m === null) continue; // retry:, keep-alive comments
          const i = Number(m[1]);
          if (sub.at[i] !== 0) sub.dups++;
          else { sub.at[i] = t; sub.got++; }
        }
      });
    });
    req.on('error', (e) => { throw e; });
    sub.req = req;
  }
  parentPort.on('message', () => { // the loader is done: hand over what arrived, then stop
    for (const sub of subs) sub.req.destroy();
    parentPort.postMessage({ subs: subs.map(({ at, got, dups }) => ({ at, got, dups })) });
  });
  // Lets the loader know how far the subscribers are, so that it waits no longer than needed.
  setInterval(() => parentPort.postMessage({ got: subs.reduce((s, x) => Math.min(s, x.got), Infinity) }), 50);
}

async function fanout(sink, api, ns, nsubs, rate, seconds) {
  const total = rate * seconds;
  const threads = nsubs === 0 ? 0 : Math.min(2, nsubs);
  const workers = [];
  const least = new Array(threads).fill(0); // the fewest events any subscriber of a worker has
  for (let w = 0; w < threads; w++) {
    const count = Math.floor(nsubs / threads) + (w < nsubs % threads ? 1 : 0);
    const worker = new Worker(new URL(import.meta.url), { workerData: { api, ns, count, total } });
    worker.on('error', (e) => { console.error(e); process.exit(1); });
    await new Promise((resolve) => worker.on('message', function ready(m) {
      if (m.ready) { worker.off('message', ready); resolve(); }
    }));
    worker.on('message', (m) => { if (m.got !== undefined) least[w] = m.got; });
    workers.push(worker);
  }

  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const data = JSON.stringify({ pad: 'x'.repeat(288) });
  const sentAt = new Float64Array(total); // ms on the monotonic clock
  const acked = new Float64Array(total); // likewise; 0: not acknowledged
  const lat202 = [];
  let failed = 0;
  const t0 = now();
  const pending = [];
  let sent = 0;
  while (sent < total) {
    const due = (ms(t0, now()) / 1000) * rate;
    for (; sent < total && sent < due; sent++) {
      const i = sent;
      const headers = { 'ce-specversion': '1.0', 'ce-id': `f${i}`, 'ce-source': '/bench/fanout',
        'ce-type': 'weir.bench.fanout', 'content-type': 'application/json' };
      const t = now();
      sentAt[i] = Number(t) / 1e6;
      pending.push(request(sink, { method: 'POST', agent, headers, body: data }).then((res) => {
        const at = now();
        if (res.status === 202) { acked[i] = Number(at) / 1e6; lat202.push(ms(t, at)); } else failed++;
      }, () => { failed++; }));
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(pending);
  const elapsed = ms(t0, now()) / 1000;
  agent.destroy();
  const nacked = lat202.length;
  lat202.sort((a, b) => a - b);
  const label = nsubs ? `${nsubs} subscribers` : 'no subscribers';
  console.log(`${label}: sent ${total} at ${rate}/s; ${nacked} answered 202 (${failed} not) in ` +
    `${elapsed.toFixed(2)} s: ${(nacked / elapsed).toFixed(0)} events/s; ` +
    `request -> 202 p50 ${percentile(lat202, 50).toFixed(2)} ms, p99 ${percentile(lat202, 99).toFixed(2)} ms, ` +
    `max ${lat202[nacked - 1].toFixed(2)} ms`);
  // Machine-readable, for the ratio the driver prints.
  console.log(`#sink ${nacked / elapsed} ${percentile(lat202, 50)} ${percentile(lat202, 99)}`);
  if (threads === 0) return;

  // Every subscriber should get every acknowledged event; wait up to 10 s for the last ones.
  const deadline = Date.now() + 10000;
  while (Math.min(...least) < nacked && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const subs = (await Promise.all(workers.map((w) => new Promise((resolve) => {
    w.on('message', (m) => { if (m.subs) resolve(m.subs); });
    w.postMessage('stop');
  })))).flat();
  await Promise.all(workers.map((w) => w.terminate()));

  // weir wakes the streams and answers the request at the same moment, so a subscriber often
  // has an event before the loader's thread has read its 202: those count as 0 ms, and how
  // many there were is printed. The time from sending to receipt has no such ambiguity.
  const lat = [];
  const end2end = [];
  let dups = 0;
  let early = 0;
  for (const sub of subs) {
    dups += sub.dups;
    for (let i = 0; i < total; i++) {
      if (acked[i] === 0 || sub.at[i] === 0) continue;
      if (sub.at[i] < acked[i]) early++;
      lat.push(Math.max(0, sub.at[i] - acked[i]));
      end2end.push(sub.at[i] - sentAt[i]);
    }
  }
  lat.sort((a, b) => a - b);
  end2end.sort((a, b) => a - b);
  const got = subs.map((s) => s.got);
  const complete = got.filter((g) => g >= nacked).length;
  console.log(`received per subscriber: min ${Math.min(...got)}, max ${Math.max(...got)}; ` +
    `${complete} of ${subs.length} received all ${nacked}; duplicates ${dups}`);
  const fig = (l) => `p50 ${percentile(l, 50).toFixed(2)} ms, p99 ${percentile(l, 99).toFixed(2)} ms, ` +
    `max ${l[l.length - 1].toFixed(2)} ms`;
  console.log(`202 -> subscriber (${lat.length} receipts): ${fig(lat)} ` +
    `(${(100 * early / lat.length).toFixed(0)}% arrived before the loader read the 202)`);
  console.log(`request sent -> subscriber:  ${fig(end2end)}`);
}

// ---- main -------------------------------------------------------------------------------

if (!isMainThread) {
  subscriberWorker();
} else {
  const [mode, ...args] = process.argv.slice(2);
  if (mode === 'preload') {
    await preload(args[0], Number(args[1]), Number(args[2]));
  } else if (mode === 'query') {
    await query(args[0], args[1], Number(args[2]), Number(args[3]));
  } else if (mode === 'fanout') {
    await fanout(args[0], args[1], args[2], Number(args[3]), Number(args[4]), Number(args[5]));
  } else {
    console.error('usage: history_load.mjs preload SINK COUNT SENDERS | query API NS COUNT N | ' +
      'fanout SINK API NS SUBSCRIBERS RATE SECONDS');
    process.exit(2);
  }
}
