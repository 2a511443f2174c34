// Helpers of bench/deliver.sh.
//   node deliver_load.mjs preload SINK_URL COUNT
//     stores COUNT events (300-byte data) in batches of 1000, as fast as the sink takes them.
//   node deliver_load.mjs latency SINK_URL API_URL NS RATE SECONDS
//     starts a target on loopback, has a listener deliver to it, sends RATE events a second for
//     SECONDS (paced by the clock, not by the answers) and prints the time from each event's
//     202 to its receipt at the target: p50, p99, max.
import http from 'node:http';

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const data = JSON.stringify({ pad: 'x'.repeat(288) });

function post(url, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function preload(sink, count) {
  const batch = 1000;
  const senders = 8;
  let next = 0;
  const run = async () => {
    while (next < count) {
      const start = next;
      next += batch;
      const evs = [];
      for (let i = start; i < Math.min(start + batch, count); i++) {
        evs.push({ specversion: '1.0', id: `p${i}`, source: '/bench', type: 'bench', data: { pad: 'x'.repeat(288) } });
      }
      const status = await post(sink, { 'content-type': 'application/cloudevents-batch+json' }, JSON.stringify(evs));
      if (status !== 202) throw new Error(`preload: ${status}`);
    }
  };
  await Promise.all(Array.from({ length: senders }, run));
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function latency(sink, api, ns, rate, seconds) {
  const acked = new Map();
  const received = new Map();
  const target = http.createServer((req, res) => {
    received.set(req.headers['ce-id'], process.hrtime.bigint());
    req.resume();
    req.on('end', () => { res.writeHead(202); res.end(); });
  });
  await new Promise((r) => target.listen(0, '127.0.0.1', r));
  const spec = { mode: 'simple', events: [{ type: 'paced' }], sink: `http://127.0.0.1:${target.address().port}/` };
  const res = await fetch(`${api}/api/v2/namespaces/${ns}/events/listeners`, { method: 'POST', body: JSON.stringify(spec) });
  if (res.status !== 201) throw new Error(`listener: ${res.status}`);

  const total = rate * seconds;
  const t0 = process.hrtime.bigint();
  const pending = [];
  let sent = 0;
  while (sent < total) {
    const due = Number(process.hrtime.bigint() - t0) / 1e9 * rate;
    for (; sent < total && sent < due; sent++) {
      const id = `l${sent}`;
      pending.push(post(sink, { 'ce-specversion': '1.0', 'ce-id': id, 'ce-source': '/bench', 'ce-type': 'paced',
        'content-type': 'application/json' }, data).then((status) => {
        if (status === 202) acked.set(id, process.hrtime.bigint());
      }));
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(pending);
  const deadline = Date.now() + 10000;
  while (received.size < acked.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const lat = [];
  for (const [id, at] of acked) {
    const got = received.get(id);
    if (got !== undefined) lat.push(Math.max(0, Number(got - at) / 1e6));
  }
  lat.sort((a, b) => a - b);
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`sent ${total} at ${rate}/s in ${elapsed.toFixed(1)} s; acknowledged ${acked.size}; delivered ${lat.length}`);
  console.log(`202 -> target: p50 ${percentile(lat, 50).toFixed(2)} ms, p99 ${percentile(lat, 99).toFixed(2)} ms, max ${lat[lat.length - 1].toFixed(2)} ms`);
  target.close();
  agent.destroy();
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'preload') {
  await preload(args[0], Number(args[1]));
  agent.destroy();
} else if (mode === 'latency') {
  await latency(args[0], args[1], args[2], Number(args[3]), Number(args[4]));
} else {
  console.error('usage: deliver_load.mjs preload SINK COUNT | latency SINK API NS RATE SECONDS');
  process.exit(2);
}
