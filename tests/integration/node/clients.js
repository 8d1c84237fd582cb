#!/usr/bin/env node
/*
 * Driver for tests/integration/test_real_clients.py (through nodeclients.py):
 * runs `count` clients of one real Node.js Redis library against host:port,
 * with the library's DEFAULT options apart from what an application would
 * configure (host/port, and db/username/password/name when given), runs a
 * workload, and prints ONE JSON object on stdout at the end.
 *
 *   node clients.js '<json spec>'      spec in argv
 *   node clients.js @spec.json         spec in a file
 *   node clients.js < spec             spec = the first line of stdin
 *
 * Spec:
 *   lib        "redis5" | "redis6" | "ioredis5" | "ioredis6"
 *   host, port where to connect (default 127.0.0.1:6379)
 *   count      number of clients (default 1)
 *   options    what the application configures: {db, username, password,
 *              name, resp}; `name` may hold "{idx}", replaced per client.
 *              `resp` (2|3) is only for probing; the tests leave it out.
 *   lib_options  diagnostics only, never in the tests: raw options merged
 *              into the library's constructor options, e.g.
 *              {"maintNotifications": "disabled"} or {"disableClientInfo": true}
 *   workload   "connect" | "incr" | "hold" | "check" | "state"
 *   prefix     key prefix (default "rz:<lib>:"); own keys add the client index
 *   seconds    time bound of the workload (incr, hold; default 10)
 *   ops        round bound of "incr" (default 1e9, i.e. the time bounds it)
 *   commands   "connect"/"hold": commands each client sends after connecting,
 *              e.g. [["PING"], ["SET", "k:{idx}", "v"]]; replies are reported
 *   checks     "check": any of "basic", "multi", "blpop", "pubsub"
 *              (default ["basic"]); "hold": checks run before holding
 *   rounds     SET/GET rounds of the "basic" check (default 5)
 *   state      true or {marker: KEY}: a final state report per client
 *              (CLIENT GETNAME, GET KEY, ACL WHOAMI, HELLO's proto, the shape
 *              of a map reply, CLIENT INFO). The "state" workload is just that.
 *   shutdown   "quit" | "close" | "disconnect" | "none" (default: "close" for
 *              node-redis, "quit" for ioredis; for ioredis "close" is
 *              "disconnect"; node-redis "disconnect" is destroy())
 *   control    "stdin": stop when stdin reaches EOF or reads a "stop" line
 *              (SIGTERM/SIGINT also stop; a second one exits at once)
 *   cmd_timeout_ms      bound of each command (default 15000)
 *   connect_timeout_ms  bound of connecting all clients (default 20000)
 *   max_seconds         hard bound of the whole run (default 120)
 *
 * While it runs, progress lines go to stderr, each "RZCLIENTS <json>":
 *   {"event":"connected","connected":N,"failed":F}  every client tried once
 *   {"event":"progress","acks":N,"errors":E}          every 200 ms (incr)
 *   {"event":"holding"}                                hold: checks done
 *   {"event":"stopping","why":"..."}
 * Anything else on stderr is diagnostics.
 *
 * Exit status 0 when the driver itself worked (the clients' errors are in
 * the JSON); 2 on a bad spec or a crash of the driver (a JSON object with
 * "fatal" is still printed when possible).
 */
'use strict';

const fs = require('fs');
const path = require('path');

const LIBS = {
  redis5: 'node-redis',
  redis6: 'node-redis',
  ioredis5: 'ioredis',
  ioredis6: 'ioredis',
};
const T0 = Date.now();
const MAX_ERRORS_KEPT = 20;           // per client, per kind

let spec = null;
let result = null;
let emitted = false;

function elapsed() {
  return (Date.now() - T0) / 1000;
}

