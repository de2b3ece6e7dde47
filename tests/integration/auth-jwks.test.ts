// JWKS over real HTTP: a key server on loopback that rotates keys, goes down and comes back. Keys are
// fetched at start and shared by every bucket (and snapshot) using the URL; an unknown kid triggers a
// refresh with a cool-down; a failing URL keeps the last good set (`stale` in /ready); a URL down at
// start-up is reported in /ready (503) instead of crashing, and recovers by itself.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadConfigText } from '../../src/config/load.js';
import { request, type HttpResponse } from '../helpers/http.js';
import { assertErrorJson, karasuYaml, startKarasuYaml, type BucketSpec, type KarasuUnderTest } from '../helpers/karasu.js';
import { eventually, keyPair, startJwksServer, token, type AsymmetricKey, type JwksServer } from '../helpers/jwt.js';
import { startS3, type S3Handle } from '../helpers/s3.js';

const BACKEND = 'auth-jwks-backend';
const OBJECT = 'jwks-protected';

let s3: S3Handle;
let keyA: AsymmetricKey;
let keyB: AsymmetricKey;
let keyE: AsymmetricKey;
let keyN: AsymmetricKey;

before(async () => {
  [keyA, keyB, keyE, keyN] = await Promise.all([keyPair('RS256', 'a'), keyPair('RS256', 'b'), keyPair('ES256', 'e'), keyPair('RS256', 'n')]);
  // `n` names no algorithm: its type (RSA) decides, narrowed by a block's `algorithm`.
  delete keyN.jwk.alg;
  s3 = await startS3({ buckets: { [BACKEND]: { 'obj.txt': OBJECT } } });
});
after(async () => {
  await s3?.stop();
});

const bucket = (name: string, extra: Record<string, unknown> = {}): BucketSpec => ({
  name,
  prefix: `/${name}`,
  endpoint: s3.endpoint,
  bucket: BACKEND,
  extra,
});

function get(k: KarasuUnderTest, path: string, t?: string): Promise<HttpResponse> {
  return request(`${k.url}${path}`, { headers: t ? { authorization: `Bearer ${t}` } : {} });
}

function assertOk(res: HttpResponse): void {
  assert.equal(res.status, 200, res.body.toString());
  assert.equal(res.body.toString(), OBJECT);
}

async function ready(k: KarasuUnderTest): Promise<{ status: number; json: { status: string; jwks: Record<string, string>; backends: Record<string, { status: string; auth?: string }> } }> {
  const res = await request(`${k.url}/ready`);
  return { status: res.status, json: JSON.parse(res.body.toString()) };
}

async function metric(k: KarasuUnderTest, line: string): Promise<number> {
  const text = (await request(`${k.url}/metrics`)).body.toString();
  const found = text.split('\n').find((l) => l.startsWith(line));
  return found ? Number(found.slice(found.lastIndexOf(' ') + 1)) : 0;
}

describe('rotation and unknown kids', () => {
  let jwks: JwksServer;
  let karasu: KarasuUnderTest;
  let yaml: string;

  before(async () => {
    jwks = await startJwksServer([keyA.jwk, keyE.jwk, keyN.jwk]);
    const own = { jwks_url: jwks.url, jwks_refresh_cooldown_secs: 3, algorithm: 'RS256' };
    yaml = karasuYaml({
      buckets: [bucket('g1', { auth: { enabled: true } }), bucket('g2', { auth: { enabled: true } }), bucket('own', { auth: { enabled: true, jwt: own } })],
      top: { jwt: { jwks_url: jwks.url, jwks_refresh_cooldown_secs: 3 } },
    });
    karasu = await startKarasuYaml(yaml);
  });
  after(async () => {
    await karasu?.stop();
    await jwks?.stop();
  });

  test('fetched once at start-up, shared by every bucket using the URL', async () => {
    assert.equal(jwks.fetches, 1);
    const { status, json } = await ready(karasu);
    assert.equal(status, 200);
    assert.deepEqual(json.jwks, { [jwks.url]: 'ok' });
    assert.equal(json.backends.g1.auth, 'ready');
    for (const path of ['/g1/obj.txt', '/g2/obj.txt', '/own/obj.txt']) {
      assertOk(await get(karasu, path, await token({ alg: 'RS256', key: keyA.privateKey, kid: 'a' })));
      assertOk(await get(karasu, path, await token({ alg: 'ES256', key: keyE.privateKey, kid: 'e' })));
      assertOk(await get(karasu, path, await token({ alg: 'RS256', key: keyA.privateKey })));
    }
    assert.equal(jwks.fetches, 1);
  });

  test('a JWK without alg: its key type decides, narrowed by the block’s algorithm', async () => {
    const ps = await token({ alg: 'PS256', key: keyN.privateKey, kid: 'n' });
    assertOk(await get(karasu, '/g1/obj.txt', ps));
    assertErrorJson(await get(karasu, '/own/obj.txt', ps), 401, 'InvalidToken');
    assertOk(await get(karasu, '/own/obj.txt', await token({ alg: 'RS256', key: keyN.privateKey, kid: 'n' })));
    // Never an HMAC "signature" made with the JWK's public key material.
    const confused = await token({ alg: 'HS256', key: new TextEncoder().encode(keyN.pem), kid: 'n' });
    assertErrorJson(await get(karasu, '/g1/obj.txt', confused), 401, 'InvalidToken');
  });

  test('a new kid triggers a refresh and succeeds; another unknown kid within the cool-down does not refetch', async () => {
    jwks.setKeys([keyA.jwk, keyB.jwk]);
    const before = jwks.fetches;
    assertOk(await get(karasu, '/g1/obj.txt', await token({ alg: 'RS256', key: keyB.privateKey, kid: 'b' })));
    assert.equal(jwks.fetches, before + 1);
    // Concurrent tokens with another unknown kid: within the cool-down, answered from the set in hand.
    const unknown = await token({ alg: 'RS256', key: keyB.privateKey, kid: 'c' });
    const answers = await Promise.all([1, 2, 3].map(() => get(karasu, '/g2/obj.txt', unknown)));
    for (const res of answers) assertErrorJson(res, 401, 'InvalidToken');
    assert.equal(jwks.fetches, before + 1);
    // After the cool-down the next unknown kid refetches.
    await new Promise((r) => setTimeout(r, 3100));
    jwks.setKeys([keyA.jwk, keyB.jwk, { ...keyB.jwk, kid: 'c' }]);
    assertOk(await get(karasu, '/g2/obj.txt', unknown));
    assert.equal(jwks.fetches, before + 2);
  });

  test('a reload keeps the JWKS client and its keys (no refetch)', async () => {
    const before = jwks.fetches;
    const { config } = loadConfigText(yaml, 'karasu-test.yaml', { KARASU_TEST_PORT: String(karasu.port) });
    await karasu.karasu.reload(config);
    assert.equal(karasu.karasu.current().generation, 2);
    assertOk(await get(karasu, '/own/obj.txt', await token({ alg: 'RS256', key: keyB.privateKey, kid: 'b', claims: { n: 2 } })));
    assert.equal(jwks.fetches, before);
    assert.ok((await metric(karasu, 'karasu_jwks_refresh_total{result="success"}')) >= 3);
  });
});

