// kiln serve through the official openai client: completions and chat, streaming and not, n, stop, logprobs,
// seeds, usage, stream_options, and errors surfaced as the client's error classes. Greedy texts are checked
// against `kiln run` on the same engine.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import OpenAI from 'openai';
import { startServer, kilnRun, KILN, ENGINE, MODEL } from './harness.mjs';

let srv, client;
const PROMPT = 'def fibonacci(n):\n';
before(async () => {
  srv = await startServer();
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60000 });
});
after(async () => { assert.equal(await srv.stop(), 0, srv.log()); });

const promptTokens = (text) =>
  JSON.parse(execFileSync(KILN, ['tokenize', '--tokenizer', ENGINE, '--text', text]).toString()).ids.length;

async function collectStream(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

test('models lists the served model', async () => {
  const list = await client.models.list();
  assert.deepEqual(list.data.map((m) => m.id), [MODEL]);
  assert.equal(list.data[0].object, 'model');
});

test('greedy completion equals kiln run, with usage', async () => {
  const ref = kilnRun(PROMPT, 24);
  const r = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 24, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.match(r.id, /^cmpl-/);
  assert.equal(r.model, MODEL);
  assert.ok(Number.isInteger(r.created));
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].index, 0);
  assert.equal(r.choices[0].text, ref.text);
  assert.equal(r.choices[0].finish_reason, ref.finish_reason === 'length' ? 'length' : 'stop');
  assert.equal(r.usage.completion_tokens, ref.output_ids.length);
  assert.equal(r.usage.prompt_tokens, promptTokens(PROMPT));
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('streamed text equals the non-streamed text; one chunk per choice has the finish reason', async () => {
  const body = { model: MODEL, prompt: 'import os\n', max_tokens: 20 };
  const whole = await client.completions.create(body);
  const chunks = await collectStream(await client.completions.create({ ...body, stream: true }));
  assert.equal(chunks.map((c) => c.choices[0]?.text ?? '').join(''), whole.choices[0].text);
  const finishing = chunks.filter((c) => c.choices.some((ch) => ch.finish_reason));
  assert.equal(finishing.length, 1);
  assert.equal(finishing[0].choices[0].finish_reason, whole.choices[0].finish_reason);
  assert.ok(chunks.every((c) => c.id === chunks[0].id && c.object === 'text_completion'));
});

test('stream_options.include_usage ends with a usage chunk with no choices', async () => {
  const body = { model: MODEL, prompt: 'class Stack:\n', max_tokens: 12 };
  const whole = await client.completions.create(body);
  const chunks = await collectStream(await client.completions.create({
    ...body, stream: true, stream_options: { include_usage: true } }));
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.deepEqual(last.usage, whole.usage);
  assert.ok(chunks.slice(0, -1).every((c) => c.usage === null));
  const plain = await collectStream(await client.completions.create({ ...body, stream: true }));
  assert.ok(plain.every((c) => c.usage === undefined));
});

test('a list of prompts and n: choices indexed prompt-major', async () => {
  const r = await client.completions.create({ model: MODEL, prompt: ['def a():\n', 'def b():\n'], n: 2,
    max_tokens: 6 });
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2, 3]);
  // Greedy: the two choices of a prompt agree, and each equals the single request.
  assert.equal(r.choices[0].text, r.choices[1].text);
  assert.equal(r.choices[2].text, r.choices[3].text);
  const b = await client.completions.create({ model: MODEL, prompt: 'def b():\n', max_tokens: 6 });
  assert.equal(r.choices[2].text, b.choices[0].text);
  assert.equal(r.usage.completion_tokens, 4 * 6);
});

test('token-id prompts are the same as their text', async () => {
  const ids = JSON.parse(execFileSync(KILN, ['tokenize', '--tokenizer', ENGINE, '--text', PROMPT]).toString()).ids;
  const a = await client.completions.create({ model: MODEL, prompt: ids, max_tokens: 10 });
  const b = await client.completions.create({ model: MODEL, prompt: [ids], max_tokens: 10 });
  const t = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 10 });
  assert.equal(a.choices[0].text, t.choices[0].text);
  assert.equal(b.choices[0].text, t.choices[0].text);
});

test('seeded sampling is reproducible; n samples differ; another seed differs', async () => {
  const body = { model: MODEL, prompt: 'def ', max_tokens: 16, temperature: 1.0, n: 3, seed: 1234 };
  const a = await client.completions.create(body);
  const b = await client.completions.create(body);
  assert.deepEqual(a.choices.map((c) => c.text), b.choices.map((c) => c.text));
  assert.ok(new Set(a.choices.map((c) => c.text)).size > 1, 'n samples should differ');
  const c = await client.completions.create({ ...body, seed: 99 });
  assert.notDeepEqual(a.choices.map((x) => x.text), c.choices.map((x) => x.text));
  const s = await collectStream(await client.completions.create({ ...body, stream: true }));
  const streamed = [0, 1, 2].map((i) => s.map((ch) => ch.choices.find((x) => x.index === i)?.text ?? '').join(''));
  assert.deepEqual(streamed, a.choices.map((x) => x.text));
});