function progress(obj) {
  process.stderr.write('RZCLIENTS ' + JSON.stringify(obj) + '\n');
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function errText(e) {
  if (e === undefined || e === null) return String(e);
  if (typeof e === 'string') return e;
  const name = e.constructor && e.constructor.name ? e.constructor.name : 'Error';
  return name + ': ' + (e.message !== undefined ? e.message : String(e));
}

class TimeoutError extends Error {}

/* A promise bounded in time; the timer never keeps the process alive. */
function bounded(p, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError('timed out after ' + ms + ' ms: ' + what)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function emit(code) {
  if (emitted) return;
  emitted = true;
  if (result) result.elapsed_s = elapsed();
  const text = JSON.stringify(result || { fatal: 'no result' }) + '\n';
  process.stdout.write(text, () => process.exit(code));
  // a stuck stdout must not keep us alive forever
  setTimeout(() => process.exit(code), 5000).unref();
}

// ------------------------------------------------------------------ stop control

let stopReason = null;
const stopWaiters = [];

function requestStop(why) {
  if (stopReason !== null) return;
  stopReason = why;
  progress({ event: 'stopping', why });
  for (const w of stopWaiters.splice(0)) w();
}

function stopped() {
  if (stopReason !== null) return Promise.resolve();
  return new Promise((resolve) => stopWaiters.push(resolve));
}

function installSignals() {
  let n = 0;
  const onSig = (sig) => {
    n += 1;
    if (n === 1) {
      requestStop(sig);
    } else {
      if (result) result.fatal = 'second ' + sig + ': exiting at once';
      emit(2);
    }
  };
  process.on('SIGTERM', () => onSig('SIGTERM'));
  process.on('SIGINT', () => onSig('SIGINT'));
}

/* The spec (argv, @file, or stdin's first line); with control "stdin" the
 * rest of stdin is watched for EOF or a "stop" line. */
function readSpec() {
  const arg = process.argv[2];
  if (arg !== undefined) {
    const text = arg.startsWith('@') ? fs.readFileSync(arg.slice(1), 'utf8') : arg;
    const s = JSON.parse(text);
    if (s.control === 'stdin') watchStdin(false, null);
    return Promise.resolve(s);
  }
  return new Promise((resolve, reject) => watchStdin(true, { resolve, reject }));
}

function watchStdin(specFirst, settle) {
  let buf = '';
  let haveSpec = !specFirst;
  let control = !specFirst;
  process.stdin.setEncoding('utf8');
  const handleLine = (line) => {
    if (!haveSpec) {
      haveSpec = true;
      try {
        const s = JSON.parse(line);
        control = s.control === 'stdin';
        settle.resolve(s);
      } catch (e) {
        settle.reject(e);
      }
      return;
    }
    if (control && line.trim() === 'stop') requestStop('stdin stop');
  };
  process.stdin.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      handleLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  const onEnd = () => {
    if (!haveSpec) {
      if (buf.trim()) handleLine(buf);
      else settle.reject(new Error('no spec on stdin'));
    }
    if (control) requestStop('stdin closed');
  };
  process.stdin.on('end', onEnd);
  process.stdin.on('error', onEnd);
}

// ------------------------------------------------------------------ libraries

function readVersion(dir) {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
  } catch (e) {
    return null;
  }
}

function loadLib(name) {
  const kind = LIBS[name];
  if (!kind) throw new Error('unknown lib ' + JSON.stringify(name) + ' (one of ' + Object.keys(LIBS).join(', ') + ')');
  const dir = path.join(__dirname, 'node_modules', name);
  const mod = require(dir);
  const info = { name, kind, mod, version: readVersion(dir), client_version: null };
  if (kind === 'node-redis') {
    // redis@N re-exports @redis/client, nested under it or hoisted
    for (const d of [path.join(dir, 'node_modules', '@redis', 'client'),
      path.join(__dirname, 'node_modules', '@redis', 'client')]) {
      if (fs.existsSync(path.join(d, 'package.json'))) {
        info.client_version = readVersion(d);
        break;
      }
    }
  }
  return info;
}

/* Counts a client's events (and keeps the first error messages). */
class Tracker {
  constructor(label) {
    this.label = label;
    this.events = { connect: 0, ready: 0, error: 0, reconnecting: 0, end: 0, close: 0 };
    this.event_errors = [];
    this.timeline = [];           // [seconds since start, event] (bounded)
  }

  attach(emitter, names) {
    for (const n of names) {
      emitter.on(n, (arg) => {
        this.events[n] = (this.events[n] || 0) + 1;
        if (this.timeline.length < 50) this.timeline.push([Number(elapsed().toFixed(3)), n]);
        if (n === 'error' && this.event_errors.length < MAX_ERRORS_KEPT) {
          this.event_errors.push(errText(arg));
        }
      });
    }
  }

  toJSON() {
    return { label: this.label, events: this.events, event_errors: this.event_errors, timeline: this.timeline };
  }
}

/* node-redis 5/6 (the `redis` package) */
class NodeRedisClient {
  constructor(lib, opts, tracker, raw) {
    this.lib = lib;
    this.opts = opts;
    this.tracker = tracker;
    if (raw) {
      this.c = raw;
    } else {
      const o = { socket: { host: opts.host, port: opts.port } };
      if (opts.db !== undefined && opts.db !== null) o.database = opts.db;
      if (opts.username !== undefined && opts.username !== null) o.username = opts.username;
      if (opts.password !== undefined && opts.password !== null) o.password = opts.password;
      if (opts.name) o.name = opts.name;
      if (opts.resp) o.RESP = opts.resp;
      Object.assign(o, opts.lib_options || {});
      this.c = lib.mod.createClient(o);
    }
    tracker.attach(this.c, ['connect', 'ready', 'error', 'reconnecting', 'end']);
  }

  async connect() {
    await this.c.connect();
  }

  incr(k) { return this.c.incr(k); }
  rpush(k, v) { return this.c.rPush(k, String(v)); }
  lpush(k, v) { return this.c.lPush(k, String(v)); }
  set(k, v) { return this.c.set(k, v); }
  get(k) { return this.c.get(k); }
  publish(ch, msg) { return this.c.publish(ch, msg); }

  async blpop(k, timeoutS) {
    const r = await this.c.blPop(k, timeoutS);
    return r === null ? null : [r.key, r.element];
  }

  multiIncrSetGet(k, k2, v) {
    return this.c.multi().incr(k).set(k2, v).get(k2).exec();
  }

  async subscribe(ch, onMessage) {
    await this.c.subscribe(ch, (message, channel) => onMessage(String(channel), String(message)));
  }

  unsubscribe(ch) { return this.c.unsubscribe(ch); }
  call(args) { return this.c.sendCommand(args.map(String)); }

  duplicate(tracker) {
    return new NodeRedisClient(this.lib, this.opts, tracker, this.c.duplicate());
  }

  defaultShutdown() { return 'close'; }

  async shutdown(how) {
    if (how === 'quit') await this.c.quit();
    else if (how === 'close') await this.c.close();
    else if (how === 'disconnect') await this.c.destroy();
  }

  abort() {
    try { this.c.destroy(); } catch (e) { /* already gone */ }
  }
}

/* ioredis 5/6 */
class IoRedisClient {
  constructor(lib, opts, tracker, raw) {
    this.lib = lib;
    this.opts = opts;
    this.tracker = tracker;
    if (raw) {
      this.c = raw;
    } else {
      const Redis = lib.mod.default || lib.mod.Redis || lib.mod;
      const o = { host: opts.host, port: opts.port };
      if (opts.db !== undefined && opts.db !== null) o.db = opts.db;
      if (opts.username !== undefined && opts.username !== null) o.username = opts.username;
      if (opts.password !== undefined && opts.password !== null) o.password = opts.password;
      if (opts.name) o.connectionName = opts.name;
      if (opts.resp) o.protocol = opts.resp;
      Object.assign(o, opts.lib_options || {});
      this.c = new Redis(o);      // connects at once (lazyConnect defaults to false)
    }
    tracker.attach(this.c, ['connect', 'ready', 'error', 'reconnecting', 'end', 'close']);
  }

  connect() {
    if (this.c.status === 'ready') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onReady = () => { this.c.off('end', onEnd); resolve(); };
      const onEnd = () => { this.c.off('ready', onReady); reject(new Error('connection ended before ready')); };
      this.c.once('ready', onReady);
      this.c.once('end', onEnd);
    });
  }

  incr(k) { return this.c.incr(k); }
  rpush(k, v) { return this.c.rpush(k, String(v)); }
  lpush(k, v) { return this.c.lpush(k, String(v)); }
  set(k, v) { return this.c.set(k, v); }
  get(k) { return this.c.get(k); }
  publish(ch, msg) { return this.c.publish(ch, msg); }
  blpop(k, timeoutS) { return this.c.blpop(k, timeoutS); }

  async multiIncrSetGet(k, k2, v) {
    const res = await this.c.multi().incr(k).set(k2, v).get(k2).exec();
    if (res === null) throw new Error('EXEC aborted (null)');
    return res.map(([err, val]) => {
      if (err) throw err;
      return val;
    });
  }

  async subscribe(ch, onMessage) {
    this.c.on('message', (channel, message) => onMessage(String(channel), String(message)));
    await this.c.subscribe(ch);
  }

  unsubscribe(ch) { return this.c.unsubscribe(ch); }
  call(args) { return this.c.call(...args.map(String)); }

  duplicate(tracker) {
    return new IoRedisClient(this.lib, this.opts, tracker, this.c.duplicate());
  }

  defaultShutdown() { return 'quit'; }

  async shutdown(how) {
    if (how === 'quit') {
      await this.c.quit();
    } else if (how === 'close' || how === 'disconnect') {
      // shutdown(SHUT_WR), then 'end' once the server closes its side too
      // (or after ioredis's disconnectTimeout, 2 s, when it does not)
      if (this.c.status === 'end') return;
      const ended = new Promise((resolve) => this.c.once('end', resolve));
      this.c.disconnect();
      await ended;
    }
  }

  abort() {
    try { this.c.disconnect(); } catch (e) { /* already gone */ }
  }
}

