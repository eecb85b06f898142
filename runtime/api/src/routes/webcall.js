// The web call: a small SIP user agent over WebSocket (RFC 7118) with WebRTC audio.
//
// It signs in as a SIP user (REGISTER with digest, RFC 3261 §22), places calls (INVITE with the
// browser's offer; the platform answers with ICE-lite and DTLS-SRTP), sends keys as RFC 4733
// events (RTCDTMFSender), hangs up (BYE), and answers the platform's BYE and incoming INVITEs.
// Everything goes over the one WebSocket: a browser can open no other connection, so the
// Via and Contact hosts are made-up `.invalid` names (RFC 7118 §5) and never used to route.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  // The SIP WebSocket: wss on https pages (the platform's wss port, or a TLS proxy in front of
  // the ws port); on http pages (localhost) plain ws when it is served, else wss.
  const { wsPort, wssPort } = document.body.dataset;
  const secure = location.protocol === 'https:' || !wsPort;
  const sipSocketUrl = `${secure ? 'wss' : 'ws'}://${location.hostname}:${secure ? (wssPort || wsPort) : wsPort}`;
  const viaTransport = secure ? 'WSS' : 'WS';
  const USER_AGENT = 'opentact-webcall/1';

  // ---- MD5 (RFC 1321), for digest authentication: Web Crypto offers no MD5. ----
  const MD5_SHIFTS = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
  const MD5_K = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) >>> 0);
  function md5(text) {
    const bytes = new TextEncoder().encode(text);
    const blocks = ((bytes.length + 8) >> 6) + 1;
    const words = new Uint32Array(blocks * 16);
    bytes.forEach((byte, i) => { words[i >> 2] |= byte << ((i % 4) * 8); });
    words[bytes.length >> 2] |= 0x80 << ((bytes.length % 4) * 8);
    words[blocks * 16 - 2] = (bytes.length * 8) >>> 0;
    words[blocks * 16 - 1] = Math.floor(bytes.length / 0x20000000);
    let a0 = 0x67452301, b0 = 0xefcdab89, c0 = 0x98badcfe, d0 = 0x10325476;
    for (let block = 0; block < blocks; block++) {
      let a = a0, b = b0, c = c0, d = d0;
      for (let i = 0; i < 64; i++) {
        let f, g;
        if (i < 16) { f = (b & c) | (~b & d); g = i; }
        else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) % 16; }
        else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) % 16; }
        else { f = c ^ (b | ~d); g = (7 * i) % 16; }
        const shift = MD5_SHIFTS[(i >> 4) * 4 + (i % 4)];
        const x = (a + f + MD5_K[i] + words[block * 16 + g]) | 0;
        a = d; d = c; c = b;
        b = (b + ((x << shift) | (x >>> (32 - shift)))) | 0;
      }
      a0 = (a0 + a) | 0; b0 = (b0 + b) | 0; c0 = (c0 + c) | 0; d0 = (d0 + d) | 0;
    }
    return [a0, b0, c0, d0]
      .map((v) => [0, 8, 16, 24].map((s) => ((v >>> s) & 0xff).toString(16).padStart(2, '0')).join(''))
      .join('');
  }
  window.webcallMd5 = md5;

  const random = (bytes = 8) =>
    Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('');

  // ---- SIP messages ----
  const COMPACT = { v: 'via', f: 'from', t: 'to', i: 'call-id', m: 'contact', l: 'content-length', c: 'content-type' };
  function parse(text) {
    const split = text.indexOf('\r\n\r\n');
    const head = split < 0 ? text : text.slice(0, split);
    const lines = head.split('\r\n');
    const first = lines.shift();
    const headers = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon < 0) continue;
      let name = line.slice(0, colon).trim().toLowerCase();
      name = COMPACT[name] || name;
      (headers[name] = headers[name] || []).push(line.slice(colon + 1).trim());
    }
    const message = { headers, body: split < 0 ? '' : text.slice(split + 4), get: (name) => (headers[name] || [])[0] || '' };
    if (first.startsWith('SIP/2.0 ')) {
      message.status = parseInt(first.split(' ')[1], 10);
    } else {
      [message.method, message.uri] = first.split(' ');
    }
    return message;
  }
  function build(first, headers, body = '') {
    let text = first + '\r\n';
    for (const [name, value] of headers) text += `${name}: ${value}\r\n`;
    return text + `Content-Length: ${new TextEncoder().encode(body).length}\r\n\r\n${body}`;
  }
  const tagOf = (header) => (/;\s*tag=([^;>\s]+)/i.exec(header) || [])[1] || null;
  const branchOf = (via) => (/;\s*branch=([^;,\s]+)/i.exec(via) || [])[1] || null;
  const uriIn = (header) => (/<([^>]+)>/.exec(header) || [null, header.split(';')[0]])[1];

  // ---- the user agent ----
  const viaHost = `${random(4)}.invalid`;
  const contactUser = random(4);
  const ua = { ws: null, user: '', domain: '', password: '', pending: new Map(), register: null, call: null, refresh: null };

  function setStatus(text) {
    $('status').textContent = text;
    log(`status: ${text}`);
  }
  function log(text) {
    const line = `${new Date().toISOString().slice(11, 23)} ${text}\n`;
    $('log').textContent = (line + $('log').textContent).slice(0, 20000);
  }
  function buttons() {
    const signedIn = Boolean(ua.register && ua.register.active);
    const call = ua.call;
    $('register').disabled = signedIn;
    $('unregister').disabled = !signedIn;
    $('call').disabled = !signedIn || Boolean(call);
    $('answer').disabled = !(call && call.incoming && call.state === 'ringing');
    $('hangup').disabled = !call;
  }

  function contact() {
    return `<sip:${contactUser}@${viaHost};transport=ws>`;
  }

  // A request outside or inside a dialog; resolves with its final response.
  function request(method, uri, headers, body = '', onProvisional = null) {
    const branch = `z9hG4bK${random()}`;
    const all = [['Via', `SIP/2.0/${viaTransport} ${viaHost};branch=${branch};rport`], ['Max-Forwards', '70'], ...headers, ['User-Agent', USER_AGENT]];
    return new Promise((resolve, reject) => {
      if (!ua.ws || ua.ws.readyState !== WebSocket.OPEN) {
        reject(new Error('not connected'));
        return;
      }
      if (method !== 'ACK') ua.pending.set(branch, { resolve, onProvisional, method });
      ua.ws.send(build(`${method} ${uri} SIP/2.0`, all, body));
      if (method === 'ACK') resolve(null);
    }).then((response) => ({ response, branch }));
  }

  function authorization(challenge, method, uri) {
    const params = {};
    challenge.replace(/^Digest\s+/i, '').replace(/(\w+)=("([^"]*)"|[^,\s]*)/g, (_, key, raw, quoted) => {
      params[key.toLowerCase()] = quoted !== undefined ? quoted : raw;
      return '';
    });
    const ha1 = md5(`${ua.user}:${params.realm}:${ua.password}`);
    const ha2 = md5(`${method}:${uri}`);
    let header = `Digest username="${ua.user}", realm="${params.realm}", nonce="${params.nonce}", uri="${uri}", algorithm=MD5`;
    const qops = (params.qop || '').split(',').map((q) => q.trim());
    if (qops.includes('auth')) {
      const cnonce = random();
      const nc = '00000001';
      header += `, qop=auth, nc=${nc}, cnonce="${cnonce}", response="${md5(`${ha1}:${params.nonce}:${nc}:${cnonce}:auth:${ha2}`)}"`;
    } else {
      header += `, response="${md5(`${ha1}:${params.nonce}:${ha2}`)}"`;
    }
    if (params.opaque) header += `, opaque="${params.opaque}"`;
    return header;
  }

  // Send, and answer one digest challenge (401 or 407) by sending again with credentials.
  // `headersFor(cseq, extra)` builds the request's headers.
  async function authenticated(method, uri, headersFor, body, onProvisional, dialog) {
    let { response, branch } = await request(method, uri, headersFor(dialog.cseq, []), body, onProvisional);
    if (response.status === 401 || response.status === 407) {
      if (method === 'INVITE') ackFailure(uri, dialog, response, branch);
      const header = response.status === 401 ? 'Authorization' : 'Proxy-Authorization';
      const challenge = response.get(response.status === 401 ? 'www-authenticate' : 'proxy-authenticate');
      dialog.cseq += 1;
      ({ response } = await request(method, uri, headersFor(dialog.cseq, [[header, authorization(challenge, method, uri)]]), body, onProvisional));
    }
    return response;
  }

  // The ACK of a non-2xx final response to an INVITE: part of its transaction (same branch).
  function ackFailure(uri, dialog, response, branch) {
    ua.ws.send(build(`ACK ${uri} SIP/2.0`, [
      ['Via', `SIP/2.0/${viaTransport} ${viaHost};branch=${branch};rport`], ['Max-Forwards', '70'],
      ['From', dialog.from], ['To', response.get('to')], ['Call-ID', dialog.callId], ['CSeq', `${dialog.cseq} ACK`],
    ]));
  }

  function connect() {
    return new Promise((resolve, reject) => {
      if (ua.ws && ua.ws.readyState === WebSocket.OPEN) { resolve(); return; }
      const ws = new WebSocket(sipSocketUrl, 'sip');
      ws.onopen = () => { ua.ws = ws; resolve(); };
      ws.onerror = () => reject(new Error('the SIP WebSocket did not open'));
      ws.onclose = () => {
        if (ua.ws === ws) {
          ua.ws = null;
          if (ua.register) ua.register.active = false;
          endCall('connection lost');
          setStatus('disconnected');
          buttons();
        }
      };
      ws.onmessage = (event) => receive(String(event.data));
    });
  }

  function receive(text) {
    if (!text.trim()) return; // keep-alive
    const message = parse(text);
    if (message.status) {
      const branch = branchOf(message.get('via'));
      const pending = ua.pending.get(branch);
      if (pending && message.status < 200) {
        if (pending.onProvisional) pending.onProvisional(message);
      } else if (pending) {
        ua.pending.delete(branch);
        pending.resolve(message);
      } else if (message.status < 300 && /INVITE/.test(message.get('cseq')) && ua.call && ua.call.callId === message.get('call-id')) {
        sendAck(ua.call); // a retransmitted 200: our ACK was lost
      }
      return;
    }
    log(`<- ${message.method}`);
    switch (message.method) {
      case 'BYE':
        respond(message, 200, 'OK');
        if (ua.call && ua.call.callId === message.get('call-id')) endCall('call ended');
        break;
      case 'INVITE':
        incoming(message);
        break;
      case 'ACK':
        break;
      case 'CANCEL':
        respond(message, 200, 'OK');
        if (ua.call && ua.call.incoming && ua.call.callId === message.get('call-id') && ua.call.state === 'ringing') {
          respond(ua.call.invite, 487, 'Request Terminated', [], '', ua.call.localTag);
          endCall('missed call');
        }
        break;
      case 'OPTIONS':
        respond(message, 200, 'OK', [['Allow', 'INVITE, ACK, BYE, CANCEL, OPTIONS']]);
        break;
      default:
        respond(message, 405, 'Method Not Allowed', [['Allow', 'INVITE, ACK, BYE, CANCEL, OPTIONS']]);
    }
  }

  function respond(req, status, reason, extra = [], body = '', localTag = null) {
    const headers = (req.headers.via || []).map((via) => ['Via', via]);
    let to = req.get('to');
    if (!tagOf(to)) to += `;tag=${localTag || random(6)}`;
    headers.push(['From', req.get('from')], ['To', to], ['Call-ID', req.get('call-id')], ['CSeq', req.get('cseq')], ...extra);
    if (body) headers.push(['Content-Type', 'application/sdp']);
    if (ua.ws) ua.ws.send(build(`SIP/2.0 ${status} ${reason}`, headers, body));
  }

  // ---- registration ----
  async function register(expires) {
    const reg = ua.register;
    const uri = `sip:${ua.domain}`;
    const aor = `<sip:${ua.user}@${ua.domain}>`;
    const headersFor = (cseq, extra) => [
      ['From', `${aor};tag=${reg.tag}`], ['To', aor], ['Call-ID', reg.callId], ['CSeq', `${cseq} REGISTER`],
      ['Contact', `${contact()};expires=${expires}`], ['Expires', String(expires)], ...extra,
    ];
    reg.cseq += 1;
    const response = await authenticated('REGISTER', uri, headersFor, '', null, reg);
    return response.status;
  }

  async function signIn() {
    ua.user = $('user').value.trim();
    ua.domain = $('domain').value.trim();
    ua.password = $('password').value;
    if (!ua.user || !ua.domain) { setStatus('enter your user and SIP domain'); return; }
    try {
      setStatus('connecting');
      await connect();
      ua.register = { callId: random(12), tag: random(6), cseq: 0, active: false };
      const status = await register(300);
      if (status >= 200 && status < 300) {
        ua.register.active = true;
        setStatus('registered');
        clearInterval(ua.refresh);
        ua.refresh = setInterval(() => register(300).catch(() => {}), 240000);
      } else {
        setStatus(`registration failed: ${status}`);
      }
    } catch (error) {
      setStatus(`registration failed: ${error.message}`);
    }
    buttons();
  }

  async function signOut() {
    clearInterval(ua.refresh);
    if (ua.call) await hangUp();
    try { await register(0); } catch (_) { /* the socket is gone anyway */ }
    ua.register.active = false;
    setStatus('signed out');
    buttons();
  }

  // ---- calls ----
  async function peer(call) {
    call.pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    call.pc.ontrack = (event) => { $('remote').srcObject = event.streams[0] || new MediaStream([event.track]); };
    call.pc.oniceconnectionstatechange = () => log(`ICE ${call.pc.iceConnectionState}`);
    call.media = await navigator.mediaDevices.getUserMedia({ audio: true });
    for (const track of call.media.getTracks()) call.pc.addTrack(track, call.media);
  }

  // Non-trickle: the SDP goes out once every candidate is in it.
  function gathered(pc) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === 'complete') resolve(); };
      pc.addEventListener('icegatheringstatechange', done);
      setTimeout(resolve, 3000);
    });
  }

  function dialogHeaders(call, cseq, method) {
    return [['From', call.from], ['To', call.to], ['Call-ID', call.callId], ['CSeq', `${cseq} ${method}`]];
  }

  function sendAck(call) {
    request('ACK', call.target, dialogHeaders(call, call.inviteCseq, 'ACK'));
  }

  async function placeCall() {
    const target = $('target').value.trim();
    if (!target) { setStatus('enter a number or user to call'); return; }
    const uri = target.startsWith('sip:') ? target : `sip:${target.includes('@') ? target : `${target}@${ua.domain}`}`;
    const call = { incoming: false, state: 'calling', callId: random(12), localTag: random(6), cseq: 1, target: uri };
    call.from = `<sip:${ua.user}@${ua.domain}>;tag=${call.localTag}`;
    call.to = `<${uri}>`;
    ua.call = call;
    buttons();
    setStatus('calling');
    try {
      await peer(call);
      await call.pc.setLocalDescription(await call.pc.createOffer());
      await gathered(call.pc);
      const headersFor = (cseq, extra) => [
        ...dialogHeaders(call, cseq, 'INVITE'), ['Contact', contact()], ['Content-Type', 'application/sdp'], ...extra,
      ];
      const response = await authenticated('INVITE', uri, headersFor, call.pc.localDescription.sdp, (provisional) => {
        if (ua.call === call && provisional.status >= 180) setStatus('ringing');
      }, call);
      if (ua.call !== call) return;
      if (response.status >= 300) {
        endCall(`call failed: ${response.status}`);
        return;
      }
      call.inviteCseq = call.cseq;
      call.to = response.get('to');
      call.target = uriIn(response.get('contact')) || uri;
      sendAck(call);
      await call.pc.setRemoteDescription({ type: 'answer', sdp: response.body });
      call.state = 'up';
      setStatus('in call');
    } catch (error) {
      endCall(`call failed: ${error.message}`);
    }
    buttons();
  }

  async function incoming(invite) {
    if (ua.call) {
      respond(invite, 486, 'Busy Here');
      return;
    }
    const call = {
      incoming: true, state: 'ringing', callId: invite.get('call-id'), localTag: random(6), invite,
      cseq: 0, target: uriIn(invite.get('contact')),
    };
    call.from = `${invite.get('to')};tag=${call.localTag}`;
    call.to = invite.get('from');
    ua.call = call;
    respond(invite, 180, 'Ringing', [['Contact', contact()]], '', call.localTag);
    setStatus(`incoming call from ${uriIn(invite.get('from'))}`);
    buttons();
  }

  async function answer() {
    const call = ua.call;
    if (!call || !call.incoming || call.state !== 'ringing') return;
    try {
      await peer(call);
      await call.pc.setRemoteDescription({ type: 'offer', sdp: call.invite.body });
      await call.pc.setLocalDescription(await call.pc.createAnswer());
      await gathered(call.pc);
      respond(call.invite, 200, 'OK', [['Contact', contact()]], call.pc.localDescription.sdp, call.localTag);
      call.state = 'up';
      setStatus('in call');
    } catch (error) {
      respond(call.invite, 488, 'Not Acceptable Here', [], '', call.localTag);
      endCall(`call failed: ${error.message}`);
    }
    buttons();
  }

  async function hangUp() {
    const call = ua.call;
    if (!call) return;
    if (call.incoming && call.state === 'ringing') {
      respond(call.invite, 603, 'Decline', [], '', call.localTag);
    } else if (call.state === 'up') {
      call.cseq += 1;
      request('BYE', call.target, dialogHeaders(call, call.cseq, 'BYE')).catch(() => {});
    }
    endCall('call ended');
  }

  function endCall(status) {
    const call = ua.call;
    if (!call) return;
    ua.call = null;
    if (call.pc) call.pc.close();
    if (call.media) call.media.getTracks().forEach((track) => track.stop());
    setStatus(status);
    buttons();
  }

  function pressKey(key) {
    const call = ua.call;
    if (!call || call.state !== 'up') return;
    const sender = call.pc.getSenders().find((s) => s.track && s.track.kind === 'audio');
    if (sender && sender.dtmf && sender.dtmf.canInsertDTMF) {
      sender.dtmf.insertDTMF(key, 200, 70);
      log(`sent key ${key}`);
    } else {
      log(`key ${key} not sent: the call negotiated no telephone-event`);
    }
  }

  $('register').addEventListener('click', signIn);
  $('unregister').addEventListener('click', signOut);
  $('call').addEventListener('click', placeCall);
  $('answer').addEventListener('click', answer);
  $('hangup').addEventListener('click', hangUp);
  document.querySelectorAll('#keypad button').forEach((button) => {
    button.addEventListener('click', () => pressKey(button.dataset.key));
  });
  if (!$('domain').value) $('domain').value = '';
  buttons();
})();
