#!/usr/bin/env node
// A test SMSC (SMPP 3.4 server) on the npm package `smpp`, for opentact-messaging's tests.
//
// Usage: node smsc.js [--port N] [--system-id ID] [--password PW] [--receipt-delay-ms N]
//                     [--response-delay-ms N] [--drop-after N]
// (or the env vars SMSC_PORT, SMSC_SYSTEM_ID, SMSC_PASSWORD, SMSC_RECEIPT_DELAY_MS,
// SMSC_RESPONSE_DELAY_MS, SMSC_DROP_AFTER). Port 0 (the default) takes a free port.
//
// stdout, one JSON object a line (the first line is the plain `LISTENING <port>`):
//   {"event":"bind","session":1,"system_id":"…","ok":true}
//   {"event":"submit_sm","session":1,"sequence":7,"message_id":"m1","source":"…",
//    "destination":"…","data_coding":0,"esm_class":0,"user_message_reference":7,
//    "short_message":"<hex>",
//    "outstanding":3,"max_outstanding":5}
//   {"event":"receipt_sent","message_id":"m1","stat":"DELIVRD","user_message_reference":7}
//   {"event":"deliver_sm_resp","session":1,"sequence":2,"command_status":0}
//   {"event":"enquire_link"|"unbind"|"closed"|"drop"|"deliver_sent", "session":1, …}
// `outstanding` counts this session's submit_sm received and not yet answered (including
// this one): with --response-delay-ms it shows the client's window.
//
// stdin, one JSON command a line:
//   {"deliver": {"from": "…", "to": "…", "text": "…"}}  an inbound deliver_sm on a bound
//        session (GSM-compatible ASCII as data_coding 0, anything else UCS-2 data_coding 8)
//   {"deliver": {"from": "…", "to": "…", "parts": ["…", "…"]}}  a concatenated message: one
//        deliver_sm per part (esm_class 0x40, UDH reference 42, ASCII)
//   {"drop": true}   drop every session: stop reading, flush what was answered, close. A
//        submit_sm the SMSC had not read is never answered nor logged.
//
// Receipts: every submit_sm gets a delivery receipt deliver_sm (esm_class 0x04, the Appendix B
// text, receipted_message_id and message_state TLVs) after --receipt-delay-ms (default 50),
// on the session it came in on or, if that one is gone, the next bound session. A destination
// starting with 999 gets stat UNDELIV (message_state 5, err:001); any other DELIVRD. A
// submit_sm's user_message_reference TLV is echoed in its receipt, as SMPP 3.4 §4.6.1 allows
// (what lets the client recognise a submit whose answer it lost). Like a real SMSC, a receipt
// is delivered until it is acknowledged: one whose session closed before its deliver_sm_resp
// (or answered with an error) is delivered again on the next bound session.
'use strict';

const smpp = require('smpp');

// Keep short_message as the raw octets: the test checks exactly what the client encoded.
smpp.filters.message.decode = (value) => value;

function arg(name, env, fallback) {
  const i = process.argv.indexOf('--' + name);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (process.env[env] !== undefined) return process.env[env];
  return fallback;
}

const config = {
  port: Number(arg('port', 'SMSC_PORT', '0')),
  systemId: arg('system-id', 'SMSC_SYSTEM_ID', 'opentact'),
  password: arg('password', 'SMSC_PASSWORD', 'secret'),
  receiptDelayMs: Number(arg('receipt-delay-ms', 'SMSC_RECEIPT_DELAY_MS', '50')),
  responseDelayMs: Number(arg('response-delay-ms', 'SMSC_RESPONSE_DELAY_MS', '0')),
  dropAfter: Number(arg('drop-after', 'SMSC_DROP_AFTER', '0')),
};

