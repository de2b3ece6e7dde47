// The admin API over real HTTP: who may call it (loopback only / static token / admin JWT / both, on the
// proxy port or its own listener), purge (all, bucket, prefix, key, soft), stats, entry info, and
// prewarm tasks (create → progress → done, cancel, concurrency and rate limits). s3rver behind a
// counting relay.
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { authenticateAdmin } from '../../src/admin/auth.js';
import { cacheSection, get, sleep, startCtlRelay, until, type CtlRelay } from '../helpers/cache-kit.js';
import { request } from '../helpers/http.js';
import { secretBytes, token as jwtToken } from '../helpers/jwt.js';
import { karasuYaml } from '../helpers/karasu.js';
import { admin, ADMIN_PORT_VAR, startKarasuFile, tempDir, type FileKarasu } from '../helpers/ops.js';
import { startS3, type S3Handle } from '../helpers/s3.js';

const TOKEN = 'static-admin-token-0123456789';
const SECRET = 'jwt-secret-for-the-admin-api-tests-0123456789';
const BACKEND = 'admin-api';
const DIR_KEYS = Array.from({ length: 12 }, (_, i) => `dir/${String(i).padStart(2, '0')}.txt`);

let s3: S3Handle;
let relay: CtlRelay;
let tmp: Awaited<ReturnType<typeof tempDir>>;
const started: FileKarasu[] = [];

before(async () => {
  const objects: Record<string, string> = { 'a.txt': 'alpha', 'b.txt': 'bravo', 'p/x.txt': 'x', 'p/y.txt': 'y', 'dir/sub/deep.txt': 'deep' };
  for (const k of DIR_KEYS) objects[k] = `body of ${k}`;
  s3 = await startS3({ buckets: { [BACKEND]: objects } });
  relay = await startCtlRelay(s3.endpoint);
  tmp = await tempDir();
});

after(async () => {
  for (const k of started) await k.stop();
  await relay?.stop();
  await s3?.stop();
  await tmp?.remove();
});

function yaml(top: Record<string, unknown>, more: { cache?: boolean; warming?: Record<string, unknown> } = {}): string {
  const cache = more.cache === false ? { enabled: false } : { ...cacheSection({ layers: ['memory'] }), ...(more.warming ? { warming: more.warming } : {}) };
  return karasuYaml({
    buckets: [
      {
        name: 'media',
        prefix: '/media',
        endpoint: relay.url,
        bucket: BACKEND,
        s3: { retry: { max_attempts: 1 }, circuit_breaker: { failure_threshold: 1000 } },
      },
      { name: 'other', prefix: '/other', endpoint: relay.url, bucket: BACKEND },
    ],
    top: { cache, ...top },
  });
}

let counter = 0;
async function start(top: Record<string, unknown>, more: { cache?: boolean; warming?: Record<string, unknown> } = {}): Promise<FileKarasu> {
  const { mkdir } = await import('node:fs/promises');
  const dir = `${tmp.dir}/k${counter++}`;
  await mkdir(dir);
  const k = await startKarasuFile(dir, yaml(top, more));
  started.push(k);
  return k;
}

const adminJwt = (claims: Record<string, unknown>, expiresIn = 3600) => jwtToken({ alg: 'HS256', key: secretBytes(SECRET), claims, expiresIn });
const JWT_BLOCK = { enabled: true, algorithm: 'HS256', secret: SECRET, admin_claims: [{ claim: 'role', operator: 'equals', value: 'admin' }] };