function makeClient(lib, opts, tracker) {
  return lib.kind === 'node-redis' ? new NodeRedisClient(lib, opts, tracker) : new IoRedisClient(lib, opts, tracker);
}

// ------------------------------------------------------------------ one client

function fill(s, idx) {
  return typeof s === 'string' ? s.split('{idx}').join(String(idx)) : s;
}

function plain(v) {
  // JSON-friendly view of a reply (Buffers, Maps, bigints, verbatim strings)
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return v.toString();
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (v instanceof Map) return Object.fromEntries([...v.entries()].map(([k, x]) => [String(k), plain(x)]));
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Error) return { error: errText(v) };
  if (typeof v === 'object') {
    if (v.constructor && v.constructor.name === 'VerbatimString') return String(v);
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = plain(x);
    return o;
  }
  return v;
}

class Run {
  constructor(lib, idx) {
    this.idx = idx;
    const o = spec.options || {};
    this.opts = {
      host: spec.host || '127.0.0.1',
      port: spec.port || 6379,
      db: o.db,
      username: o.username,
      password: o.password,
      name: fill(o.name, idx),
      resp: o.resp,
      lib_options: spec.lib_options,
    };
    this.tracker = new Tracker('client ' + idx);
    this.aux = [];                // trackers of helper connections (pubsub, blpop)
    this.client = makeClient(lib, this.opts, this.tracker);
    this.res = {
      idx,
      name: this.opts.name || null,
      connected: false,
      connect_ms: null,
      errors: [],                 // {phase, seq, cmd, message, t}
      error_count: 0,
      replies: [],
      incr: [],
      push: [],
      push_len_mismatch: 0,
      checks: {},
      state: null,
      shutdown: null,           // the method used, or what went wrong
      shutdown_ms: null,        // how long it took (ioredis disconnect: until the server's EOF)
    };
  }

