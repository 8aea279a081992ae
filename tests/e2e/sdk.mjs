// End-to-end checks of `densekv serve` with the official OpenAI SDK (npm `openai`) and raw fetch.
// Env: DENSEKV_URL (server), DENSEKV_API_KEY, DENSEKV_SDK (path of the installed SDK package).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { default: OpenAI } = require(process.env.DENSEKV_SDK);
const url = process.env.DENSEKV_URL;
const key = process.env.DENSEKV_API_KEY;
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 });
const MODEL = 'tiny';
let checks = 0;

async function check(name, fn) {
  try {
    await fn();
    checks++;
    console.log(`ok   ${name}`);
  } catch (e) {
    console.log(`FAIL ${name}`);
    throw e;
  }
}

async function expectApiError(promise, status, param) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError, `expected an APIError, got ${e}`);
    assert.equal(e.status, status, e.message);
    assert.equal(typeof e.error?.message, 'string');
    assert.equal(typeof e.error?.type, 'string');
    if (param !== undefined) assert.equal(e.param, param);
    return e;
  }
  assert.fail(`expected HTTP ${status}`);
}

async function streamText(params, kind) {
  const stream = kind === 'chat'
    ? await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } })
    : await client.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '', finish = null, usage = null, chunks = 0;
  for await (const c of stream) {
    chunks++;
    if (c.usage) usage = c.usage;
    if (!c.choices.length) continue;
    const ch = c.choices[0];
    text += kind === 'chat' ? (ch.delta?.content ?? '') : ch.text;
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  return { text, finish, usage, chunks };
}

function checkUsage(u, maxTokens) {
  assert.ok(u.prompt_tokens > 0);
  assert.ok(u.completion_tokens > 0 && u.completion_tokens <= maxTokens);
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
}

