// The exact bytes on the wire: HTTP/1.1 framing (chunked transfer for streams, Content-Length otherwise,
// keep-alive), and Server-Sent Events as OpenAI sends them: "data: {json}\n\n" ... "data: [DONE]\n\n".
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, request, sseEvents, MODEL } from './harness.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { assert.equal(await srv.stop(), 0, srv.log()); });

// Sends raw requests on one connection and reads `count` whole responses: [{ head, status, headers, body }].
function exchange(raw, count) {
  return new Promise((resolve, reject) => {
    const s = net.connect(srv.port, '127.0.0.1', () => s.write(raw));
    let buf = Buffer.alloc(0);
    const out = [];
    const parse = () => {
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        const lines = head.split('\r\n');
        const headers = {};
        for (const l of lines.slice(1)) {
          headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
        }
        let pos = end + 4;
        let body;
        if (headers['transfer-encoding'] === 'chunked') {
          const parts = [];
          for (;;) {
            const nl = buf.indexOf('\r\n', pos);
            if (nl < 0) return;
            const size = parseInt(buf.subarray(pos, nl).toString('latin1'), 16);
            if (buf.length < nl + 2 + size + 2) return;
            assert.equal(buf.subarray(nl + 2 + size, nl + 4 + size).toString('latin1'), '\r\n');
            parts.push(buf.subarray(nl + 2, nl + 2 + size));
            pos = nl + 4 + size;
            if (size === 0) break;
          }
          body = Buffer.concat(parts).toString('utf8');
        } else {
          const n = Number(headers['content-length']);
          if (buf.length < pos + n) return;
          body = buf.subarray(pos, pos + n).toString('utf8');
          pos += n;
        }
        out.push({ head, status: Number(lines[0].split(' ')[1]), headers, body });
        buf = buf.subarray(pos);
        if (out.length === count) { s.end(); resolve(out); return; }
      }
    };
    s.on('data', (d) => { buf = Buffer.concat([buf, d]); try { parse(); } catch (e) { reject(e); } });
    s.on('error', reject);
    s.on('close', () => { if (out.length < count) reject(new Error(`closed after ${out.length} responses`)); });
  });
}

const post = (path, body) => {
  const data = JSON.stringify(body);
  return `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(data)}\r\n\r\n${data}`;
};

test('a completion stream: chunked SSE, exact framing, [DONE] last', async () => {
  const body = { model: MODEL, prompt: 'def f(x):\n', max_tokens: 10, stream: true };
  const [r] = await exchange(post('/v1/completions', body), 1);
  assert.match(r.head, /^HTTP\/1\.1 200 OK\r\n/);
  assert.equal(r.headers['content-type'], 'text/event-stream');
  assert.equal(r.headers['cache-control'], 'no-cache');
  assert.equal(r.headers['transfer-encoding'], 'chunked');
  assert.match(r.body, /^(data: \{[^\n]*\}\n\n)+data: \[DONE\]\n\n$/);
  const events = sseEvents(r.body);
  assert.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  for (const c of chunks) {
    assert.deepEqual(Object.keys(c).sort(), ['choices', 'created', 'id', 'model', 'object']);
    assert.equal(c.object, 'text_completion');
    assert.deepEqual(Object.keys(c.choices[0]).sort(), ['finish_reason', 'index', 'logprobs', 'text']);
  }
  assert.deepEqual(chunks.map((c) => c.choices[0].finish_reason).filter((f) => f !== null), ['length']);
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'length');
  const whole = await request(srv.port, { body: { model: MODEL, prompt: 'def f(x):\n', max_tokens: 10 } });
  assert.equal(chunks.map((c) => c.choices[0].text).join(''), JSON.parse(whole.body).choices[0].text);
});

