// Load test (see load.sh). Env: DENSEKV_URL, DENSEKV_SDK; DENSEKV_LOAD_STREAMS (500),
// DENSEKV_LOAD_ABORTS (1000), DENSEKV_LOAD_TOKENS (24).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { default: OpenAI } = require(process.env.DENSEKV_SDK);
const url = process.env.DENSEKV_URL;
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 600000 });
const STREAMS = Number(process.env.DENSEKV_LOAD_STREAMS ?? 500);
const ABORTS = Number(process.env.DENSEKV_LOAD_ABORTS ?? 1000);
const TOKENS = Number(process.env.DENSEKV_LOAD_TOKENS ?? 24);

function params(i) {
  return {
    model: 'tiny',
    prompt: `Request ${i}: the quick brown fox number ${i * 7919 % 1000}`,
    max_tokens: TOKENS,
    temperature: 1,
    seed: 1000 + i,
    ignore_eos: i % 2 === 0,  // half run to max_tokens, half may stop at eos
  };
}

async function metrics() {
  const text = await (await fetch(`${url}/metrics`)).text();
  const get = (name) => Number(text.match(new RegExp(`^${name} (\\S+)$`, 'm'))?.[1]);
  return {
    running: get('densekv:num_requests_running'),
    waiting: get('densekv:num_requests_waiting'),
    blocks: get('densekv:kv_blocks_used'),
    generated: get('densekv:generation_tokens_total'),
    total: get('densekv:kv_blocks_total'),
  };
}

function classify(e) {
  return e instanceof OpenAI.APIError && e.status >= 500 ? '5xx' : 'lost';
}

// 1. Concurrent streams.
let t0 = performance.now();
const fails = { lost: 0, '5xx': 0 };
let tokens = 0;
const streamed = await Promise.all(Array.from({ length: STREAMS }, async (_, i) => {
  try {
    const stream = await client.completions.create({ ...params(i), stream: true, stream_options: { include_usage: true } });
    let text = '', finish = null;
    for await (const c of stream) {
      if (c.usage) tokens += c.usage.completion_tokens;
      if (!c.choices.length) continue;
      text += c.choices[0].text;
      if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
    }
    if (!finish) { fails.lost++; return null; }
    return text;
  } catch (e) {
    fails[classify(e)]++;
    return null;
  }
}));
const streamSeconds = (performance.now() - t0) / 1000;
const peak = await metrics();

// 2. The same requests, not streamed: the same text for the same seed.
t0 = performance.now();
let mismatches = 0;
await Promise.all(Array.from({ length: STREAMS }, async (_, i) => {
  try {
    const r = await client.completions.create(params(i));
    if (streamed[i] !== null && r.choices[0].text !== streamed[i]) {
      if (mismatches++ < 3) console.log(`mismatch #${i}: ${JSON.stringify(streamed[i])} vs ${JSON.stringify(r.choices[0].text)}`);
    }
  } catch (e) {
    fails[classify(e)]++;
  }
}));
const fullSeconds = (performance.now() - t0) / 1000;

// 3. Streams aborted midway (after 2..6 chunks) of 400 tokens each.
const before = await metrics();
t0 = performance.now();
let aborted = 0, abortErrors = 0;
await Promise.all(Array.from({ length: ABORTS }, async (_, i) => {
  try {
    const stream = await client.completions.create({ ...params(i), max_tokens: 400, ignore_eos: true, stream: true });
    let n = 0;
    for await (const _c of stream) {
      if (++n >= 2 + (i % 5)) { stream.controller.abort(); break; }
    }
    aborted++;
  } catch (e) {
    abortErrors++;
  }
}));
const abortSeconds = (performance.now() - t0) / 1000;
let after = await metrics();
const t1 = performance.now();
while ((after.blocks > 0 || after.running > 0 || after.waiting > 0) && performance.now() - t1 < 30000) {
  await new Promise((r) => setTimeout(r, 100));
  after = await metrics();
}
const settleSeconds = (performance.now() - t1) / 1000;

const report = {
  streams: STREAMS, lost: fails.lost, http5xx: fails['5xx'], stream_vs_full_mismatches: mismatches,
  stream_phase_s: +streamSeconds.toFixed(2), generated_tokens: tokens,
  tokens_per_s: +(tokens / streamSeconds).toFixed(0), full_phase_s: +fullSeconds.toFixed(2),
  aborted_streams: aborted, abort_errors: abortErrors, abort_phase_s: +abortSeconds.toFixed(2),
  kv_blocks_used_after_aborts: after.blocks, running_after: after.running, waiting_after: after.waiting,
  tokens_generated_by_aborted_streams: after.generated - before.generated,
  kv_blocks_total: after.total, settle_s: +settleSeconds.toFixed(2), metrics_after_streams: peak,
};
console.log(JSON.stringify(report, null, 1));
assert.equal(fails.lost, 0, 'lost requests');
assert.equal(fails['5xx'], 0, '5xx replies');
assert.equal(mismatches, 0, 'streamed text differs from the non-streamed text');
assert.equal(aborted, ABORTS);
assert.equal(after.blocks, 0, 'KV blocks still in use after the aborted streams');
assert.equal(after.running + after.waiting, 0);
// Cancelled midway: far fewer tokens than the 400 each would have generated.
assert.ok(after.generated - before.generated < ABORTS * 400 / 4, 'aborted streams were not cancelled');