  err(phase, e, extra) {
    this.res.error_count += 1;
    if (this.res.errors.length < MAX_ERRORS_KEPT) {
      this.res.errors.push(Object.assign({ phase, message: errText(e), t: Number(elapsed().toFixed(3)) }, extra || {}));
    }
  }

  cmd(p, what) {
    return bounded(p, spec.cmd_timeout_ms || 15000, what);
  }

  async connect() {
    const t = Date.now();
    try {
      await bounded(this.client.connect(), spec.connect_timeout_ms || 20000, 'connect');
      this.res.connected = true;
      this.res.connect_ms = Date.now() - t;
    } catch (e) {
      this.err('connect', e);
    }
  }

  async commands(list) {
    for (const c of list || []) {
      const args = c.map((a) => fill(String(a), this.idx));
      try {
        this.res.replies.push(plain(await this.cmd(this.client.call(args), args.join(' '))));
      } catch (e) {
        this.res.replies.push({ error: errText(e) });
        this.err('command', e, { cmd: args.join(' ') });
      }
    }
  }

  key(kind) {
    return (spec.prefix || 'rz:' + spec.lib + ':') + kind + ':' + this.idx;
  }

  /* INCR c:<idx> then RPUSH l:<idx> <seq>, one at a time, remembering every
   * acknowledged reply; an error ends the round (recorded), the next one
   * starts 10 ms later. Bounded by ops, the deadline and stop. */
  async incrLoop(deadline) {
    const maxOps = spec.ops || 1e9;
    const ck = this.key('c');
    const lk = this.key('l');
    for (let seq = 0; seq < maxOps && stopReason === null && Date.now() < deadline; seq++) {
      try {
        this.res.incr.push(Number(await this.cmd(this.client.incr(ck), 'INCR ' + ck)));
      } catch (e) {
        this.err('incr', e, { seq, cmd: 'INCR' });
        await sleep(10);
        continue;
      }
      try {
        const n = await this.cmd(this.client.rpush(lk, seq), 'RPUSH ' + lk);
        this.res.push.push(seq);
        if (Number(n) !== this.res.push.length) this.res.push_len_mismatch += 1;
      } catch (e) {
        this.err('incr', e, { seq, cmd: 'RPUSH' });
        await sleep(10);
      }
    }
  }