test('stop strings end the text before them, across token boundaries, streaming or not', async () => {
  const full = (await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 40 })).choices[0].text;
  assert.ok(full.length > 20, full);
  const stop = full.slice(12, 16);  // a piece of text that need not fall on token boundaries
  const expect = full.slice(0, full.indexOf(stop));
  const r = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 40, stop: [stop, 'zzzz'] });
  assert.equal(r.choices[0].text, expect);
  assert.equal(r.choices[0].finish_reason, 'stop');
  const chunks = await collectStream(await client.completions.create({
    model: MODEL, prompt: PROMPT, max_tokens: 40, stop, stream: true }));
  assert.equal(chunks.map((c) => c.choices[0]?.text ?? '').join(''), expect);
  assert.equal(chunks.filter((c) => c.choices[0]?.finish_reason).map((c) => c.choices[0].finish_reason).join(), 'stop');
});

test('completion logprobs: one per token, the greedy token is the most likely alternative', async () => {
  const r = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 8, logprobs: 3 });
  const lp = r.choices[0].logprobs;
  assert.equal(lp.tokens.length, r.usage.completion_tokens);
  assert.equal(lp.token_logprobs.length, 8);
  assert.equal(lp.tokens.join(''), r.choices[0].text);
  assert.deepEqual(lp.text_offset, lp.tokens.map((_, i) => lp.tokens.slice(0, i).join('').length));
  for (let i = 0; i < 8; ++i) {
    assert.ok(lp.token_logprobs[i] <= 0);
    const alts = Object.entries(lp.top_logprobs[i]);
    assert.equal(alts.length, 3);
    const best = Math.max(...alts.map(([, v]) => v));
    assert.ok(Math.abs(best - lp.token_logprobs[i]) < 1e-3, `${best} vs ${lp.token_logprobs[i]}`);
    assert.ok(lp.tokens[i] in lp.top_logprobs[i]);
  }
  const s = await collectStream(await client.completions.create({
    model: MODEL, prompt: PROMPT, max_tokens: 8, logprobs: 0, stream: true }));
  const streamed = s.flatMap((c) => c.choices[0]?.logprobs?.token_logprobs ?? []);
  assert.equal(streamed.length, 8);
  streamed.forEach((v, i) => assert.ok(Math.abs(v - lp.token_logprobs[i]) < 1e-5));
});

test('echo puts the prompt before the text', async () => {
  const r = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 5, echo: true });
  const plain = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 5 });
  assert.equal(r.choices[0].text, PROMPT + plain.choices[0].text);
});

test('chat completion: the chat template rendered, then generated as a completion of it', async () => {
  const messages = [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'sort a list' }];
  const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 16 });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.choices[0].message.role, 'assistant');
  // tests/data/serve/chat_template.jinja: "<|bos|># role: content\n"... then "# assistant:\n".
  const rendered = '# system: be brief\n# user: sort a list\n# assistant:\n';
  const ref = await client.completions.create({ model: MODEL, prompt: rendered, max_tokens: 16 });
  assert.equal(r.choices[0].message.content, ref.choices[0].text);
  assert.deepEqual(r.usage, ref.usage);
  const parts = await client.chat.completions.create({ model: MODEL, max_completion_tokens: 16, messages: [
    { role: 'system', content: [{ type: 'text', text: 'be brief' }] },
    { role: 'user', content: [{ type: 'text', text: 'sort ' }, { type: 'text', text: 'a list' }] }] });
  assert.equal(parts.choices[0].message.content, r.choices[0].message.content);
});

test('chat streaming: a role chunk, deltas that add up, one finish reason, usage', async () => {
  const body = { model: MODEL, messages: [{ role: 'user', content: 'hello' }], max_tokens: 12 };
  const whole = await client.chat.completions.create(body);
  const chunks = await collectStream(await client.chat.completions.create({
    ...body, stream: true, stream_options: { include_usage: true } }));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
  assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), whole.choices[0].message.content);
  assert.equal(chunks.filter((c) => c.choices[0]?.finish_reason).length, 1);
  assert.deepEqual(chunks.at(-1).usage, whole.usage);
});

test('chat logprobs with top_logprobs', async () => {
  const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }],
    max_tokens: 6, logprobs: true, top_logprobs: 2 });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  assert.equal(content.map((t) => t.token).join(''), r.choices[0].message.content);
  for (const t of content) {
    assert.equal(t.top_logprobs.length, 2);
    assert.ok(Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-3);
    assert.deepEqual(t.bytes, [...Buffer.from(t.token, 'utf8')]);
  }
});

test('errors come back as the client error classes, naming the field', async () => {
  await assert.rejects(client.completions.create({ model: MODEL, prompt: 'x', temperature: 5 }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.status, 400);
    assert.equal(e.param, 'temperature');
    assert.equal(e.type, 'invalid_request_error');
    return true;
  });
  await assert.rejects(client.completions.create({ model: 'gpt-4', prompt: 'x' }), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError);
    assert.equal(e.code, 'model_not_found');
    return true;
  });
  await assert.rejects(client.chat.completions.create({ model: MODEL, messages: [], max_tokens: 1 }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.param, 'messages');
    return true;
  });
});

test('api key (401) and a full queue (429 with Retry-After)', async () => {
  const s = await startServer(['--api-key', 'sekrit', '--max-queued', '0']);
  try {
    const wrong = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'nope', maxRetries: 0 });
    await assert.rejects(wrong.completions.create({ model: MODEL, prompt: 'x' }),
      (e) => e instanceof OpenAI.AuthenticationError && e.code === 'invalid_api_key');
    const right = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'sekrit', maxRetries: 0 });
    assert.equal((await right.models.list()).data[0].id, MODEL);
    await assert.rejects(right.completions.create({ model: MODEL, prompt: 'x' }), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError);
      assert.equal(e.headers.get('retry-after'), '1');
      return true;
    });
  } finally {
    assert.equal(await s.stop(), 0);
  }
});
