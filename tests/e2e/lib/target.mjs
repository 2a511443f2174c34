// A receiving server on loopback for the end-to-end tests: a listener's target, or the sink
// that the source side sends to.
import http from 'node:http';
import https from 'node:https';

// A target: records each request; `answer(req, n)` returns { status, headers, body }.
export class Target {
  constructor(answer = () => ({ status: 202 })) {
    this.answer = answer;
    this.got = [];
    this.waiters = [];
  }

  // tls: { key, cert } in PEM for an https target.
  async start(port = 0, tls = null) {
    const handler = (req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const hit = { at: Date.now(), headers: req.headers, body: Buffer.concat(chunks).toString() };
        this.got.push(hit);
        const a = this.answer(hit, this.got.length);
        res.writeHead(a.status, a.headers || {});
        res.end(a.body || '');
        this.waiters = this.waiters.filter((w) => !w());
      });
    };
    this.server = tls ? https.createServer(tls, handler) : http.createServer(handler);
    await new Promise((r) => this.server.listen(port, '127.0.0.1', r));
    this.port = this.server.address().port;
    this.url = `${tls ? 'https' : 'http'}://127.0.0.1:${this.port}/`;
    return this;
  }

  // Resolves once n requests arrived; rejects after ms.
  until(n, ms = 10000) {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.got.length >= n) { clearTimeout(timer); resolve(this.got); return true; }
        return false;
      };
      const timer = setTimeout(() => reject(new Error(`${this.got.length} of ${n} requests arrived`)), ms);
      if (!check()) this.waiters.push(check);
    });
  }

  stop() {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(r));
  }
}