  acks() {
    return this.res.incr.length + this.res.push.length;
  }

  async helper(label) {
    const tr = new Tracker('client ' + this.idx + ' ' + label);
    this.aux.push(tr);
    const h = this.client.duplicate(tr);
    await this.cmd(h.connect(), label + ' connect');
    return h;
  }

  async closeHelper(h) {
    try {
      await bounded(h.shutdown(h.defaultShutdown()), 5000, 'helper shutdown');
    } catch (e) {
      h.abort();
    }
  }

  async runCheck(name) {
    const out = { ok: false };
    this.res.checks[name] = out;
    try {
      if (name === 'basic') {
        const rounds = spec.rounds || 5;
        let good = 0;
        for (let r = 0; r < rounds; r++) {
          const k = this.key('k') + ':' + r;
          const v = 'v-' + spec.lib + '-' + this.idx + '-' + r + '-' + 'x'.repeat((this.idx * 7 + r) % 50);
          const s = await this.cmd(this.client.set(k, v), 'SET');
          const g = await this.cmd(this.client.get(k), 'GET');
          if (s === 'OK' && g === v) good += 1;
          else out.mismatch = { key: k, set: plain(s), got: plain(g), want: v };
        }
        out.rounds = rounds;
        out.good = good;
        out.ok = good === rounds;
      } else if (name === 'multi') {
        const k = this.key('mc');
        const k2 = this.key('mv');
        const v = 'm-' + this.idx;
        const r = plain(await this.cmd(this.client.multiIncrSetGet(k, k2, v), 'MULTI/EXEC'));
        out.reply = r;
        out.ok = Array.isArray(r) && r.length === 3 && Number(r[0]) === 1 && r[1] === 'OK' && r[2] === v;
      } else if (name === 'blpop') {
        // BLPOP on the client's own connection, answered by an LPUSH from a helper
        const k = this.key('bl');
        const v = 'b-' + this.idx;
        const pusher = await this.helper('lpush');
        try {
          const t = Date.now();
          const pending = this.cmd(this.client.blpop(k, 10), 'BLPOP');
          pending.catch(() => {});
          await sleep(150);            // let it block first
          out.lpush = plain(await this.cmd(pusher.lpush(k, v), 'LPUSH'));
          const r = plain(await pending);
          out.reply = r;
          out.waited_ms = Date.now() - t;
          out.ok = Array.isArray(r) && r[0] === k && r[1] === v;
        } finally {
          await this.closeHelper(pusher);
        }
      } else if (name === 'pubsub') {
        // SUBSCRIBE on a duplicate (what both libraries require), PUBLISH here
        const ch = this.key('ch');
        const msg = 'hello-' + this.idx;
        const sub = await this.helper('subscriber');
        try {
          let got = null;
          const received = new Promise((resolve) => {
            this.cmd(sub.subscribe(ch, (channel, message) => {
              if (got === null) got = [channel, message];
              resolve();
            }), 'SUBSCRIBE').then(() => {
              out.subscribed = true;
            }).catch((e) => {
              out.subscribe_error = errText(e);
              resolve();
            });
          });
          // publish until the subscription is in place (bounded)
          const until = Date.now() + 10000;
          while (!out.subscribed && !out.subscribe_error && Date.now() < until) await sleep(10);
          out.receivers = plain(await this.cmd(this.client.publish(ch, msg), 'PUBLISH'));
          await bounded(received, 10000, 'message on ' + ch);
          out.message = got;
          out.ok = got !== null && got[0] === ch && got[1] === msg && Number(out.receivers) >= 1;
          try {
            await this.cmd(sub.unsubscribe(ch), 'UNSUBSCRIBE');
          } catch (e) {
            out.unsubscribe_error = errText(e);
          }
        } finally {
          await this.closeHelper(sub);
        }
      } else {
        throw new Error('unknown check ' + name);
      }
    } catch (e) {
      out.error = errText(e);
    }
    if (!out.ok) this.err('check', out.error || ('check ' + name + ' failed: ' + JSON.stringify(out)), { check: name });
  }

