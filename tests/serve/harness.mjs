// Starts `kiln serve` on the tiny-code engine of setup.sh (a free port, read from --port-file) and stops it.
// Environment (set by ctest, see CMakeLists.txt): KILN_BINARY, KILN_SERVE_DIR (setup.sh's output).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import assert from 'node:assert/strict';

export const KILN = process.env.KILN_BINARY;
export const SERVE_DIR = process.env.KILN_SERVE_DIR;
export const ENGINE = SERVE_DIR && join(SERVE_DIR, 'engine');
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CHAT_TEMPLATE = join(ROOT, 'tests', 'data', 'serve', 'chat_template.jinja');
export const MODEL = 'tiny-code';
if (!KILN || !SERVE_DIR) throw new Error('set KILN_BINARY and KILN_SERVE_DIR (ctest does; see tests/serve/setup.sh)');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// { url, port, proc, log(), stop() }: stop() sends SIGTERM and resolves with the exit code.
export async function startServer(extra = []) {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-serve-'));
  const portFile = join(dir, 'port');
  const args = ['serve', '--engine', ENGINE, '--port', '0', '--port-file', portFile, '--model-name', MODEL,
    '--chat-template', CHAT_TEMPLATE, '--threads', '2', '--kv-cache-bytes', String(64 << 20), ...extra];
  const proc = spawn(KILN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve(code ?? signal)));
  for (let i = 0; !existsSync(portFile); ++i) {
    if (proc.exitCode !== null || i > 600) throw new Error(`kiln serve did not start:\n${out}`);
    await sleep(50);
  }
  const port = Number(readFileSync(portFile, 'utf8').trim());
  const url = `http://127.0.0.1:${port}`;
  return {
    url, port, proc, exited,
    log: () => out,
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      const code = await exited;
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

// One HTTP request; resolves { status, headers, body } (body as a string). `raw`: send these bytes as the request.
export function request(port, { method = 'POST', path = '/v1/completions', body, headers = {}, raw } = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body));
    const req = http.request({ host: '127.0.0.1', port, method, path, agent: false,
      headers: { 'Content-Type': 'application/json',
        ...(data !== undefined ? { 'Content-Length': Buffer.byteLength(data) } : {}), ...headers } },
    (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
        body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

export async function metrics(port) {
  const r = await request(port, { method: 'GET', path: '/metrics' });
  const values = {};
  for (const line of r.body.split('\n')) {
    const m = /^(kiln:[a-z_]+)(\{[^}]*\})? ([-+0-9.eInf]+)$/.exec(line);
    if (m && !(m[1] in values)) values[m[1]] = Number(m[3]);
  }
  return values;
}

// Splits an SSE body into its events' data fields; throws on anything that is not "data: ...\n\n".
export function sseEvents(body) {
  if (!body.endsWith('\n\n'))
    throw new Error(`SSE body does not end with a blank line: ${JSON.stringify(body.slice(-40))}`);
  return body.slice(0, -2).split('\n\n').map((e) => {
    if (!e.startsWith('data: ') || e.includes('\n')) throw new Error(`not an SSE data event: ${JSON.stringify(e)}`);
    return e.slice(6);
  });
}

// `kiln run`'s greedy text for a prompt: the reference the server's greedy completions must equal.
export function kilnRun(prompt, maxNewTokens) {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-run-'));
  const out = join(dir, 'out.json');
  execFileSync(KILN, ['run', '--engine', ENGINE, '--prompt', prompt, '--max-new-tokens', String(maxNewTokens),
    '--threads', '2', '--output-file', out], { stdio: ['ignore', 'ignore', 'inherit'] });
  const j = JSON.parse(readFileSync(out, 'utf8'));
  rmSync(dir, { recursive: true, force: true });
  return j;
}

// One streaming client. hangUp: destroy the connection at the first SSE bytes. Resolves { kind, body }.
export function streamClient(port, body, hangUp) {
  return new Promise((resolve) => {
    const data = JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/completions', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
        if (hangUp) { req.destroy(); resolve({ kind: 'hung-up', status: res.statusCode }); }
      });
      res.on('end', () => resolve({ kind: 'done', status: res.statusCode, body: text }));
      res.on('error', () => {});
    });
    req.on('error', (e) => resolve({ kind: hangUp ? 'hung-up' : 'error', error: String(e) }));
    req.end(data);
  });
}

// A completed stream: SSE events, JSON chunks of one id, exactly one finish reason, [DONE] last, n tokens of text.
export function checkStream(r, maxTokens) {
  assert.equal(r.kind, 'done', r.error);
  assert.equal(r.status, 200, r.body);
  const events = sseEvents(r.body);
  assert.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  assert.ok(chunks.length >= 1);
  assert.ok(chunks.every((c) => c.id === chunks[0].id && c.object === 'text_completion' && c.model === MODEL));
  const finishes = chunks.map((c) => c.choices[0].finish_reason).filter((f) => f !== null);
  assert.equal(finishes.length, 1);
  assert.equal(chunks.at(-1).choices[0].finish_reason, finishes[0]);
  assert.ok(['stop', 'length'].includes(finishes[0]));
  if (finishes[0] === 'length') assert.ok(chunks.length <= maxTokens);
}