test('a chat stream starts with the role chunk, byte for byte', async () => {
  const [r] = await exchange(post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hi' }],
    max_tokens: 3, stream: true, stream_options: { include_usage: true } }), 1);
  const events = r.body.split('\n\n');
  assert.match(events[0], new RegExp('^data: ' +
    '\\{"choices":\\[\\{"delta":\\{"content":"","role":"assistant"\\},"finish_reason":null,"index":0,' +
    '"logprobs":null\\}\\],"created":\\d+,"id":"chatcmpl-[0-9a-f]{24}","model":"tiny-code",' +
    '"object":"chat\\.completion\\.chunk","usage":null\\}$'));
  const usage = JSON.parse(events.at(-3).slice(6));
  assert.deepEqual(usage.choices, []);
  assert.equal(usage.usage.completion_tokens, 3);
  assert.equal(events.at(-2), 'data: [DONE]');
  assert.equal(events.at(-1), '');
});

test('keep-alive: a stream, then a plain request, then an error, on one connection', async () => {
  const raw = post('/v1/completions', { model: MODEL, prompt: 'a', max_tokens: 3, stream: true }) +
    post('/v1/completions', { model: MODEL, prompt: 'b', max_tokens: 2 }) +
    post('/v1/completions', { model: MODEL, prompt: 'b', max_tokens: -1 }) +
    'GET /health HTTP/1.1\r\nHost: x\r\n\r\n';
  const rs = await exchange(raw, 4);
  assert.deepEqual(rs.map((r) => r.status), [200, 200, 400, 200]);
  assert.equal(sseEvents(rs[0].body).at(-1), '[DONE]');
  assert.equal(rs[1].headers['content-length'], String(Buffer.byteLength(rs[1].body)));
  assert.equal(JSON.parse(rs[1].body).usage.completion_tokens, 2);
  assert.equal(JSON.parse(rs[2].body).error.param, 'max_tokens');
});

test('Connection: close is honoured', async () => {
  const data = JSON.stringify({ model: MODEL, prompt: 'a', max_tokens: 1 });
  const raw = `POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${data.length}\r\n\r\n`;
  const [r] = await exchange(raw + data, 1);
  assert.equal(r.status, 200);
  assert.equal(r.headers.connection, 'close');
});

test('health, version and metrics', async () => {
  const h = await request(srv.port, { method: 'GET', path: '/health' });
  assert.equal(h.status, 200);
  const v = await request(srv.port, { method: 'GET', path: '/version' });
  assert.match(JSON.parse(v.body).version, /^\d+\.\d+\.\d+$/);
  const m = await request(srv.port, { method: 'GET', path: '/metrics' });
  assert.match(m.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  for (const name of ['num_requests_running', 'num_requests_waiting', 'kv_cache_usage_perc',
    'prefix_cache_queries_total',
    'prefix_cache_hits_total', 'num_preemptions_total', 'prompt_tokens_total', 'generation_tokens_total',
    'request_success_total', 'time_to_first_token_seconds', 'inter_token_latency_seconds',
    'e2e_request_latency_seconds'])
    assert.match(m.body, new RegExp(`^# TYPE kiln:${name} (gauge|counter|histogram)$`, 'm'), name);
  assert.match(m.body, /^kiln:request_success_total\{model_name="tiny-code",finished_reason="length"\} [1-9]\d*$/m);
  assert.match(m.body, /^kiln:time_to_first_token_seconds_bucket\{model_name="tiny-code",le="\+Inf"\} [1-9]\d*$/m);
});

test('Expect: 100-continue gets its 100 before the body is sent', async () => {
  const data = JSON.stringify({ model: MODEL, prompt: 'def g():\n', max_tokens: 2 });
  const text = await new Promise((resolve, reject) => {
    const s = net.connect(srv.port, '127.0.0.1', () => s.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\n` +
      `Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: ${data.length}\r\n\r\n`));
    let got = '';
    let sent = false;
    s.on('data', (d) => {
      got += d;
      if (!sent && got.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) { sent = true; s.write(data); }
      if (sent && /\r\n\r\n\{.*\}$/s.test(got)) { clearTimeout(timer); s.end(); resolve(got); }
    });
    s.on('error', reject);
    const timer = setTimeout(() => reject(new Error(`no answer: ${JSON.stringify(got)}`)), 20000);
  });
  assert.match(text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
  assert.equal(JSON.parse(text.slice(text.lastIndexOf('\r\n\r\n') + 4)).usage.completion_tokens, 2);
});