describe('the JWKS URL fails', () => {
  let jwks: JwksServer;
  let karasu: KarasuUnderTest;

  before(async () => {
    jwks = await startJwksServer([keyA.jwk]);
    karasu = await startKarasuYaml(
      karasuYaml({
        buckets: [bucket('p', { auth: { enabled: true, jwt: { jwks_url: jwks.url, jwks_refresh_interval_secs: 1 } } })],
      }),
    );
  });
  after(async () => {
    await karasu?.stop();
    await jwks?.stop();
  });

  test('the last good key set keeps working (stale, still ready), and the URL recovers', async () => {
    assertOk(await get(karasu, '/p/obj.txt', await token({ alg: 'RS256', key: keyA.privateKey, kid: 'a' })));
    jwks.down('503');
    await eventually(async () => (await ready(karasu)).json.jwks[jwks.url] === 'stale', 5000, 'JWKS state stale');
    const r = await ready(karasu);
    assert.equal(r.status, 200, 'a stale key set still serves');
    assert.equal(r.json.backends.p.auth, 'ready');
    // A token the cache has never seen: verified with the kept key.
    assertOk(await get(karasu, '/p/obj.txt', await token({ alg: 'RS256', key: keyA.privateKey, kid: 'a', claims: { fresh: true } })));
    assert.ok((await metric(karasu, 'karasu_jwks_refresh_total{result="failure"}')) >= 1);
    jwks.down('reset');
    assertOk(await get(karasu, '/p/obj.txt', await token({ alg: 'RS256', key: keyA.privateKey, claims: { fresh: 2 } })));
    jwks.up();
    await eventually(async () => (await ready(karasu)).json.jwks[jwks.url] === 'ok', 5000, 'JWKS state ok');
  });
});

describe('the JWKS URL is down at start-up', () => {
  let jwks: JwksServer;
  let karasu: KarasuUnderTest;

  before(async () => {
    jwks = await startJwksServer([keyA.jwk]);
    jwks.down('reset');
    karasu = await startKarasuYaml(
      karasuYaml({
        buckets: [bucket('p', { auth: { enabled: true, jwt: { jwks_url: jwks.url, jwks_refresh_interval_secs: 1 } } }), bucket('open')],
      }),
    );
  });
  after(async () => {
    await karasu?.stop();
    await jwks?.stop();
  });

  test('Karasu starts; /ready is 503 naming the URL; protected requests get 503, public ones are served; then it recovers', async () => {
    const r = await ready(karasu);
    assert.equal(r.status, 503);
    assert.equal(r.json.status, 'unavailable');
    assert.equal(r.json.jwks[jwks.url], 'unavailable');
    assert.deepEqual(r.json.backends.p, { status: 'unavailable', replicas: { default: 'healthy' }, auth: 'keys_unavailable' });
    assert.equal(r.json.backends.open.status, 'ready');
    const t = await token({ alg: 'RS256', key: keyA.privateKey, kid: 'a' });
    const refused = await get(karasu, '/p/obj.txt', t);
    assertErrorJson(refused, 503, 'AuthUnavailable');
    assert.equal(refused.headers['retry-after'], '5');
    assertErrorJson(await get(karasu, '/p/obj.txt'), 401, 'Unauthorized');
    assertOk(await get(karasu, '/open/obj.txt'));
    jwks.up();
    await eventually(async () => (await ready(karasu)).status === 200, 5000, '/ready 200');
    assertOk(await get(karasu, '/p/obj.txt', t));
    assert.ok((await metric(karasu, 'karasu_auth_total{bucket="p",result="unavailable"}')) >= 1);
  });
});