describe('admin authentication', () => {
  test('neither token nor JWT: loopback callers only, and not through a local proxy', async () => {
    const k = await start({});
    const ok = await admin(k.url, 'GET', '/admin/cache/stats');
    assert.equal(ok.status, 200);
    assert.equal(ok.json.status, 'success');
    const relayed = await admin(k.url, 'GET', '/admin/cache/stats', { headers: { 'x-forwarded-for': '203.0.113.9' } });
    assert.equal(relayed.status, 403);
    assert.equal(relayed.json.error, 'AdminLoopbackOnly');
    assert.equal(relayed.json.request_id, relayed.headers['x-request-id']);

    // A peer that is not loopback (the socket address as Node reports it).
    const snapshot = k.karasu.current();
    const fake = (remoteAddress: string) => ({ headers: {}, socket: { remoteAddress } }) as unknown as IncomingMessage;
    await assert.rejects(authenticateAdmin(fake('192.0.2.10'), snapshot), { status: 403 });
    await assert.rejects(authenticateAdmin(fake('::ffff:10.0.0.1'), snapshot), { status: 403 });
    assert.deepEqual(await authenticateAdmin(fake('::ffff:127.0.0.1'), snapshot), { user: null, via: 'loopback' });
    assert.deepEqual(await authenticateAdmin(fake('::1'), snapshot), { user: null, via: 'loopback' });
  });

  test('static token: missing → 401 with a challenge, wrong → 401, right → 200 (loopback is not enough)', async () => {
    const k = await start({ admin: { token: TOKEN } });
    const missing = await admin(k.url, 'POST', '/admin/cache/purge');
    assert.equal(missing.status, 401);
    assert.match(String(missing.headers['www-authenticate']), /^Bearer realm="karasu-admin"$/);
    assert.deepEqual(Object.keys(missing.json).sort(), ['error', 'message', 'request_id', 'status']);
    assert.equal(missing.json.status, 'error');
    const wrong = await admin(k.url, 'POST', '/admin/cache/purge', { token: `${TOKEN}x` });
    assert.equal(wrong.status, 401);
    assert.match(String(wrong.headers['www-authenticate']), /error="invalid_token"/);
    const right = await admin(k.url, 'POST', '/admin/cache/purge', { token: TOKEN });
    assert.equal(right.status, 200, JSON.stringify(right.json));
    const basic = await admin(k.url, 'POST', '/admin/cache/purge', { headers: { authorization: `Basic ${Buffer.from(`a:${TOKEN}`).toString('base64')}` } });
    assert.equal(basic.status, 401);
  });

  test('admin JWT (jwt.admin_claims): valid admin → 200, valid non-admin → 403, expired or forged → 401; the static token works too', async () => {
    const k = await start({ jwt: JWT_BLOCK, admin: { token: TOKEN } });
    assert.equal((await admin(k.url, 'GET', '/admin/cache/stats', { token: await adminJwt({ sub: 'ops', role: 'admin' }) })).status, 200);
    const user = await admin(k.url, 'GET', '/admin/cache/stats', { token: await adminJwt({ sub: 'bob', role: 'viewer' }) });
    assert.equal(user.status, 403);
    assert.equal(user.json.status, 'error');
    assert.equal((await admin(k.url, 'GET', '/admin/cache/stats', { token: await adminJwt({ role: 'admin' }, -60) })).status, 401);
    const forged = await jwtToken({ alg: 'HS256', key: secretBytes('another-secret-another-secret-0123456789'), claims: { role: 'admin' } });
    assert.equal((await admin(k.url, 'GET', '/admin/cache/stats', { token: forged })).status, 401);
    assert.equal((await admin(k.url, 'GET', '/admin/cache/stats')).status, 401);
    assert.equal((await admin(k.url, 'GET', '/admin/cache/stats', { token: TOKEN })).status, 200);
  });

  test('admin.port: the admin API on its own listener, and only there', async () => {
    const k = await start({ admin: { token: TOKEN, port: ADMIN_PORT_VAR, address: '127.0.0.1' } });
    assert.ok(k.adminPort && k.adminPort !== k.port);
    const base = `http://127.0.0.1:${k.adminPort}`;
    assert.equal((await admin(base, 'GET', '/admin/cache/stats', { token: TOKEN })).status, 200);
    assert.equal((await admin(base, 'GET', '/admin/cache/stats')).status, 401);
    // On the proxy port /admin is just a path: no bucket routes it.
    const proxied = await admin(k.url, 'GET', '/admin/cache/stats', { token: TOKEN });
    assert.equal(proxied.status, 404);
    assert.equal(proxied.json.error, 'NoRoute');
    // The admin listener serves nothing else.
    assert.equal((await request(`${base}/media/a.txt`)).status, 404);
    assert.equal((await request(`${base}/health`)).status, 404);
  });

  test('unknown admin paths → 404, wrong methods → 405 with Allow, bad JSON → 400', async () => {
    const k = await start({ admin: { token: TOKEN } });
    const unknown = await admin(k.url, 'GET', '/admin/nope', { token: TOKEN });
    assert.equal(unknown.status, 404);
    // Authentication first: an unknown path does not tell an anonymous caller anything.
    assert.equal((await admin(k.url, 'GET', '/admin/nope')).status, 401);
    const method = await admin(k.url, 'GET', '/admin/reload', { token: TOKEN });
    assert.equal(method.status, 405);
    assert.equal(method.headers.allow, 'POST');
    const del = await admin(k.url, 'POST', '/admin/cache/prewarm/some-id', { token: TOKEN });
    assert.equal(del.status, 405);
    assert.equal(del.headers.allow, 'DELETE');
    const bad = await request(`${k.url}/admin/cache/purge`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: '{nope' });
    assert.equal(bad.status, 400);
  });
});

