// Starts the real weir binary on loopback for a test, and talks to it.
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const WEIR_BIN = process.env.WEIR_BIN || new URL('../../../build/src/weir', import.meta.url).pathname;

// A running `weir serve` with its own data directory and ephemeral ports.
export class Weir {
  constructor({ dataDir, args = [], env = {} } = {}) {
    this.ownsDir = !dataDir;
    this.dataDir = dataDir || mkdtempSync(join(tmpdir(), 'weir-e2e-'));
    this.args = args;
    this.env = env;
    this.logs = [];
  }

  async start() {
    this.logs = [];
    this.proc = spawn(WEIR_BIN, ['serve', '--sink-addr', '127.0.0.1:0', '--api-addr', '127.0.0.1:0',
      '--data-dir', this.dataDir, ...this.args], {
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })));
    await new Promise((resolve, reject) => {
      let pending = '';
      const timer = setTimeout(() => reject(new Error(`weir did not start:\n${this.logs.join('\n')}`)), 20000);
      this.proc.stderr.on('data', (chunk) => {
        pending += chunk.toString();
        let nl;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          this.logs.push(line);
          const m = /"msg":"(sink|api) listening on .* \(port (\d+)\)"/.exec(line);
          if (m) this[m[1] + 'Port'] = Number(m[2]);
          if (line.includes('"msg":"ready"')) { clearTimeout(timer); resolve(); }
        }
      });
      this.exited.then(({ code }) => { clearTimeout(timer); reject(new Error(`weir exited with ${code}:\n${this.logs.join('\n')}`)); });
    });
    this.sink = `http://127.0.0.1:${this.sinkPort}`;
    this.api = `http://127.0.0.1:${this.apiPort}`;
    return this;
  }

  // Stops with SIGTERM (or the signal given) and waits for the exit.
  async stop(signal = 'SIGTERM') {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return this.exited;
    this.proc.kill(signal);
    return this.exited;
  }

  async cleanup() {
    await this.stop('SIGKILL');
    if (this.ownsDir) rmSync(this.dataDir, { recursive: true, force: true });
  }

  async createNamespace(name) {
    const res = await fetch(`${this.api}/api/v2/namespaces/${name}`, { method: 'PUT' });
    if (res.status !== 201 && res.status !== 200) throw new Error(`PUT namespace ${name}: ${res.status}`);
    return res.json();
  }

  // Every stored event of a namespace, oldest first, read through the history API.
  async history(ns) {
    const items = [];
    let cursor = null;
    for (;;) {
      const url = `${this.api}/api/v2/namespaces/${ns}/events/history?limit=1000` + (cursor ? `&cursor=${cursor}` : '');
      const res = await fetch(url);
      if (res.status !== 200) throw new Error(`history ${ns}: ${res.status} ${await res.text()}`);
      const page = await res.json();
      items.push(...page.items);
      if (!page.next_cursor) break;
      cursor = page.next_cursor;
    }
    return items.reverse();
  }
}

// Runs curl with the arguments given; resolves to { status, headers, body }.
export function curl(args) {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '-i', ...args], { encoding: 'buffer', maxBuffer: 64 << 20 }, (err, stdout) => {
      if (err) return reject(err);
      const text = stdout.toString('latin1');
      let split = text.indexOf('\r\n\r\n');
      let head = text.slice(0, split);
      // curl prints an interim "100 Continue" block first for large bodies.
      while (/^HTTP\/\S+ 100/.test(head)) {
        const rest = text.slice(split + 4);
        const next = rest.indexOf('\r\n\r\n');
        head = rest.slice(0, next);
        split = split + 4 + next;
      }
      const lines = head.split('\r\n');
      const status = Number(lines[0].split(' ')[1]);
      const headers = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status, headers, body: stdout.subarray(Buffer.byteLength(text.slice(0, split + 4), 'latin1')) });
    });
  });
}
