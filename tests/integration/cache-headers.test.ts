// A cached object must look the same to a client whichever way it is answered: the miss that fills the
// cache, a hit from memory (a Buffer) or from disk (a file), and HEAD. Whole 200s are sent from a header
// list built once per entry, everything else from per-request header objects: this pins them together,
// for a plain bucket, a CORS bucket and a token-protected one. s3rver behind a counting relay.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startS3, type S3Handle } from '../helpers/s3.js';
import { karasuYaml, startKarasuYaml, type KarasuUnderTest } from '../helpers/karasu.js';
import { body, cacheSection, get, startCtlRelay, until, type CachedResponse, type CtlRelay } from '../helpers/cache-kit.js';
import { secretBytes, token } from '../helpers/jwt.js';

const OBJECT = body(3000, 7);
const SECRET = 'cache-headers-test-secret-of-32-bytes!';
const ORIGIN = 'https://app.example';

/** Headers that differ per response by design. */
const PER_RESPONSE = new Set(['date', 'x-request-id', 'x-cache', 'cache-status', 'age', 'connection', 'keep-alive']);

function representation(res: CachedResponse): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(res.headers)) if (!PER_RESPONSE.has(name)) out[name] = String(value);
  return out;
}

let s3: S3Handle;
let relay: CtlRelay;
let bearer: string;
const dirs: string[] = [];

before(async () => {
  s3 = await startS3({
    buckets: {
      hdr: {
        'obj.bin': { body: OBJECT, contentType: 'application/x-test', cacheControl: 'public, max-age=600, s-maxage=900', metadata: { owner: 'kim' } },
        'plain.bin': OBJECT,
      },
    },
  });
  relay = await startCtlRelay(s3.endpoint);
  bearer = `Bearer ${await token({ alg: 'HS256', key: secretBytes(SECRET), claims: { sub: 'kim' } })}`;
});
after(async () => {
  await relay?.stop();
  await s3?.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function start(layers: Array<'memory' | 'disk'>): Promise<KarasuUnderTest> {
  const diskDir = await mkdtemp(join(tmpdir(), 'karasu-cache-headers-'));
  dirs.push(diskDir);
  const b = (name: string, extra: Record<string, unknown> = {}) => ({ name, prefix: `/${name}`, endpoint: relay.url, bucket: 'hdr', extra });
  return startKarasuYaml(
    karasuYaml({
      buckets: [
        b('plain'),
        b('cors', { cors: { allowed_origins: [ORIGIN], expose_headers: ['X-Amz-Meta-Owner'], allow_credentials: true } }),
        b('auth', { auth: { enabled: true } }),
      ],
      top: { cache: cacheSection({ layers, diskDir }), jwt: { algorithm: 'HS256', secret: SECRET } },
    }),
  );
}

for (const layers of [['memory'], ['disk']] as Array<Array<'memory' | 'disk'>>) {
  describe(`${layers.join('+')} tier: miss, hit and HEAD carry the same headers`, () => {
    let karasu: KarasuUnderTest;
    before(async () => {
      karasu = await start(layers);
    });
    after(async () => {
      await karasu?.stop();
    });

    const variants: Array<[string, Record<string, string>, (h: Record<string, string>) => void]> = [
      [
        'plain',
        {},
        (h) => {
          assert.equal(h['cache-control'], 'public, max-age=600, s-maxage=900');
          assert.equal(h.vary, undefined);
        },
      ],
      [
        'cors',
        { origin: ORIGIN },
        (h) => {
          assert.equal(h['access-control-allow-origin'], ORIGIN);
          assert.equal(h['access-control-allow-credentials'], 'true');
          assert.match(h['access-control-expose-headers'], /X-Amz-Meta-Owner/);
          assert.equal(h.vary, 'Origin');
        },
      ],
      [
        'auth',
        {},
        (h) => {
          // A CDN must not share what only a token holder may read.
          assert.equal(h['cache-control'], 'private, max-age=600');
        },
      ],
    ];
    for (const [bucket, headers, check] of variants) {
      test(bucket, async () => {
        const send = (method: string, extra: Record<string, string> = {}) =>
          get(karasu, `/${bucket}/obj.bin`, { ...headers, ...(bucket === 'auth' ? { authorization: bearer } : {}), ...extra }, method);
        relay.reset();
        const miss = await send('GET');
        // The disk tier commits after the response: wait for the entry (a HEAD miss moves no body).
        await until('the entry is stored', async () => (await send('HEAD')).xcache === 'HIT');
        const hit = await send('GET');
        const head = await send('HEAD');
        assert.deepEqual([miss.xcache, hit.xcache, head.xcache], ['MISS', 'HIT', 'HIT']);
        assert.equal(hit.detail, layers[0]);
        assert.equal(relay.stats().gets, 1, 'only the miss reached S3');
        assert.ok(miss.body.equals(OBJECT) && hit.body.equals(OBJECT));
        assert.equal(head.body.length, 0);
        const expected = representation(miss);
        assert.deepEqual(representation(hit), expected);
        assert.deepEqual(representation(head), expected);
        for (const h of [expected]) {
          assert.equal(h['content-length'], String(OBJECT.length));
          assert.equal(h['accept-ranges'], 'bytes');
          assert.equal(h['content-type'], 'application/x-test');
          assert.equal(h['x-amz-meta-owner'], 'kim');
          assert.match(h.etag, /^"[0-9a-f]{32}"$/);
          check(h);
        }
        assert.match(String(hit.headers.age), /^\d+$/);
        assert.match(String(hit.headers['x-request-id']), /^[0-9a-f-]{36}$/);
        assert.notEqual(hit.headers['x-request-id'], miss.headers['x-request-id']);
        // The per-request parts still vary: another origin gets Vary but no grant.
        if (bucket === 'cors') {
          const other = await send('GET', { origin: 'https://evil.example' });
          assert.equal(other.xcache, 'HIT');
          assert.equal(other.headers['access-control-allow-origin'], undefined);
          assert.equal(other.headers.vary, 'Origin');
        }
      });
    }

    test('an object without Cache-Control gets `private` on a protected bucket, nothing on a public one', async () => {
      for (let i = 0; i < 2; i++) {
        const open = await get(karasu, '/plain/plain.bin');
        const closed = await get(karasu, '/auth/plain.bin', { authorization: bearer });
        assert.equal(open.headers['cache-control'], undefined);
        assert.equal(closed.headers['cache-control'], 'private');
        assert.equal(closed.xcache, i === 0 ? 'MISS' : 'HIT');
        if (i === 0) await until('stored', async () => (await get(karasu, '/auth/plain.bin', { authorization: bearer }, 'HEAD')).xcache === 'HIT');
      }
    });
  });
}