describe('purge, stats, info', () => {
  test('purge one key, a prefix, a bucket, everything; soft purge revalidates', async () => {
    const k = await start({ admin: { token: TOKEN } });
    const warm = async (paths: string[]) => {
      for (const p of paths) assert.equal((await get(k, p)).status, 200);
      for (const p of paths) assert.equal((await get(k, p)).xcache, 'HIT', p);
    };
    await warm(['/media/a.txt', '/media/b.txt', '/media/p/x.txt', '/media/p/y.txt', '/other/a.txt']);

    const key = await admin(k.url, 'POST', '/admin/cache/purge/media/a.txt', { token: TOKEN });
    assert.equal(key.status, 200);
    assert.equal(key.json.deleted, true);
    assert.equal(key.json.path, 'a.txt');
    assert.equal((await get(k, '/media/a.txt')).xcache, 'MISS');
    assert.equal((await get(k, '/media/b.txt')).xcache, 'HIT');
    const again = await admin(k.url, 'POST', '/admin/cache/purge/media/nothing-here.txt', { token: TOKEN });
    assert.equal(again.json.deleted, false);

    const prefix = await admin(k.url, 'POST', '/admin/cache/purge/media?prefix=p/', { token: TOKEN });
    assert.equal(prefix.status, 200);
    assert.equal(prefix.json.entries_deleted, 2);
    assert.equal((await get(k, '/media/p/x.txt')).xcache, 'MISS');
    assert.equal((await get(k, '/media/b.txt')).xcache, 'HIT');

    const bucket = await admin(k.url, 'POST', '/admin/cache/purge/media', { token: TOKEN });
    assert.equal(bucket.json.bucket, 'media');
    assert.equal((await get(k, '/media/b.txt')).xcache, 'MISS');
    assert.equal((await get(k, '/other/a.txt')).xcache, 'HIT');

    relay.reset();
    const soft = await admin(k.url, 'POST', '/admin/cache/purge/other', { token: TOKEN, body: { soft: true } });
    assert.equal(soft.status, 200);
    assert.equal(soft.json.entries_marked_stale, 1);
    const revalidated = await get(k, '/other/a.txt');
    assert.equal(revalidated.xcache, 'REVALIDATED');
    assert.equal(relay.stats().conditional, 1, 'a soft purge makes the next request revalidate');

    await get(k, '/media/b.txt');
    const softKey = await admin(k.url, 'POST', '/admin/cache/purge/media/b.txt?soft=true', { token: TOKEN });
    assert.equal(softKey.json.marked_stale, true);
    assert.equal((await get(k, '/media/b.txt')).xcache, 'REVALIDATED');

    const all = await admin(k.url, 'POST', '/admin/cache/purge', { token: TOKEN });
    assert.ok(Number(all.json.entries_deleted) >= 2);
    assert.equal((await get(k, '/other/a.txt')).xcache, 'MISS');

    assert.equal((await admin(k.url, 'POST', '/admin/cache/purge/nope', { token: TOKEN })).status, 404);
    assert.equal((await admin(k.url, 'POST', '/admin/cache/purge?prefix=x', { token: TOKEN })).status, 400);
    assert.equal((await admin(k.url, 'POST', '/admin/cache/purge/media', { token: TOKEN, body: { soft: 'maybe' } })).status, 400);
  });

  test('stats (all, per bucket) and entry info', async () => {
    const k = await start({ admin: { token: TOKEN } });
    await get(k, '/media/a.txt');
    await get(k, '/media/a.txt');
    await get(k, '/media/a.txt');
    const stats = await admin(k.url, 'GET', '/admin/cache/stats', { token: TOKEN });
    assert.equal(stats.status, 200);
    const data = stats.json.data as Record<string, unknown>;
    assert.equal(data.hits, 2);
    assert.equal(data.misses, 1);
    assert.equal(data.hit_rate, '0.6667');
    assert.equal(data.current_item_count, 1);
    assert.ok((data.tiers as Record<string, unknown>).memory);

    const bucket = await admin(k.url, 'GET', '/admin/cache/stats/media', { token: TOKEN });
    assert.equal(bucket.json.bucket, 'media');
    assert.equal((bucket.json.data as Record<string, number>).hits, 2);
    assert.equal((bucket.json.data as Record<string, number>).bytes_from_cache, 10);
    assert.equal((await admin(k.url, 'GET', '/admin/cache/stats/other', { token: TOKEN })).status, 200);
    assert.equal((await admin(k.url, 'GET', '/admin/cache/stats/nope', { token: TOKEN })).status, 404);

    const info = await admin(k.url, 'GET', '/admin/cache/info?key=media:a.txt', { token: TOKEN });
    assert.equal(info.status, 200);
    const entry = info.json.data as Record<string, unknown>;
    assert.deepEqual(entry.tiers, ['memory']);
    assert.equal(entry.size, 5);
    assert.equal(entry.fresh, true);
    assert.equal(entry.object_key, 'a.txt');
    assert.match(String(entry.etag), /^"[0-9a-f]{32}"$/);
    assert.equal((await admin(k.url, 'GET', '/admin/cache/info?key=media:b.txt', { token: TOKEN })).status, 404);
    assert.equal((await admin(k.url, 'GET', '/admin/cache/info?key=nope:a.txt', { token: TOKEN })).status, 404);
    assert.equal((await admin(k.url, 'GET', '/admin/cache/info', { token: TOKEN })).status, 400);
    assert.equal((await admin(k.url, 'GET', '/admin/cache/info?key=justakey', { token: TOKEN })).status, 400);
  });

  test('cache disabled: cache endpoints answer 404 "Cache is not enabled"', async () => {
    const k = await start({ admin: { token: TOKEN } }, { cache: false });
    for (const [method, path] of [
      ['GET', '/admin/cache/stats'],
      ['POST', '/admin/cache/purge'],
      ['POST', '/admin/cache/prewarm'],
    ]) {
      const res = await admin(k.url, method, path, { token: TOKEN, body: method === 'POST' ? {} : undefined });
      assert.equal(res.status, 404, path);
      assert.equal(res.json.message, 'Cache is not enabled');
    }
  });
});

