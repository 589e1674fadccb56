// A catalogue of bad requests, one test each: every one gets the right 4xx and an OpenAI error object
// {"error": {"message", "type", "param", "code"}} naming the field; the server answers a good request afterwards.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, request, MODEL } from './harness.mjs';

let srv;
before(async () => { srv = await startServer(['--max-body-bytes', '65536']); });
after(async () => { assert.equal(await srv.stop(), 0, srv.log()); });

const C = (extra) => ({ model: MODEL, prompt: 'def f():', max_tokens: 4, ...extra });
const CHAT = (extra) => ({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, ...extra });
const chat = '/v1/chat/completions';
const long = 'x = 1\n'.repeat(400);  // ~1,200 tokens: over max_input_len 256

// [name, { path, method, body, headers }, status, param (undefined: not checked; null: null)]
const catalogue = [
  ['malformed JSON', { body: '{"model": "tiny-code", "prompt": ' }, 400, null],
  ['JSON that is not an object', { body: '[1, 2]' }, 400, null],
  ['JSON nested too deep', { body: '['.repeat(300) + ']'.repeat(300) }, 400, null],
  ['an empty body', { body: '' }, 400, null],
  ['missing model', { body: { prompt: 'x' } }, 400, 'model'],
  ['model is a number', { body: C({ model: 7 }) }, 400, 'model'],
  ['unknown model', { body: C({ model: 'gpt-4o' }) }, 404, 'model'],
  ['missing prompt', { body: { model: MODEL } }, 400, 'prompt'],
  ['prompt is a number', { body: C({ prompt: 5 }) }, 400, 'prompt'],
  ['prompt is null', { body: C({ prompt: null }) }, 400, 'prompt'],
  ['prompt is an object', { body: C({ prompt: { text: 'x' } }) }, 400, 'prompt'],
  ['prompt is an empty list', { body: C({ prompt: [] }) }, 400, 'prompt'],
  ['prompt list mixes strings and numbers', { body: C({ prompt: ['a', 1] }) }, 400, 'prompt'],
  ['prompt token id negative', { body: C({ prompt: [1, -3] }) }, 400, 'prompt'],
  ['prompt token id outside the vocabulary', { body: C({ prompt: [5, 4096] }) }, 400, 'prompt'],
  ['prompt token id not an integer', { body: C({ prompt: [5, 2.5] }) }, 400, 'prompt'],
  ['prompt token id huge', { body: C({ prompt: [99999999999] }) }, 400, 'prompt'],
  ['prompt list of lists with a bad id', { body: C({ prompt: [[1, 2], [3, 9999]] }) }, 400, 'prompt'],
  ['prompt list with an empty list', { body: C({ prompt: [[1, 2], []] }) }, 400, 'prompt'],
  ['prompt over max_input_len', { body: C({ prompt: long }) }, 400, 'prompt'],
  ['max_tokens zero', { body: C({ max_tokens: 0 }) }, 400, 'max_tokens'],
  ['max_tokens negative', { body: C({ max_tokens: -5 }) }, 400, 'max_tokens'],
  ['max_tokens a string', { body: C({ max_tokens: '16' }) }, 400, 'max_tokens'],
  ['max_tokens a fraction', { body: C({ max_tokens: 2.5 }) }, 400, 'max_tokens'],
  ['max_tokens over max_seq_len', { body: C({ max_tokens: 100000 }) }, 400, 'max_tokens'],
  ['prompt + max_tokens over max_seq_len', { body: C({ prompt: 'y = 2\n'.repeat(60), max_tokens: 500 }) }, 400,
    'max_tokens'],
  ['temperature negative', { body: C({ temperature: -0.5 }) }, 400, 'temperature'],
  ['temperature above 2', { body: C({ temperature: 2.5 }) }, 400, 'temperature'],
  ['temperature a string', { body: C({ temperature: 'hot' }) }, 400, 'temperature'],
  ['top_p zero', { body: C({ top_p: 0 }) }, 400, 'top_p'],
  ['top_p above 1', { body: C({ top_p: 1.5 }) }, 400, 'top_p'],
  ['n zero', { body: C({ n: 0 }) }, 400, 'n'],
  ['n above 128', { body: C({ n: 129 }) }, 400, 'n'],
  ['n a fraction', { body: C({ n: 1.5 }) }, 400, 'n'],
  ['stop a number', { body: C({ stop: 3 }) }, 400, 'stop'],
  ['stop list with a number', { body: C({ stop: ['a', 3] }) }, 400, 'stop'],
  ['stop more than 4', { body: C({ stop: ['a', 'b', 'c', 'd', 'e'] }) }, 400, 'stop'],
  ['stop an empty string', { body: C({ stop: '' }) }, 400, 'stop'],
  ['seed a string', { body: C({ seed: 'abc' }) }, 400, 'seed'],
  ['seed a fraction', { body: C({ seed: 1.5 }) }, 400, 'seed'],
  ['presence_penalty below -2', { body: C({ presence_penalty: -3 }) }, 400, 'presence_penalty'],
  ['frequency_penalty above 2', { body: C({ frequency_penalty: 2.5 }) }, 400, 'frequency_penalty'],
  ['logit_bias not an object', { body: C({ logit_bias: [1] }) }, 400, 'logit_bias'],
  ['logit_bias key not a token id', { body: C({ logit_bias: { abc: -100 } }) }, 400, 'logit_bias'],
  ['logit_bias key outside the vocabulary', { body: C({ logit_bias: { 5000: -100 } }) }, 400, 'logit_bias'],
  ['logit_bias value out of range', { body: C({ logit_bias: { 5: -101 } }) }, 400, 'logit_bias'],
  ['logit_bias value a string', { body: C({ logit_bias: { 5: 'ban' } }) }, 400, 'logit_bias'],
  ['logprobs negative', { body: C({ logprobs: -1 }) }, 400, 'logprobs'],
  ['logprobs above 5', { body: C({ logprobs: 6 }) }, 400, 'logprobs'],
  ['logprobs a boolean (completions)', { body: C({ logprobs: true }) }, 400, 'logprobs'],
  ['echo a string', { body: C({ echo: 'yes' }) }, 400, 'echo'],
  ['stream a string', { body: C({ stream: 'true' }) }, 400, 'stream'],
  ['stream_options without stream', { body: C({ stream_options: { include_usage: true } }) }, 400, 'stream_options'],
  ['stream_options not an object', { body: C({ stream: true, stream_options: true }) }, 400, 'stream_options'],
  ['stream_options.include_usage a string', { body: C({ stream: true, stream_options: { include_usage: 'y' } }) },
    400, 'stream_options.include_usage'],
  ['user a number', { body: C({ user: 42 }) }, 400, 'user'],
  ['an unknown field', { body: C({ temprature: 0.5 }) }, 400, 'temprature'],
  ['tools (unsupported)', { body: C({ tools: [{ type: 'function' }] }) }, 400, 'tools'],
  ['suffix (unsupported)', { body: C({ suffix: 'x' }) }, 400, 'suffix'],
  ['top_k below -1', { body: C({ top_k: -2 }) }, 400, 'top_k'],
  ['min_p above 1', { body: C({ min_p: 1.5 }) }, 400, 'min_p'],
  ['repetition_penalty zero', { body: C({ repetition_penalty: 0 }) }, 400, 'repetition_penalty'],
  ['ignore_eos a number', { body: C({ ignore_eos: 1 }) }, 400, 'ignore_eos'],
  ['stop_token_ids not a list', { body: C({ stop_token_ids: 5 }) }, 400, 'stop_token_ids'],
  ['stop_token_ids outside the vocabulary', { body: C({ stop_token_ids: [4096] }) }, 400, 'stop_token_ids'],
  ['chat: missing messages', { path: chat, body: { model: MODEL } }, 400, 'messages'],
  ['chat: messages not a list', { path: chat, body: CHAT({ messages: 'hi' }) }, 400, 'messages'],
  ['chat: messages empty', { path: chat, body: CHAT({ messages: [] }) }, 400, 'messages'],
  ['chat: a message not an object', { path: chat, body: CHAT({ messages: ['hi'] }) }, 400, 'messages[0]'],
  ['chat: a message without role', { path: chat, body: CHAT({ messages: [{ content: 'hi' }] }) }, 400,
    'messages[0].role'],
  ['chat: an unknown role', { path: chat, body: CHAT({ messages: [{ role: 'wizard', content: 'hi' }] }) }, 400,
    'messages[0].role'],
  ['chat: a message without content', { path: chat, body: CHAT({ messages: [{ role: 'user' }] }) }, 400,
    'messages[0].content'],
  ['chat: content a number', { path: chat, body: CHAT({ messages: [{ role: 'user', content: 3 }] }) }, 400,
    'messages[0].content'],
  ['chat: an image content part', { path: chat, body: CHAT({ messages: [{ role: 'user', content: [
    { type: 'image_url', image_url: { url: 'http://x' } }] }] }) }, 400, 'messages[0].content[0].type'],
  ['chat: a text part without text', { path: chat, body: CHAT({ messages: [{ role: 'user', content: [
    { type: 'text' }] }] }) }, 400, 'messages[0].content[0].text'],
  ['chat: logprobs an integer', { path: chat, body: CHAT({ logprobs: 2 }) }, 400, 'logprobs'],
  ['chat: top_logprobs without logprobs', { path: chat, body: CHAT({ top_logprobs: 2 }) }, 400, 'top_logprobs'],
  ['chat: top_logprobs above 20', { path: chat, body: CHAT({ logprobs: true, top_logprobs: 21 }) }, 400,
    'top_logprobs'],
  ['chat: max_completion_tokens zero', { path: chat, body: CHAT({ max_completion_tokens: 0 }) }, 400,
    'max_completion_tokens'],
  ['chat: echo (a completions field)', { path: chat, body: CHAT({ echo: true }) }, 400, 'echo'],
  ['chat: a prompt over max_input_len', { path: chat, body: CHAT({ messages: [{ role: 'user', content: long }] }) },
    400, 'messages'],
  ['completions: messages (a chat field)', { body: C({ messages: [] }) }, 400, 'messages'],
  ['an unknown path', { path: '/v1/embeddings', body: {} }, 404, null],
  ['GET on completions', { method: 'GET', path: '/v1/completions' }, 405, null],
  ['POST on models', { method: 'POST', path: '/v1/models', body: {} }, 405, null],
  ['DELETE on health', { method: 'DELETE', path: '/health' }, 405, null],
  ['a body over --max-body-bytes', { body: C({ prompt: 'z'.repeat(70000) }) }, 413, null],
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

for (const [name, req, status, param] of catalogue) {
  test(`bad request: ${name} -> ${status}`, async () => {
    const r = await request(srv.port, req);
    assert.equal(r.status, status, r.body);
    assert.match(r.headers['content-type'], /^application\/json/);
    const e = JSON.parse(r.body).error;
    assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'param', 'type']);
    assert.equal(typeof e.message, 'string');
    assert.ok(e.message.length > 0);
    assert.equal(typeof e.type, 'string');
    if (param !== undefined) assert.equal(e.param, param, e.message);
  });
}

test('the catalogue has at least 60 entries', () => assert.ok(catalogue.length >= 60, String(catalogue.length)));

// Raw bytes that are not HTTP, or stop half way: the connection closes, the server lives on.
test('garbage and truncated requests do not hurt the server', async () => {
  for (const bytes of ['\x00\x01\x02 garbage\r\n\r\n',
    'POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{"mo',
    'GET / HTTP/1.1\r\n' + 'X: y\r\n'.repeat(20000) + '\r\n']) {
    await new Promise((resolve) => {
      const s = net.connect(srv.port, '127.0.0.1', () => { s.write(bytes); s.end(); });
      s.on('data', () => {});
      s.on('error', () => resolve());
      s.on('close', () => resolve());
    });
  }
  await sleep(50);
  assert.equal((await request(srv.port, { method: 'GET', path: '/health' })).status, 200);
});

test('after all of them the server still answers a good request', async () => {
  const r = await request(srv.port, { body: C({ max_tokens: 3 }) });
  assert.equal(r.status, 200, r.body);
  assert.equal(JSON.parse(r.body).usage.completion_tokens, 3);
  const h = await request(srv.port, { method: 'GET', path: '/health' });
  assert.equal(h.status, 200);
});
