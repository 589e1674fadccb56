// kiln bench --url: the synthetic benchmark over HTTP reports what the in-process one reports (tokens, requests).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, KILN, ENGINE, MODEL } from './harness.mjs';

test('bench --url: every request completes with its tokens; the same workload as in-process', async () => {
  const srv = await startServer();
  const dir = mkdtempSync(join(tmpdir(), 'kiln-bench-'));
  try {
    const args = ['bench', '--engine', ENGINE, '--num-requests', '24', '--input-len', '20', '--input-len-std', '4',
      '--output-len', '12', '--request-rate', '200', '--concurrency', '8', '--threads', '2'];
    execFileSync(KILN, [...args, '--url', srv.url, '--model-name', MODEL, '--json-out', join(dir, 'http.json')],
      { stdio: ['ignore', 'ignore', 'inherit'] });
    execFileSync(KILN, [...args, '--kv-cache-bytes', String(64 << 20), '--json-out', join(dir, 'local.json')],
      { stdio: ['ignore', 'ignore', 'inherit'] });
    const h = JSON.parse(readFileSync(join(dir, 'http.json'), 'utf8'));
    const l = JSON.parse(readFileSync(join(dir, 'local.json'), 'utf8'));
    assert.equal(h.url, srv.url);
    assert.equal(h.results.failed_requests, 0);
    assert.equal(h.results.completed_requests, 24);
    assert.equal(h.results.output_tokens, 24 * 12);
    assert.equal(h.results.input_tokens, l.results.input_tokens);  // the same prompts
    assert.equal(h.results.ttft_ms.count, 24);
    assert.equal(h.results.itl_ms.count, 24 * 11);  // a chunk per token
    assert.ok(h.results.output_tokens_per_s > 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    assert.equal(await srv.stop(), 0);
  }
});
