#!/usr/bin/env node
// The SMS benchmark's two ends in one process, so both timestamps come from one clock: an SMSC
// (the npm package `smpp`, as in tests/support/smsc) that the platform binds to, and an HTTP
// client that posts SMS to `POST /rest/sms` for a while.
//
// Usage: node sms.js smsc PORT_FILE               start the SMSC, write its port to PORT_FILE
//        (then, with the server bound to it, send the client on stdin; close stdin to stop:)
//        {"api": "http://127.0.0.1:18080", "token": "…", "tn": "12025550100",
//         "seconds": 20, "connections": 64, "rate": 0}
// rate 0: closed loop, each of `connections` posts its next message when its last is answered
// (the most the platform takes). rate N: open loop, N posts a second on schedule, at most
// `connections` in flight (a post due while all are busy waits: counted as `late`).
//
// Every message has a unique text ("load <n>"), which is how a submit_sm is matched to its
// POST. Prints one JSON line: accepted and submitted per second, the delay from the 201 to the
// submit_sm (p50/p99/max), messages lost (accepted, never submitted), doubled (submitted more
// than once) and stray (submitted, not answered 201: the post failed or timed out after the
// server had queued it).
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const smpp = require(path.join(__dirname, '../../tests/support/smsc/node_modules/smpp'));

smpp.filters.message.decode = (value) => value;

/** How long the client waits for an answer before counting the post as failed (status 0). */
const REQUEST_TIMEOUT_MS = 10000;
/** How long it waits after the last post for the accepted messages to be submitted. */
const DRAIN_MS = 30000;

const posted = new Map(); // text → time the POST was written (ms)
const accepted = new Map(); // text → time the 201 was read (ms)
const submitted = new Map(); // text → [times of submit_sm]
let submits = 0;
let firstSubmit = 0;
let lastSubmit = 0;

const server = smpp.createServer((session) => {
  session.on('bind_transceiver', (pdu) => {
    session.send(pdu.response());
  });
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('unbind', (pdu) => {
    session.send(pdu.response());
    session.close();
  });
  session.on('submit_sm', (pdu) => {
    const now = performance.now();
    const text = Buffer.from(pdu.short_message.message || pdu.short_message).toString('latin1');
    const times = submitted.get(text) || [];
    times.push(now);
    submitted.set(text, times);
    submits++;
    if (!firstSubmit) firstSubmit = now;
    lastSubmit = now;
    session.send(pdu.response({ message_id: 'm' + submits }));
  });
  session.on('error', () => {});
});

server.listen(0, '127.0.0.1', () => {
  fs.writeFileSync(process.argv[3], String(server.address().port));
});

let input = '';
let started = false;
process.stdin.on('data', (chunk) => {
  input += chunk;
  if (!started && input.includes('\n')) {
    started = true;
    run(JSON.parse(input.split('\n')[0]));
  }
});
// The SMSC stays up (the platform's binds too) until the caller closes stdin: it reads the
// server's log after the result line, before the binds go down.
process.stdin.on('end', () => process.exit(0));

function post(agent, job, text) {
  const body = JSON.stringify({ tn: job.tn, to: '15005550006', message: text });
  return new Promise((resolve) => {
    const req = http.request(
      job.api + '/rest/sms',
      {
        method: 'POST',
        agent,
        timeout: REQUEST_TIMEOUT_MS,
        headers: {
          'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(body),
          Authorization: 'Bearer ' + job.token,
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
        res.on('error', () => resolve(0));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    posted.set(text, performance.now());
    req.end(body);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function run(job) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: job.connections });
  const statuses = {};
  const answerTimes = []; // POST → answer, ms
  let next = 0;
  let late = 0;
  const start = performance.now();
  const deadline = start + job.seconds * 1000;
  async function one() {
    const text = 'load ' + next++;
    const status = await post(agent, job, text);
    const now = performance.now();
    statuses[status] = (statuses[status] || 0) + 1;
    answerTimes.push(now - posted.get(text));
    if (status === 201) accepted.set(text, now);
  }
  if (!job.rate) {
    // Closed loop.
    await Promise.all(
      Array.from({ length: job.connections }, async () => {
        while (performance.now() < deadline) await one();
      }),
    );
  } else {
    // Open loop: post i is due at start + i / rate.
    const inFlight = new Set();
    let due = 0;
    for (;;) {
      const now = performance.now();
      if (now >= deadline) break;
      const target = Math.floor(((now - start) * job.rate) / 1000) + 1;
      while (due < target && performance.now() < deadline) {
        if (inFlight.size >= job.connections) {
          late++;
          await Promise.race(inFlight);
          continue;
        }
        const p = one().then(() => inFlight.delete(p));
        inFlight.add(p);
        due++;
      }
      await sleep(1);
    }
    await Promise.all(inFlight);
  }
  const sendEnd = performance.now();
  // Let the sender drain: wait until every accepted message was submitted, or DRAIN_MS.
  const drainDeadline = performance.now() + DRAIN_MS;
  while (performance.now() < drainDeadline) {
    let missing = 0;
    for (const text of accepted.keys()) if (!submitted.has(text)) missing++;
    if (missing === 0) break;
    await sleep(200);
  }
  // Late doubles: a second submit of a message comes after its first.
  await sleep(1000);
  const delays = []; // 201 → first submit_sm
  const fromPost = []; // POST written → first submit_sm
  let lost = 0;
  let doubled = 0;
  let early = 0;
  for (const [text, at] of accepted) {
    const times = submitted.get(text);
    if (!times) {
      lost++;
      continue;
    }
    if (times.length > 1) doubled++;
    // The submit may come before the client has read its 201 (the server answers, then the
    // sender is woken, and the client's event loop may read the answer after the SMSC's
    // submit_sm): counted as 0 here, and as `submit_before_201`.
    if (times[0] < at) early++;
    delays.push(Math.max(0, times[0] - at));
    fromPost.push(times[0] - posted.get(text));
  }
  let stray = 0;
  for (const [text, times] of submitted) {
    if (!accepted.has(text)) {
      stray++;
      if (times.length > 1) doubled++;
    }
  }
  const pct = (list, p) => {
    if (!list.length) return null;
    const v = list[Math.min(list.length - 1, Math.floor((p / 100) * list.length))];
    return Number(v.toFixed(1));
  };
  const numeric = (a, b) => a - b;
  delays.sort(numeric);
  fromPost.sort(numeric);
  answerTimes.sort(numeric);
  const sendSecs = (sendEnd - start) / 1000;
  const submitSecs = Math.max(0.001, (lastSubmit - firstSubmit) / 1000);
  console.log(
    JSON.stringify({
      seconds: Number(sendSecs.toFixed(1)),
      rate: job.rate || 0,
      connections: job.connections,
      posted: posted.size,
      late,
      statuses,
      accepted: accepted.size,
      accepted_per_sec: Math.round(accepted.size / sendSecs),
      answer_ms_p50: pct(answerTimes, 50),
      answer_ms_p99: pct(answerTimes, 99),
      submitted: submitted.size,
      submit_sm: submits,
      submitted_per_sec: Math.round(submitted.size / submitSecs),
      submit_secs: Number(submitSecs.toFixed(1)),
      drained_after_ms: Math.max(0, Math.round(lastSubmit - sendEnd)),
      delay_ms_p50: pct(delays, 50),
      delay_ms_p99: pct(delays, 99),
      delay_ms_max: pct(delays, 100),
      post_to_submit_ms_p99: pct(fromPost, 99),
      submit_before_201: early,
      lost,
      doubled,
      stray,
    }),
  );
}
