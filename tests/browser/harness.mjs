// harness.mjs — shared pieces of the browser tests: headless Debian Chromium
// through playwright-core (fresh profile per run), a `castgate serve` on free
// ports against DATABASE_URL, SQL through psql, and a tiny static server for
// pages that must come from another origin (the embedding parent).
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const BIN = resolve(ROOT, process.env.CASTGATE_BIN || 'build/castgate');

const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

/** Why the browser tests cannot run here, or null. */
export function browserSkipReason() {
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM}`;
  if (!existsSync(join(ROOT, 'node_modules', 'playwright-core'))) return 'playwright-core not installed (npm ci)';
  return null;
}

/** Why castgate cannot be started here, or null. */
export function castgateSkipReason() {
  if (!process.env.DATABASE_URL) return 'DATABASE_URL is not set (run through make test)';
  if (!existsSync(BIN)) return `no castgate binary at ${BIN}`;
  return browserSkipReason();
}

/** Launches Chromium with a fresh --user-data-dir; returns {context, close}. */
export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'castgate-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS.filter((f) => f !== '--headless'), // playwright adds its own headless flag
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = netServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

/** Polls fn() until it returns a truthy value (or throws after timeoutMs). */
export async function waitFor(fn, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last=${JSON.stringify(last)})`);
}

export function sql(query) {
  const r = spawnSync('psql', [process.env.DATABASE_URL, '-qAtX', '-v', 'ON_ERROR_STOP=1', '-c', query],
    { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`psql: ${r.stderr}`);
  return r.stdout.trim();
}

export const q = (s) => `'${String(s).replace(/'/g, "''")}'`;

/** A running `castgate serve` with its own data dir and an app. */
export async function startCastgate() {
  const dir = mkdtempSync(join(tmpdir(), 'castgate-browser-'));
  const httpPort = await freePort();
  const rtmpPort = await freePort();
  const base = `http://127.0.0.1:${httpPort}`;
  const env = {
    ...process.env,
    CASTGATE_HTTP_LISTEN: `127.0.0.1:${httpPort}`,
    CASTGATE_RTMP_LISTEN: `127.0.0.1:${rtmpPort}`,
    CASTGATE_DATA_DIR: join(dir, 'data'),
    CASTGATE_PUBLIC_URL: base,
    CASTGATE_LOG_LEVEL: 'info',
  };
  let log = '';
  const proc = spawn(BIN, ['serve'], { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  let exited = null;
  proc.on('exit', (code) => { exited = code; });
  await waitFor(() => exited !== null || log.includes('ready rtmp='), 20000, 'castgate ready');
  if (exited !== null) throw new Error(`castgate exited ${exited}:\n${log}`);
  const r = spawnSync(BIN, ['app', 'create', 'browser', '--json'], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`app create: ${r.stderr}`);
  const app = JSON.parse(r.stdout);
  const auth = 'Basic ' + Buffer.from(`${app.appApiKey}:${app.appApiSecret}`).toString('base64');
  return {
    base,
    app,
    log: () => log,
    async api(method, path, body) {
      const res = await fetch(base + path, {
        method,
        headers: { Authorization: auth, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, json: text ? JSON.parse(text) : null };
    },
    room(accessLevel = 'PUBLIC', title = 'Browser class') {
      const member = sql(`INSERT INTO members (app_id, app_user_id) VALUES (${app.appId}, ${q('t-' + Date.now() + Math.random())}) RETURNING id`);
      return Number(sql('INSERT INTO video_rooms (app_id, member_id, type, scheduled_at, title, access_level)' +
        ` VALUES (${app.appId}, ${member}, 'BROADCAST_RTMP', now() + interval '5 min', ${q(title)}, ${q(accessLevel)}) RETURNING id`));
    },
    async stop() {
      if (exited === null) {
        proc.kill('SIGTERM');
        await waitFor(() => exited !== null, 20000, 'castgate exit');
      }
      rmSync(dir, { recursive: true, force: true });
      if (exited !== 0) throw new Error(`castgate exited ${exited} at shutdown:\n${log.slice(-3000)}`);
    },
  };
}

/** Serves fixed pages (path → {type, body}) on 127.0.0.1: another origin. */
export async function servePages(pages) {
  const server = createServer((req, res) => {
    const p = pages[req.url.split('?')[0]];
    if (!p) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { 'Content-Type': p.type, 'Cache-Control': 'no-store' });
    res.end(typeof p.body === 'function' ? p.body() : p.body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return { base: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) };
}

export function hlsJsSource() {
  return readFileSync(join(ROOT, 'node_modules', 'hls.js', 'dist', 'hls.min.js'));
}