async function raw(path, body, headers = {}) {
  const r = await fetch(`${url}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json', ...headers },
    body,
  });
  const text = await r.text();
  return { status: r.status, text };
}

function assertErrorBody(r, status) {
  assert.equal(r.status, status, r.text);
  const j = JSON.parse(r.text);
  assert.deepEqual(Object.keys(j.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(typeof j.error.message, 'string');
  return j.error;
}

const messages = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hello' }];

await check('models.list', async () => {
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [MODEL]);
});

await check('completions: text, finish_reason, usage', async () => {
  const r = await client.completions.create({ model: MODEL, prompt: 'Hello there', max_tokens: 12, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(typeof r.choices[0].text, 'string');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  checkUsage(r.usage, 12);
  const len = await client.completions.create({ model: MODEL, prompt: 'Hello there', max_tokens: 5, temperature: 0, ignore_eos: true });
  assert.equal(len.choices[0].finish_reason, 'length');
  assert.equal(len.usage.completion_tokens, 5);
});

await check('chat: message, usage', async () => {
  const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 10, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  checkUsage(r.usage, 10);
  // The prompt is the chat template's text: /tokenize of the same messages counts the same.
  const t = JSON.parse((await raw('/tokenize', JSON.stringify({ messages }))).text);
  assert.equal(r.usage.prompt_tokens, t.count);
});

for (const kind of ['completions', 'chat']) {
  await check(`${kind}: streamed text equals non-streamed (greedy and seeded)`, async () => {
    for (const sampling of [{ temperature: 0 }, { temperature: 1, seed: 1234 }, { temperature: 0.8, top_p: 0.9, seed: 99 }]) {
      const params = kind === 'chat'
        ? { model: MODEL, messages, max_tokens: 24, ignore_eos: true, ...sampling }
        : { model: MODEL, prompt: 'Once upon a time', max_tokens: 24, ignore_eos: true, ...sampling };
      const full = kind === 'chat' ? await client.chat.completions.create(params) : await client.completions.create(params);
      const fullText = kind === 'chat' ? full.choices[0].message.content : full.choices[0].text;
      const s = await streamText(params, kind);
      assert.equal(s.text, fullText, JSON.stringify(sampling));
      assert.equal(s.finish, 'length');
      assert.deepEqual(
        { p: s.usage.prompt_tokens, c: s.usage.completion_tokens },
        { p: full.usage.prompt_tokens, c: full.usage.completion_tokens });
      assert.ok(s.chunks >= 3);
    }
  });
}

await check('seeded sampling is reproducible', async () => {
  const p = { model: MODEL, prompt: 'The weather', max_tokens: 20, temperature: 1, seed: 42, ignore_eos: true };
  const a = await client.completions.create(p);
  const b = await client.completions.create(p);
  assert.equal(a.choices[0].text, b.choices[0].text);
});

await check('stop sequences cut the text (streamed and not)', async () => {
  const base = { model: MODEL, prompt: 'A B C', max_tokens: 32, temperature: 0, ignore_eos: true };
  const full = (await client.completions.create(base)).choices[0].text;
  assert.ok(full.length >= 8, `greedy text too short: ${JSON.stringify(full)}`);
  const chars = [...full];
  const stop = chars.slice(Math.floor(chars.length / 2), Math.floor(chars.length / 2) + 2).join('');
  const expected = full.slice(0, full.indexOf(stop));
  const r = await client.completions.create({ ...base, stop: [stop] });
  assert.equal(r.choices[0].text, expected);
  assert.equal(r.choices[0].finish_reason, 'stop');
  const s = await streamText({ ...base, stop }, 'completions');
  assert.equal(s.text, expected);
  assert.equal(s.finish, 'stop');
});

await check('logprobs', async () => {
  const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 6, temperature: 0, ignore_eos: true, logprobs: true, top_logprobs: 3 });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, 6);
  for (const t of content) {
    assert.equal(typeof t.token, 'string');
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    // Greedy: the chosen token is the most likely one.
    assert.ok(Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-4);
  }
  const c = await client.completions.create({ model: MODEL, prompt: 'x', max_tokens: 4, temperature: 0, ignore_eos: true, logprobs: 2 });
  assert.equal(c.choices[0].logprobs.tokens.length, 4);
  assert.equal(c.choices[0].logprobs.tokens.join(''), c.choices[0].text);
});

await check('SDK error types', async () => {
  const bad = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
  const e401 = await expectApiError(bad.models.list(), 401);
  assert.ok(e401 instanceof OpenAI.AuthenticationError);
  const e404 = await expectApiError(client.completions.create({ model: 'gpt-9', prompt: 'x' }), 404, 'model');
  assert.ok(e404 instanceof OpenAI.NotFoundError);
  const e400 = await expectApiError(client.completions.create({ model: MODEL, prompt: 'x', temperature: 5 }), 400, 'temperature');
  assert.ok(e400 instanceof OpenAI.BadRequestError);
  await expectApiError(client.completions.create({ model: MODEL, prompt: 'x', max_tokens: -3 }), 400, 'max_tokens');
  await expectApiError(client.completions.create({ model: MODEL, prompt: 'x', max_tokens: 10 ** 12 }), 400, 'max_tokens');
  await expectApiError(client.completions.create({ model: MODEL, prompt: 'x', max_tokens: 'ten' }), 400, 'max_tokens');
  await expectApiError(client.chat.completions.create({ model: MODEL, messages, frobnicate: true }), 400, 'frobnicate');
  await expectApiError(client.chat.completions.create({ model: MODEL, messages: 'hi' }), 400, 'messages');
  const long = await expectApiError(client.completions.create({ model: MODEL, prompt: ' the'.repeat(400) }), 400);
  assert.equal(long.code, 'context_length_exceeded');
});

await check('bad input: status and error body, server keeps serving', async () => {
  assertErrorBody(await raw('/v1/completions', '{"model": "tiny", "prompt": '), 400);
  assertErrorBody(await raw('/v1/chat/completions', '[1, 2, 3]'), 400);
  assertErrorBody(await raw('/v1/completions', JSON.stringify({ model: MODEL, prompt: 'x', stream: 'yes' })), 400);
  // Invalid UTF-8 inside a JSON string.
  const bytes = Buffer.concat([Buffer.from('{"model": "tiny", "prompt": "a'), Buffer.from([0xff, 0xc3, 0x28]), Buffer.from('"}')]);
  assertErrorBody(await raw('/v1/completions', bytes), 400);
  // Over --max-request-bytes (100000).
  assertErrorBody(await raw('/v1/completions', JSON.stringify({ model: MODEL, prompt: 'y'.repeat(200000) })), 413);
  assertErrorBody(await raw('/v1/embeddings', '{}'), 404);
  assertErrorBody(await raw('/v1/models', undefined, { Authorization: '' }), 401);
  assert.equal((await raw('/health')).status, 200);
  const m = await raw('/metrics');
  assert.equal(m.status, 200);
  assert.match(m.text, /densekv:num_requests_running \d+/);
  const r = await client.completions.create({ model: MODEL, prompt: 'still there?', max_tokens: 3 });
  assert.ok(r.usage.completion_tokens > 0);
});

await check('tokenize / detokenize', async () => {
  const t = JSON.parse((await raw('/tokenize', JSON.stringify({ prompt: 'hello world' }))).text);
  assert.equal(t.count, t.tokens.length);
  const d = JSON.parse((await raw('/detokenize', JSON.stringify({ tokens: t.tokens }))).text);
  assert.equal(d.prompt, 'hello world');
});

console.log(`${checks} checks passed`);