function log(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

let nextSession = 0;
let nextMessageId = 0;
let submits = 0;
let dropped = false;
const sessions = new Set(); // bound sessions
const pendingReceipts = []; // receipts waiting for a bound session

function smppDate(d) {
  const p = (n) => String(n).padStart(2, '0');
  return p(d.getUTCFullYear() % 100) + p(d.getUTCMonth() + 1) + p(d.getUTCDate()) +
    p(d.getUTCHours()) + p(d.getUTCMinutes());
}

function anyBound(preferred) {
  if (preferred && sessions.has(preferred)) return preferred;
  for (const s of sessions) return s;
  return null;
}

function sendReceipt(receipt) {
  const session = anyBound(receipt.session);
  if (!session) {
    pendingReceipts.push(receipt);
    return;
  }
  const undeliv = receipt.destination.startsWith('999');
  const stat = undeliv ? 'UNDELIV' : 'DELIVRD';
  const now = smppDate(new Date());
  const text = `id:${receipt.messageId} sub:001 dlvrd:${undeliv ? '000' : '001'} ` +
    `submit date:${receipt.submitDate} done date:${now} stat:${stat} ` +
    `err:${undeliv ? '001' : '000'} text:`;
  const pdu = {
    source_addr: receipt.destination,
    destination_addr: receipt.source,
    esm_class: 0x04,
    data_coding: 0,
    short_message: Buffer.from(text, 'ascii'),
    receipted_message_id: receipt.messageId,
    message_state: undeliv ? 5 : 2,
  };
  if (receipt.reference !== undefined) pdu.user_message_reference = receipt.reference;
  session.unacked.add(receipt);
  const written = session.deliver_sm(pdu, (resp) => {
    session.unacked.delete(receipt);
    if (resp.command_status !== 0) setTimeout(() => sendReceipt(receipt), 100);
  });
  if (!written) {
    session.unacked.delete(receipt);
    pendingReceipts.push(receipt);
    return;
  }
  log({ event: 'receipt_sent', session: session.id, message_id: receipt.messageId, stat,
    user_message_reference: receipt.reference });
}

// Receipts a closed session never acknowledged go out again on a bound session.
function requeueUnacked(session) {
  for (const receipt of session.unacked) pendingReceipts.push(receipt);
  session.unacked.clear();
  flushPending();
}

function flushPending() {
  // Each once: one that cannot be written now stays pending.
  for (let n = pendingReceipts.length; n > 0 && anyBound(null); n--) sendReceipt(pendingReceipts.shift());
}

function dropAll() {
  for (const session of [...sessions]) {
    dropSession(session);
  }
}

// Stops reading (unread PDUs are never answered), lets the answers already written reach the
// client, then closes.
function dropSession(session) {
  sessions.delete(session);
  session.pause();
  log({ event: 'drop', session: session.id });
  session.socket.end();
  setTimeout(() => session.socket.destroy(), 200);
}

const server = smpp.createServer((session) => {
  session.id = ++nextSession;
  session.outstanding = 0;
  session.maxOutstanding = 0;
  session.unacked = new Set();

  session.on('bind_transceiver', (pdu) => {
    const ok = pdu.system_id === config.systemId && pdu.password === config.password;
    log({ event: 'bind', session: session.id, system_id: pdu.system_id, ok });
    if (!ok) {
      session.send(pdu.response({ command_status: smpp.ESME_RBINDFAIL }));
      session.close();
      return;
    }
    session.send(pdu.response({ system_id: 'test-smsc' }));
    sessions.add(session);
    flushPending();
  });

  session.on('submit_sm', (pdu) => {
    if (!sessions.has(session)) {
      session.send(pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
      return;
    }
    const messageId = 'm' + (++nextMessageId);
    session.outstanding += 1;
    session.maxOutstanding = Math.max(session.maxOutstanding, session.outstanding);
    const sm = Buffer.isBuffer(pdu.short_message) ? pdu.short_message : Buffer.alloc(0);
    log({
      event: 'submit_sm',
      session: session.id,
      sequence: pdu.sequence_number,
      message_id: messageId,
      source: pdu.source_addr,
      destination: pdu.destination_addr,
      data_coding: pdu.data_coding,
      esm_class: pdu.esm_class,
      registered_delivery: pdu.registered_delivery,
      user_message_reference: pdu.user_message_reference,
      short_message: sm.toString('hex'),
      outstanding: session.outstanding,
      max_outstanding: session.maxOutstanding,
    });
    submits += 1;
    const respond = () => {
      session.outstanding -= 1;
      session.send(pdu.response({ message_id: messageId }));
      if (pdu.registered_delivery & 0x01) {
        const receipt = {
          session, messageId, source: pdu.source_addr, destination: pdu.destination_addr,
          submitDate: smppDate(new Date()), reference: pdu.user_message_reference,
        };
        setTimeout(() => sendReceipt(receipt), config.receiptDelayMs);
      }
    };
    if (config.responseDelayMs > 0) {
      setTimeout(respond, config.responseDelayMs);
    } else {
      respond();
    }
    if (config.dropAfter > 0 && submits === config.dropAfter && !dropped) {
      dropped = true;
      dropSession(session);
    }
  });

  session.on('deliver_sm_resp', (pdu) => {
    log({ event: 'deliver_sm_resp', session: session.id, sequence: pdu.sequence_number,
      command_status: pdu.command_status });
  });

  session.on('enquire_link', (pdu) => {
    log({ event: 'enquire_link', session: session.id });
    session.send(pdu.response());
  });

  session.on('unbind', (pdu) => {
    log({ event: 'unbind', session: session.id });
    sessions.delete(session);
    session.send(pdu.response());
    session.close();
  });

  session.on('close', () => {
    sessions.delete(session);
    log({ event: 'closed', session: session.id });
    requeueUnacked(session);
  });

  session.on('error', () => {
    sessions.delete(session);
  });
});

server.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  input += chunk;
  let nl;
  while ((nl = input.indexOf('\n')) >= 0) {
    const line = input.slice(0, nl).trim();
    input = input.slice(nl + 1);
    if (!line) continue;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (e) {
      log({ event: 'error', error: 'bad command: ' + line });
      continue;
    }
    if (cmd.drop) {
      dropAll();
    }
    if (cmd.deliver) {
      const session = anyBound(null);
      if (!session) {
        log({ event: 'error', error: 'no bound session for deliver' });
        continue;
      }
      if (Array.isArray(cmd.deliver.parts)) {
        // A concatenated message: each part with a UDH (IEI 0x00, 8-bit reference), ASCII text.
        const total = cmd.deliver.parts.length;
        cmd.deliver.parts.forEach((part, i) => {
          const udh = Buffer.from([0x05, 0x00, 0x03, 0x2a, total, i + 1]);
          session.deliver_sm({
            source_addr: cmd.deliver.from,
            destination_addr: cmd.deliver.to,
            esm_class: 0x40,
            data_coding: 0,
            short_message: Buffer.concat([udh, Buffer.from(String(part), 'ascii')]),
          });
        });
        log({ event: 'deliver_sent', session: session.id, from: cmd.deliver.from, parts: total });
        continue;
      }
      const text = String(cmd.deliver.text);
      // GSM-7 and ASCII share the letters, digits and common punctuation; anything else UCS-2.
      const ascii = /^[A-Za-z0-9 .,!?:;'()+\-*/%&"#=<>\n\r]*$/.test(text);
      let buf;
      if (ascii) {
        buf = Buffer.from(text, 'ascii');
      } else {
        buf = Buffer.from(text, 'utf16le');
        buf.swap16();
      }
      session.deliver_sm({
        source_addr: cmd.deliver.from,
        destination_addr: cmd.deliver.to,
        esm_class: 0,
        data_coding: ascii ? 0 : 8,
        short_message: buf,
      });
      log({ event: 'deliver_sent', session: session.id, from: cmd.deliver.from });
    }
  }
});
// The test ends: so do we.
process.stdin.on('end', () => process.exit(0));
