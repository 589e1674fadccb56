// SIGTERM under load: the server stops accepting, every request accepted before the signal finishes with a
// well-formed stream, and the process exits 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer, streamClient, checkStream, request, MODEL } from './harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('SIGTERM during load loses no accepted request and exits 0', async () => {
  const srv = await startServer(['--max-queued', '2000']);
  const n = 300;
  let accepted = 0;
  // A client that counts itself accepted when the response headers arrive (the request is queued by then).
  const clients = [];
  for (let i = 0; i < n; ++i) {
    clients.push(new Promise((resolve) => {
      const data = JSON.stringify({ model: MODEL, prompt: `class C${i}:\n`, max_tokens: 24, ignore_eos: true,
        stream: true });
      const req = http.request({ host: '127.0.0.1', port: srv.port, method: 'POST', path: '/v1/completions',
        agent: false,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } }, (res) => {
        ++accepted;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { body += d; });
        res.on('end', () => resolve({ kind: 'done', status: res.statusCode, body }));
        res.on('error', (e) => resolve({ kind: 'error', error: String(e) }));
      });
      req.on('error', (e) => resolve({ kind: 'error', error: String(e) }));
      req.end(data);
    }));
  }
  for (let i = 0; accepted < n && i < 600; ++i) await sleep(50);
  assert.equal(accepted, n);
  srv.proc.kill('SIGTERM');
  await sleep(100);
  // Draining: no new connections (the listening socket is closed).
  await assert.rejects(request(srv.port, { method: 'GET', path: '/health' }));
  const results = await Promise.all(clients);
  for (const r of results) {
    checkStream(r, 24);
    const chunks = r.body.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)));
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'length');  // all 24 tokens, not cut short
  }
  assert.equal(await srv.exited, 0, srv.log());
  assert.match(srv.log(), /draining/);
});

test('a stream still running at the drain deadline is ended, and the server exits 0', async () => {
  const srv = await startServer(['--drain-timeout', '0.5']);
  const body = { model: MODEL, prompt: 'x', max_tokens: 400, ignore_eos: true, stream: true };
  const client = streamClient(srv.port, body, false);
  await sleep(300);
  srv.proc.kill('SIGTERM');
  const r = await client;
  assert.equal(r.kind, 'done');
  const events = r.body.split('\n\n');
  assert.equal(JSON.parse(events.at(-3).slice(6)).error.code, 'shutdown');  // an error event, then [DONE]
  assert.equal(events.at(-2), 'data: [DONE]');
  assert.equal(await srv.exited, 0, srv.log());
});
