// Load and faults on loopback: 1,000 concurrent streaming clients, a third of them hanging up mid-stream. Every
// completed stream is well-formed; afterwards /metrics shows no running or waiting request and no KV block in use.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, metrics, request, streamClient, checkStream, MODEL } from './harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let srv;
after(async () => { if (srv) assert.equal(await srv.stop(), 0, srv.log()); });

test('1,000 concurrent streams, a third hanging up mid-stream: well-formed streams, everything freed', async () => {
  srv = await startServer(['--max-queued', '2000']);
  const t0 = Date.now();
  const clients = [];
  for (let i = 0; i < 1000; ++i) {
    const hangUp = i % 3 === 2;
    const body = { model: MODEL, prompt: `def f${i}(x):\n`, max_tokens: hangUp ? 200 : 8, stream: true,
      ignore_eos: hangUp };
    clients.push(streamClient(srv.port, body, hangUp));
  }
  const results = await Promise.all(clients);
  const seconds = (Date.now() - t0) / 1000;
  const done = results.filter((r) => r.kind === 'done');
  const hung = results.filter((r) => r.kind === 'hung-up');
  assert.equal(hung.length, 333);
  assert.equal(done.length, 667, JSON.stringify(results.find((r) => r.kind === 'error')));
  for (const r of done) checkStream(r, 8);
  // The server notices each hang-up, cancels the request and frees its blocks.
  let m;
  for (let i = 0; i < 200; ++i) {
    m = await metrics(srv.port);
    if (m['kiln:num_requests_running'] === 0 && m['kiln:num_requests_waiting'] === 0 &&
      m['kiln:kv_blocks_used'] === 0) break;
    await sleep(50);
  }
  assert.equal(m['kiln:num_requests_running'], 0);
  assert.equal(m['kiln:num_requests_waiting'], 0);
  assert.equal(m['kiln:kv_blocks_used'], 0);
  assert.equal(m['kiln:kv_cache_usage_perc'], 0);
  const text = (await request(srv.port, { method: 'GET', path: '/metrics' })).body;
  const aborted = Number(/kiln:request_success_total\{[^}]*finished_reason="abort"\} (\d+)/.exec(text)[1]);
  assert.ok(aborted >= 300 && aborted <= 333, `aborted ${aborted}`);  // at 200 tokens, hardly any finished first
  assert.equal(m['kiln:open_connections'], 1);  // this /metrics request's own
  console.log(`# 1,000 clients in ${seconds.toFixed(1)} s; ${aborted} cancelled by hang-ups`);
  // And it still serves.
  const ok = await request(srv.port, { body: { model: MODEL, prompt: 'x', max_tokens: 2 } });
  assert.equal(ok.status, 200);
});
