'use strict';

// compat program for the npm `nacos` package (NacosNamingClient: HTTP v1, beats, UDP push).
// Follows compat/README.md: JSON lines on stdout, the driver's answers on stdin, logs on
// stderr.

const readline = require('readline');
const util = require('util');
// The HTTP client nacos-naming uses by default, resolved as it resolves it.
const urllib = require(require.resolve('urllib', { paths: [ require.resolve('nacos-naming') ] }));
const { NacosNamingClient } = require('nacos');
const nacosVersion = require('nacos/package.json').version;

const E_IP = '10.9.0.1';
const P_IP = '10.9.0.2';
const X_IP = '10.9.0.3';
const PORT = 8080;
const CLUSTER = 'DEFAULT';

const env = process.env;
const cfg = {
  addr: env.ROSTER_SERVER_ADDR || '127.0.0.1:8848',
  namespace: env.ROSTER_NAMESPACE || '',
  group: env.ROSTER_GROUP || 'DEFAULT_GROUP',
  service: env.ROSTER_SERVICE || 'compat-node',
  beatMs: Number(env.ROSTER_HEARTBEAT_INTERVAL_MS || 1000),
  timeoutMs: Number(env.ROSTER_HEARTBEAT_TIMEOUT_MS || 3000),
  deleteMs: Number(env.ROSTER_DELETE_TIMEOUT_MS || 6000),
  username: env.ROSTER_USERNAME || '',
  password: env.ROSTER_PASSWORD || '',
};
// P lives in a service of its own: Nacos 2.x fixes a service's kind by its first instance.
cfg.pService = env.ROSTER_PERSISTENT_SERVICE || `${cfg.service}-persistent`;

const t0 = Date.now();
const out = line => process.stdout.write(JSON.stringify(line) + '\n');
const log = (...args) => process.stderr.write(`${new Date().toISOString()} ${util.format(...args)}\n`);
const sleep = ms => new Promise(r => setTimeout(r, ms));

// What the client logs, to stderr; UDP pushes are remembered to tell push from poll.
const pushes = [];
const logger = {};
for (const level of [ 'debug', 'info', 'warn', 'error' ]) {
  logger[level] = (...args) => {
    const msg = args[0] instanceof Error ? args[0].stack : util.format(...args);
    if (level === 'info' && msg.startsWith('[PushReceiver] received push data')) {
      pushes.push({ at: Date.now(), msg });
    }
    if (level !== 'debug') log(`[nacos ${level}]`, msg);
  };
}

// The client's own HTTP client (its `httpclient` option), recording beats it sends.
const beats = [];
const httpclient = {
  async request(url, opts) {
    const res = await urllib.request(url, opts);
    if (url.endsWith('/instance/beat')) {
      beats.push({ at: Date.now(), status: res.status, data: String(res.data) });
    }
    return res;
  },
};

// stdin: one answer line per wait.
const lines = [];
const waiters = [];
let stdinClosed = false;
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', l => (waiters.length ? waiters.shift()(l) : lines.push(l)));
rl.on('close', () => {
  stdinClosed = true;
  while (waiters.length) waiters.shift()(null);
});
function nextLine() {
  if (lines.length) return Promise.resolve(lines.shift());
  if (stdinClosed) return Promise.resolve(null);
  return new Promise(r => waiters.push(r));
}

async function wait(name) {
  out({ wait: name });
  const answer = await nextLine();
  log('driver answered', name, answer);
  return answer;
}

async function step(name, fn) {
  const start = Date.now();
  let ok = true;
  let detail;
  try {
    detail = await fn();
  } catch (err) {
    ok = false;
    detail = err && err.message ? err.message : String(err);
    log('step', name, 'failed:', err && err.stack);
  }
  const line = { step: name, ok, ms: Date.now() - start };
  if (detail) line.detail = String(detail);
  out(line);
}

async function until(pred, timeoutMs, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v || Date.now() >= deadline) return v;
    await sleep(intervalMs);
  }
}

const find = (hosts, ip) => (hosts || []).find(h => h.ip === ip && Number(h.port) === PORT);