describe('prewarm', () => {
  test('create → 201 with an id; progress; the objects are then hits; depth and file limits', async () => {
    const k = await start({ admin: { token: TOKEN } });
    relay.reset();
    const created = await admin(k.url, 'POST', '/admin/cache/prewarm', { token: TOKEN, body: { bucket: 'media', path: '/dir/', recursive: false } });
    assert.equal(created.status, 201);
    const id = String(created.json.task_id);
    assert.match(id, /^[0-9a-f-]{36}$/);
    let task: Record<string, unknown> = {};
    await until('task done', async () => {
      const res = await admin(k.url, 'GET', `/admin/cache/prewarm/status/${id}`, { token: TOKEN });
      assert.equal(res.status, 200);
      task = res.json.task as Record<string, unknown>;
      return task.state !== 'running';
    });
    assert.equal(task.state, 'completed');
    assert.equal(task.listed, DIR_KEYS.length, 'recursive: false leaves dir/sub/ out');
    assert.equal(task.warmed, DIR_KEYS.length);
    assert.equal(task.failed, 0);
    assert.equal(task.listing_done, true);
    // One GET per object, plus the listing (ListObjectsV2 is a GET too).
    assert.equal(relay.stats().gets, DIR_KEYS.length + 1);
    for (const key of DIR_KEYS) assert.equal((await get(k, `/media/${key}`)).xcache, 'HIT', key);
    assert.equal(relay.stats().gets, DIR_KEYS.length + 1);

    // Again: everything is cached and fresh → skipped, no S3 GET.
    const again = await admin(k.url, 'POST', '/admin/cache/prewarm', { token: TOKEN, body: { bucket: 'media', path: 'dir/', max_depth: 0 } });
    const againId = String(again.json.task_id);
    await until('second task done', async () => (await admin(k.url, 'GET', `/admin/cache/prewarm/status/${againId}`, { token: TOKEN })).json.task !== undefined && ((await admin(k.url, 'GET', `/admin/cache/prewarm/status/${againId}`, { token: TOKEN })).json.task as Record<string, unknown>).state === 'completed');
    const second = (await admin(k.url, 'GET', `/admin/cache/prewarm/status/${againId}`, { token: TOKEN })).json.task as Record<string, unknown>;
    assert.equal(second.skipped, DIR_KEYS.length);
    assert.equal(relay.stats().gets, DIR_KEYS.length + 2, 'only the listing');

    // Whole bucket, at most 3 files.
    const limited = await admin(k.url, 'POST', '/admin/cache/prewarm', { token: TOKEN, body: { bucket: 'other', max_files: 3 } });
    const limitedId = String(limited.json.task_id);
    await until('limited task done', async () => ((await admin(k.url, 'GET', `/admin/cache/prewarm/status/${limitedId}`, { token: TOKEN })).json.task as Record<string, unknown>).state === 'completed');
    const third = (await admin(k.url, 'GET', `/admin/cache/prewarm/status/${limitedId}`, { token: TOKEN })).json.task as Record<string, unknown>;
    assert.equal(third.listed, 3);

    const list = await admin(k.url, 'GET', '/admin/cache/prewarm/tasks', { token: TOKEN });
    assert.deepEqual((list.json.tasks as Array<{ id: string }>).map((t) => t.id), [id, againId, limitedId]);

    assert.equal((await admin(k.url, 'POST', '/admin/cache/prewarm', { token: TOKEN, body: { bucket: 'nope' } })).status, 404);
    assert.equal((await admin(k.url, 'POST', '/admin/cache/prewarm', { token: TOKEN, body: { path: 'x' } })).status, 400);
    assert.equal((await admin(k.url, 'POST', '/admin/cache/prewarm', { token: TOKEN, body: { bucket: 'media', max_files: 0 } })).status, 400);
    assert.equal((await admin(k.url, 'GET', '/admin/cache/prewarm/status/nope', { token: TOKEN })).status, 404);
    assert.equal((await admin(k.url, 'DELETE', `/admin/cache/prewarm/${id}`, { token: TOKEN })).status, 409, 'a finished task cannot be cancelled');
  });

  test('cancel with DELETE; cache.warming.concurrency bounds the fetches in flight', async () => {
    const k = await start({ admin: { token: TOKEN } }, { warming: { concurrency: 3, rate_limit: 1000 } });
    relay.reset();
    relay.mode = { holdHeaders: true };
    try {
      const created = await admin(k.url, 'POST', '/admin/cache/prewarm', { token: TOKEN, body: { bucket: 'media', path: 'dir/' } });
      const id = String(created.json.task_id);
      // The listing comes first (held too): let it through, then the object fetches are held.
      await until('listing held', () => relay.holding === 1);
      relay.release();
      await until('three fetches held', () => relay.holding === 3);
      await sleep(100);
      assert.equal(relay.holding, 3, 'never more than `concurrency` objects at once');
      const status = (await admin(k.url, 'GET', `/admin/cache/prewarm/status/${id}`, { token: TOKEN })).json.task as Record<string, unknown>;
      assert.equal(status.state, 'running');
      assert.equal(status.listed, DIR_KEYS.length + 1);
      assert.equal(status.warmed, 0);

      const cancelled = await admin(k.url, 'DELETE', `/admin/cache/prewarm/${id}`, { token: TOKEN });
      assert.equal(cancelled.status, 200);
      relay.mode = {};
      relay.release();
      await until('task cancelled', async () => ((await admin(k.url, 'GET', `/admin/cache/prewarm/status/${id}`, { token: TOKEN })).json.task as Record<string, unknown>).state === 'cancelled');
      const final = (await admin(k.url, 'GET', `/admin/cache/prewarm/status/${id}`, { token: TOKEN })).json.task as Record<string, unknown>;
      assert.equal(final.warmed, 3, 'objects under way finish; no new one starts');
      await sleep(100);
      assert.equal(relay.stats().gets, 1 + 3);
    } finally {
      relay.mode = {};
      relay.release();
    }
  });

  test('cache.warming.rate_limit spaces the fetches', async () => {
    const k = await start({ admin: { token: TOKEN } }, { warming: { concurrency: 10, rate_limit: 20 } });
    const t0 = Date.now();
    const created = await admin(k.url, 'POST', '/admin/cache/prewarm', { token: TOKEN, body: { bucket: 'media', path: 'dir/', recursive: false } });
    const id = String(created.json.task_id);
    await until('task done', async () => ((await admin(k.url, 'GET', `/admin/cache/prewarm/status/${id}`, { token: TOKEN })).json.task as Record<string, unknown>).state === 'completed');
    const elapsed = Date.now() - t0;
    // 12 starts at 20/s: the last one starts 11 × 50 ms after the first.
    assert.ok(elapsed >= 500, `12 objects at 20/s took ${elapsed} ms`);
  });
});
