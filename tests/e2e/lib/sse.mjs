// A tiny server-sent events client on node's http module: it keeps every message and comment,
// and lets a test wait for a condition or cut the connection mid-stream.
import http from 'node:http';

export class SseClient {
  constructor(url, headers = {}) {
    this.url = url;
    this.headers = headers;
    this.messages = []; // { id, event, data }
    this.comments = [];
    this.ended = false;
    this.waiters = [];
    this.pending = '';
    this.current = { data: [] };
  }

  // Resolves once the response head arrived: { status, headers, body (only when not 200) }.
  open() {
    return new Promise((resolve, reject) => {
      this.req = http.get(this.url, { headers: { accept: 'text/event-stream', ...this.headers } }, (res) => {
        this.res = res;
        res.setEncoding('utf8');
        if (res.statusCode !== 200) {
          let body = '';
          res.on('data', (c) => { body += c; });
          res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
          return;
        }
        res.on('data', (chunk) => this.feed(chunk));
        res.on('end', () => this.finish());
        res.on('error', () => this.finish());
        resolve({ status: res.statusCode, headers: res.headers });
      });
      this.req.on('error', (err) => { this.finish(); reject(err); });
    });
  }

  feed(chunk) {
    this.pending += chunk;
    let nl;
    while ((nl = this.pending.indexOf('\n')) >= 0) {
      const line = this.pending.slice(0, nl).replace(/\r$/, '');
      this.pending = this.pending.slice(nl + 1);
      this.line(line);
    }
    this.check();
  }

  line(line) {
    if (line === '') {
      if (this.current.data.length > 0 || this.current.id !== undefined) {
        this.messages.push({ id: this.current.id, event: this.current.event || 'message', data: this.current.data.join('\n') });
      }
      this.current = { data: [] };
      return;
    }
    if (line.startsWith(':')) {
      this.comments.push(line.slice(1).trim());
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.current.data.push(value);
    else if (field === 'id') this.current.id = value;
    else if (field === 'event') this.current.event = value;
  }

  finish() {
    this.ended = true;
    this.check();
  }

  // The CloudEvents received so far, parsed, with their seq.
  events() {
    return this.messages.filter((m) => m.event === 'cloudevent').map((m) => ({ seq: Number(m.id), event: JSON.parse(m.data) }));
  }

  lastId() {
    const evs = this.messages.filter((m) => m.id !== undefined);
    return evs.length ? evs.at(-1).id : undefined;
  }

  // Resolves when pred(this) holds; rejects after timeoutMs.
  until(pred, timeoutMs = 10000) {
    if (pred(this)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      w.timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`SSE wait timed out: ${this.messages.length} messages, ${this.comments.length} comments, ended ${this.ended}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  check() {
    for (const w of [...this.waiters]) {
      if (w.pred(this)) {
        clearTimeout(w.timer);
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve();
      }
    }
  }

  // Cuts the connection as a crashed client would.
  kill() {
    this.req.destroy();
    this.ended = true;
  }
}