  /* What the connection's session state looks like from the application. */
  async stateReport() {
    const st = { errors: [] };
    this.res.state = st;
    const ask = async (field, args, conv) => {
      try {
        const v = await this.cmd(this.client.call(args), args.join(' '));
        st[field] = conv ? conv(v) : plain(v);
      } catch (e) {
        st[field] = null;
        st.errors.push(field + ': ' + errText(e));
      }
    };
    await ask('name', ['CLIENT', 'GETNAME']);
    const marker = spec.state && typeof spec.state === 'object' ? spec.state.marker : null;
    if (marker) await ask('marker', ['GET', marker]);
    await ask('whoami', ['ACL', 'WHOAMI']);
    // HELLO without a version changes nothing and says which protocol the
    // connection speaks
    await ask('hello_proto', ['HELLO'], (v) => {
      const p = plain(v);
      if (Array.isArray(p)) {
        const i = p.indexOf('proto');
        return i >= 0 ? Number(p[i + 1]) : null;
      }
      return p && p.proto !== undefined ? Number(p.proto) : null;
    });
    // a map reply arrives as an object under RESP3 in node-redis (ioredis 6
    // flattens maps to arrays in its default "legacy" reply mapping)
    await ask('reply_shape', ['HGETALL', this.key('noshape')], (v) => {
      if (v instanceof Map) return 'map';
      if (Array.isArray(v)) return 'array';
      return typeof v === 'object' && v !== null ? 'map' : typeof v;
    });
    await ask('client_info', ['CLIENT', 'INFO'], (v) => {
      const fields = {};
      for (const kv of String(plain(v)).trim().split(' ')) {
        const i = kv.indexOf('=');
        if (i > 0) fields[kv.slice(0, i)] = kv.slice(i + 1);
      }
      const keep = {};
      for (const k of ['id', 'name', 'db', 'resp', 'user', 'lib-name', 'lib-ver', 'flags', 'cmd']) {
        if (k in fields) keep[k] = fields[k];
      }
      return keep;
    });
    if (st.errors.length) this.err('state', st.errors.join('; '));
  }

  async shutdown() {
    const how = spec.shutdown || this.client.defaultShutdown();
    if (how === 'none') {
      this.res.shutdown = 'none';
      return;
    }
    const t = Date.now();
    try {
      await bounded(this.client.shutdown(how), 5000, how);
      this.res.shutdown = how;
      this.res.shutdown_ms = Date.now() - t;
    } catch (e) {
      this.res.shutdown = how + ' failed: ' + errText(e);
      this.client.abort();
    }
  }

