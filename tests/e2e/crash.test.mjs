// Durability: events answered 202 survive kill -9 and an orderly stop mid-load, exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
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

test('SIGTERM under load finishes what is in flight and exits cleanly', async () => {
  const weir = new Weir();
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
});