async function main() {
  out({ version: `nacos ${nacosVersion}` });

  const options = { logger, serverList: cfg.addr, httpclient };
  if (cfg.namespace) options.namespace = cfg.namespace;
  if (cfg.username) options.username = cfg.username;
  if (cfg.password) options.password = cfg.password;
  const client = new NacosNamingClient(options);
  await client.ready();

  // Fresh reads from the server (subscribe=false), as the driver's checks need.
  const all = service => client.getAllInstances(service, cfg.group, '', false);
  const healthy = service => client.selectInstances(service, cfg.group, '', true, false);
  const both = async list => {
    let hosts = await list(cfg.service);
    if (cfg.pService !== cfg.service) hosts = hosts.concat(await list(cfg.pService));
    return hosts;
  };

  await step('register_ephemeral', async () => {
    const metadata = {
      role: 'ephemeral',
      'preserved.heart.beat.interval': String(cfg.beatMs),
      'preserved.heart.beat.timeout': String(cfg.timeoutMs),
      'preserved.ip.delete.timeout': String(cfg.deleteMs),
    };
    await client.registerInstance(cfg.service, {
      ip: E_IP, port: PORT, weight: 1, clusterName: CLUSTER, ephemeral: true, metadata,
    }, cfg.group);
    // The client's beat loop starts with a 10 s sleep; from its first beat on it beats at
    // the server's clientBeatInterval. Wait for that first beat before the keepalive.
    const first = await until(() => beats.find(b => b.data.includes('clientBeatInterval')), 15000);
    if (!first) throw new Error('no beat from the client within 15s');
    const e = await until(async () => {
      const h = find(await all(cfg.service), E_IP);
      return h && h.healthy ? h : null;
    }, 3000);
    if (!e) throw new Error('E not listed healthy after the first beat');
    return `HTTP v1 register; client BeatReactor: first beat ${((first.at - t0) / 1000).toFixed(1)}s after start ` +
      `(its loop starts with a 10s sleep), then every ${JSON.parse(first.data).clientBeatInterval} ms`;
  });
  await wait('keepalive');

  await step('register_persistent', async () => {
    await client.registerInstance(cfg.pService, {
      ip: P_IP, port: PORT, weight: 1, clusterName: CLUSTER, ephemeral: false,
    }, cfg.group);
    return 'ephemeral=false over HTTP v1';
  });

  await step('list_select', async () => {
    const list = await until(async () => {
      const l = await both(all);
      return find(l, E_IP) && find(l, P_IP) ? l : null;
    }, 3000) || await both(all);
    const missing = [ E_IP, P_IP ].filter(ip => !find(list, ip));
    if (missing.length) throw new Error(`getAllInstances lacks ${missing} (got ${list.map(h => h.ip)})`);
    const good = await both(healthy);
    const missingHealthy = [ E_IP, P_IP ].filter(ip => !find(good, ip));
    if (missingHealthy.length) throw new Error(`selectInstances(healthy) lacks ${missingHealthy}`);
    const one = good[Math.floor(Math.random() * good.length)];
    return `list ${list.length}, healthy ${good.length}, selectOne ${one.ip} ` +
      '(client has no select-one: random pick from selectInstances)';
  });

  await step('subscribe', async () => {
    let first;
    let seenX;
    const gotFirst = new Promise(r => (first = r));
    const gotX = new Promise(r => (seenX = r));
    const info = { serviceName: cfg.service, groupName: cfg.group };
    const listener = hosts => {
      log('subscribe callback:', (hosts || []).map(h => `${h.ip}:${h.port}`).join(' '));
      first();
      if (find(hosts, X_IP)) seenX(Date.now());
    };
    client.subscribe(info, listener);
    try {
      await Promise.race([ gotFirst, sleep(5000) ]);
      const pushesBefore = pushes.length;
      const start = Date.now();
      await client.registerInstance(cfg.service, {
        ip: X_IP, port: PORT, weight: 1, clusterName: CLUSTER, ephemeral: true,
      }, cfg.group);
      const at = await Promise.race([ gotX, sleep(15000).then(() => 0) ]);
      if (!at) throw new Error('no callback with X within 15s');
      const pushed = pushes.slice(pushesBefore).some(p => p.at <= at && p.msg.includes(X_IP));
      return `${pushed ? 'push (udp)' : 'poll'}: X seen ${at - start} ms after register`;
    } finally {
      client.unSubscribe(info, listener);
      await client.deregisterInstance(cfg.service, {
        ip: X_IP, port: PORT, clusterName: CLUSTER, ephemeral: true,
      }, cfg.group).catch(err => log('deregister X:', err));
    }
  });

  await step('update', async () => {
    // The client has no update call: the server's v1 API, with the same credentials
    // style as the client (username/password parameters).
    const data = {
      serviceName: cfg.pService, groupName: cfg.group, ip: P_IP, port: String(PORT),
      clusterName: CLUSTER, weight: '2.5', metadata: JSON.stringify({ v: '2' }), ephemeral: 'false',
      enabled: 'true',
    };
    data.namespaceId = cfg.namespace || 'public';
    if (cfg.username && cfg.password) Object.assign(data, { username: cfg.username, password: cfg.password });
    const res = await fetch(`http://${cfg.addr}/nacos/v1/ns/instance?${new URLSearchParams(data)}`, { method: 'PUT' });
    const text = await res.text();
    if (res.status !== 200 || text !== 'ok') throw new Error(`PUT /nacos/v1/ns/instance: ${res.status} ${text}`);
    const p = await until(async () => {
      const h = find(await all(cfg.pService), P_IP);
      return h && Number(h.weight) === 2.5 && h.metadata && h.metadata.v === '2' ? h : null;
    }, 5000);
    if (!p) throw new Error(`read back: ${JSON.stringify(find(await all(cfg.pService), P_IP))}`);
    return `weight ${p.weight}, metadata v=${p.metadata.v} via HTTP API PUT /nacos/v1/ns/instance ` +
      '(client has no update); read back by getAllInstances';
  });

  await step('deregister', async () => {
    await client.deregisterInstance(cfg.pService, {
      ip: P_IP, port: PORT, clusterName: CLUSTER, ephemeral: false,
    }, cfg.group);
    const gone = await until(async () => !find(await all(cfg.pService), P_IP), 1000);
    if (gone) return 'P no longer listed';
    if (cfg.pService !== cfg.service) {
      // nacos-naming keeps its last non-empty list of a service that became empty.
      const q = new URLSearchParams({ serviceName: cfg.pService, groupName: cfg.group, namespaceId: cfg.namespace || 'public' });
      if (cfg.username && cfg.password) {
        q.set('username', cfg.username);
        q.set('password', cfg.password);
      }
      const res = await fetch(`http://${cfg.addr}/nacos/v1/ns/instance/list?${q}`);
      const body = await res.json();
      if (res.status === 200 && !find(body.hosts, P_IP)) {
        return 'P no longer listed (HTTP list: the client keeps its last non-empty list of an emptied service)';
      }
    }
    throw new Error('P still listed by getAllInstances');
  });

  await wait('restart');
  await wait('stop');
  // Blocks: the driver kills this process; the beat loop keeps it alive meanwhile.
  if (!stdinClosed) await new Promise(r => rl.on('close', r));
  process.exit(0);
}

main().catch(err => {
  log('fatal:', err && err.stack);
  process.exit(1);
});