  report() {
    const ev = this.tracker.events;
    this.res.events = ev;
    this.res.event_errors = this.tracker.event_errors;
    this.res.timeline = this.tracker.timeline;
    this.res.reconnects = ev.reconnecting || 0;
    this.res.aux = this.aux.map((t) => t.toJSON());
    return this.res;
  }
}

// ------------------------------------------------------------------ workloads

async function main() {
  installSignals();
  try {
    spec = await readSpec();
  } catch (e) {
    result = { fatal: 'bad spec: ' + errText(e) };
    emit(2);
    return;
  }
  const hard = (spec.max_seconds || 120) * 1000;
  setTimeout(() => {
    if (result) result.fatal = 'max_seconds (' + (hard / 1000) + ') exceeded';
    emit(2);
  }, hard + 15000).unref();
  const hardStop = setTimeout(() => requestStop('max_seconds'), hard);
  hardStop.unref();

  let lib;
  try {
    lib = loadLib(spec.lib);
  } catch (e) {
    result = { fatal: errText(e) };
    emit(2);
    return;
  }
  const count = spec.count === undefined ? 1 : spec.count;
  const workload = spec.workload || 'connect';
  result = {
    lib: spec.lib,
    kind: lib.kind,
    version: lib.version,
    client_version: lib.client_version,
    workload,
    count,
    connected: 0,
    clients: [],
  };
  const runs = [];
  for (let i = 0; i < count; i++) runs.push(new Run(lib, (spec.first_idx || 0) + i));

  await Promise.all(runs.map((r) => r.connect()));
  result.connected = runs.filter((r) => r.res.connected).length;
  progress({ event: 'connected', connected: result.connected, failed: count - result.connected });
  const live = runs.filter((r) => r.res.connected);

  const seconds = spec.seconds === undefined ? 10 : spec.seconds;
  if (workload === 'connect') {
    await Promise.all(live.map((r) => r.commands(spec.commands)));
  } else if (workload === 'incr') {
    const deadline = Date.now() + seconds * 1000;
    const ticker = setInterval(() => {
      progress({
        event: 'progress',
        acks: runs.reduce((n, r) => n + r.acks(), 0),
        min_acks: live.length ? Math.min(...live.map((r) => r.acks())) : 0,
        errors: runs.reduce((n, r) => n + r.res.error_count, 0),
      });
    }, 200);
    try {
      await Promise.all(live.map((r) => r.incrLoop(deadline)));
    } finally {
      clearInterval(ticker);
    }
  } else if (workload === 'hold') {
    await Promise.all(live.map((r) => r.commands(spec.commands)));
    for (const name of spec.checks || []) await Promise.all(live.map((r) => r.runCheck(name)));
    progress({ event: 'holding', connected: result.connected });
    await Promise.race([stopped(), sleep(seconds * 1000)]);
  } else if (workload === 'check') {
    for (const name of spec.checks || ['basic']) await Promise.all(live.map((r) => r.runCheck(name)));
  } else if (workload !== 'state') {
    result.fatal = 'unknown workload ' + JSON.stringify(workload);
  }

  if (spec.state || workload === 'state') await Promise.all(live.map((r) => r.stateReport()));
  await Promise.all(runs.map((r) => (r.res.connected ? r.shutdown() : Promise.resolve(r.client.abort()))));
  // events (e.g. 'end') after the shutdown are part of the picture
  await sleep(spec.settle_ms === undefined ? 50 : spec.settle_ms);
  result.stop_reason = stopReason;
  result.clients = runs.map((r) => r.report());
  result.errors = result.clients.reduce((n, c) => n + c.error_count, 0);
  result.reconnects = result.clients.reduce((n, c) => n + c.reconnects, 0);
  result.event_errors = result.clients.reduce((n, c) => n + c.events.error, 0);
  emit(result.fatal ? 2 : 0);
}

process.on('unhandledRejection', (e) => {
  process.stderr.write('clients.js: unhandled rejection: ' + errText(e) + '\n');
});

main().catch((e) => {
  result = Object.assign(result || {}, { fatal: 'driver crashed: ' + errText(e) + '\n' + (e && e.stack) });
  emit(2);
});
