// JWT authentication over real HTTP (PRODUCT §4): every algorithm with keys generated here, each key
// source (secret, PEM files, keys[] by kid), token sources in order, claim rules, exp/nbf with leeway,
// algorithm confusion and `alg: none`, per-bucket settings replacing the top-level ones, authorised
// cache hits, a query token absent from the upstream request and the logs, status codes and bodies,
// metrics, the admin hook, and key files re-read on reload. s3rver behind a counting relay.
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { Writable } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { HttpError } from '../../src/http/errors.js';
import { loadConfigText } from '../../src/config/load.js';
import { request, type HttpResponse } from '../helpers/http.js';
import { assertErrorJson, karasuYaml, startKarasuYaml, type BucketSpec, type KarasuUnderTest } from '../helpers/karasu.js';
import {
  ALL_ALGS,
  hmacTokenWithBytes,
  keyPair,
  pemDir,
  secretBytes,
  token,
  unsecuredToken,
  type Alg,
  type AsymmetricKey,
  type PemDir,
} from '../helpers/jwt.js';
import { runCli } from '../helpers/karasu.js';
import { startRelay, type Relay } from '../helpers/relay.js';
import { startS3, type S3Handle } from '../helpers/s3.js';

const BACKEND = 'auth-jwt-backend';
const OBJECT = 'hello from a private bucket';
const GLOBAL_SECRET = 'global-secret-global-secret-0123';
const SECRETS: Record<'HS256' | 'HS384' | 'HS512', string> = {
  HS256: 'hs256-secret-hs256-secret-012345',
  HS384: 'hs384-secret-hs384-secret-hs384-secret-0123456789',
  HS512: 'hs512-secret-hs512-secret-hs512-secret-hs512-secret-0123456789abc',
};
const ISSUER = 'https://idp.test';
const AUDIENCE = 'karasu-tests';
const LEEWAY = 30;

let s3: S3Handle;
let relay: Relay;
let pems: PemDir;
let karasu: KarasuUnderTest;
let yaml: string;
const logLines: string[] = [];

let rsa: AsymmetricKey;
let rsaOther: AsymmetricKey;
let ec256: AsymmetricKey;
let ec384: AsymmetricKey;
let ed: AsymmetricKey;
let rsaPem: string;
let rotatingPem: string;

/** The key that signs `alg` in these tests (one RSA key serves RS* and PS*). */
function signingKey(alg: Alg): KeyObject | Uint8Array {
  if (alg.startsWith('HS')) return secretBytes(SECRETS[alg as keyof typeof SECRETS]);
  if (alg.startsWith('RS') || alg.startsWith('PS')) return rsa.privateKey;
  if (alg === 'ES256') return ec256.privateKey;
  if (alg === 'ES384') return ec384.privateKey;
  return ed.privateKey;
}

/** A token for the `global` bucket: HS256 with the top-level secret, passing its claim rules. */
function globalToken(claims: Record<string, unknown> = {}, opts: { expiresIn?: number | null; notBeforeIn?: number } = {}): Promise<string> {
  return token({
    alg: 'HS256',
    key: secretBytes(GLOBAL_SECRET),
    claims: { iss: ISSUER, aud: AUDIENCE, role: 'reader', realm_access: { roles: ['downloader'] }, ...claims },
    ...opts,
  });
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const get = (path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<HttpResponse> =>
  request(`${karasu.url}${path}`, { headers, method });

function assert401(res: HttpResponse, code: string, challenge = 'Bearer realm="karasu", error="invalid_token"'): void {
  assertErrorJson(res, 401, code);
  assert.equal(res.headers['www-authenticate'], challenge);
  assert.equal(res.headers['cache-control'], 'no-store');
}

function assert403(res: HttpResponse): void {
  assertErrorJson(res, 403, 'Forbidden');
  assert.equal(res.headers['www-authenticate'], 'Bearer realm="karasu", error="insufficient_scope"');
}

function assertOk(res: HttpResponse): void {
  assert.equal(res.status, 200, res.body.toString());
  assert.equal(res.body.toString(), OBJECT);
}

function buildYaml(): string {
  const b = (name: string, extra: Record<string, unknown> = {}): BucketSpec => ({
    name,
    prefix: `/${name}`,
    endpoint: relay.url,
    bucket: BACKEND,
    extra,
  });
  const algKeys = ALL_ALGS.map((alg) =>
    alg.startsWith('HS')
      ? { id: alg, algorithm: alg, secret: SECRETS[alg as keyof typeof SECRETS] }
      : { id: alg, algorithm: alg, path: `${pems.dir}/${alg.startsWith('RS') || alg.startsWith('PS') ? 'rsa' : alg}.pem` },
  );
  return karasuYaml({
    buckets: [
      b('public'),
      b('global', { auth: { enabled: true }, cache: { enabled: false } }),
      b('cached', { auth: { enabled: true } }),
      b('strict', { auth: { enabled: true, claims_verification: [{ claim: 'realm_access.roles', operator: 'contains', value: 'auditor' }] }, cache: { enabled: false } }),
      b('algs', { auth: { enabled: true, jwt: { keys: algKeys } }, cache: { enabled: false } }),
      b('rsa', { auth: { enabled: true, jwt: { algorithm: 'RS256', rsa_public_key_path: rsaPem } }, cache: { enabled: false } }),
      b('ec', { auth: { enabled: true, jwt: { algorithm: 'ES384', ecdsa_public_key_path: `${pems.dir}/ES384.pem` } }, cache: { enabled: false } }),
      b('ed', { auth: { enabled: true, jwt: { algorithm: 'EdDSA', public_key_path: `${pems.dir}/EdDSA.pem` } }, cache: { enabled: false } }),
      b('rotating', { auth: { enabled: true, jwt: { algorithm: 'RS256', rsa_public_key_path: rotatingPem } }, cache: { enabled: false } }),
      b('sources', {
        auth: {
          enabled: true,
          jwt: {
            algorithm: 'HS256',
            secret: GLOBAL_SECRET,
            token_sources: [
              { type: 'header', name: 'X-Auth-Token', prefix: 'Token ' },
              { type: 'bearer' },
              { type: 'query', name: 'access_token' },
            ],
          },
        },
        cache: { enabled: false },
      }),
    ],
    top: {
      cache: { enabled: true, cache_layers: ['memory'] },
      jwt: {
        algorithm: 'HS256',
        secret: GLOBAL_SECRET,
        token_sources: [{ type: 'bearer' }, { type: 'query', name: 'access_token' }],
        issuer: ISSUER,
        audience: [AUDIENCE, 'other-audience'],
        leeway_seconds: LEEWAY,
        claims: [
          { claim: 'role', operator: 'in', value: ['reader', 'admin'] },
          { claim: 'sub', operator: 'not_equals', value: 'banned' },
        ],
        admin_claims: [{ claim: 'role', operator: 'equals', value: 'admin' }],
      },
    },
  });
}

before(async () => {
  [rsa, rsaOther, ec256, ec384, ed] = await Promise.all([keyPair('RS256'), keyPair('RS256'), keyPair('ES256'), keyPair('ES384'), keyPair('EdDSA')]);
  pems = await pemDir();
  rsaPem = await pems.write('rsa.pem', rsa.pem);
  await pems.write('ES256.pem', ec256.pem);
  await pems.write('ES384.pem', ec384.pem);
  await pems.write('EdDSA.pem', ed.pem);
  rotatingPem = await pems.write('rotating.pem', rsa.pem);
  s3 = await startS3({ buckets: { [BACKEND]: { 'obj.txt': OBJECT } } });
  relay = await startRelay(s3.endpoint);
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  yaml = buildYaml();
  karasu = await startKarasuYaml(yaml, {}, { logger: pino({ level: 'debug' }, sink) });
});

after(async () => {
  await karasu?.stop();
  await relay?.stop();
  await s3?.stop();
  await pems?.remove();
});

describe('algorithms', () => {
  test('every algorithm verifies with its own key, selected by kid and without kid', async () => {
    for (const alg of ALL_ALGS) {
      const withKid = await token({ alg, key: signingKey(alg), kid: alg });
      assertOk(await get('/algs/obj.txt', bearer(withKid)));
      const noKid = await token({ alg, key: signingKey(alg) });
      assertOk(await get('/algs/obj.txt', bearer(noKid)));
    }
  });

  test('the single-key forms: rsa_public_key_path, ecdsa_public_key_path, public_key_path', async () => {
    assertOk(await get('/rsa/obj.txt', bearer(await token({ alg: 'RS256', key: rsa.privateKey }))));
    assertOk(await get('/ec/obj.txt', bearer(await token({ alg: 'ES384', key: ec384.privateKey, kid: 'whatever' }))));
    assertOk(await get('/ed/obj.txt', bearer(await token({ alg: 'EdDSA', key: ed.privateKey }))));
  });

  test('a key allows only its own algorithm; a wrong key, a kid naming another key, a tampered token fail', async () => {
    // The RSA key is configured for RS256 only: a valid PS256 signature with the same key is refused.
    assert401(await get('/rsa/obj.txt', bearer(await token({ alg: 'PS256', key: rsa.privateKey }))), 'InvalidToken');
    assert401(await get('/rsa/obj.txt', bearer(await token({ alg: 'RS256', key: rsaOther.privateKey }))), 'InvalidToken');
    assert401(await get('/ec/obj.txt', bearer(await token({ alg: 'ES256', key: ec256.privateKey }))), 'InvalidToken');
    // kid ES256 names the P-256 key: an ES384 token carrying it is not tried against the P-384 key.
    assert401(await get('/algs/obj.txt', bearer(await token({ alg: 'ES384', key: ec384.privateKey, kid: 'ES256' }))), 'InvalidToken');
    assert401(await get('/algs/obj.txt', bearer(await token({ alg: 'RS256', key: rsa.privateKey, kid: 'nope' }))), 'InvalidToken');
    const good = await token({ alg: 'RS256', key: rsa.privateKey });
    const [h, p, s] = good.split('.');
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: 'root' })).toString('base64url');
    assert401(await get('/rsa/obj.txt', bearer(`${h}.${forged}.${s}`)), 'InvalidToken');
  });
});

describe('algorithm confusion and unsecured tokens', () => {
  test('an HS256 token signed with the RSA public key PEM as its secret fails', async () => {
    for (const pem of [rsa.pem, rsa.pem.trim()]) {
      for (const alg of ['HS256', 'HS384', 'HS512'] as const) {
        const forged = await hmacTokenWithBytes(alg, secretBytes(pem), { sub: 'mallory' });
        assert401(await get('/rsa/obj.txt', bearer(forged)), 'InvalidToken');
        // keys[] holds HMAC secrets too: still no key lets an RSA PEM act as a secret.
        assert401(await get('/algs/obj.txt', bearer(await hmacTokenWithBytes(alg, secretBytes(pem), {}, 'RS256'))), 'InvalidToken');
      }
    }
  });

  test('alg none (any spelling), with or without a signature part, always fails', async () => {
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      for (const path of ['/rsa/obj.txt', '/algs/obj.txt', '/global/obj.txt']) {
        const t = unsecuredToken({ sub: 'mallory', role: 'admin', iss: ISSUER, aud: AUDIENCE }, { alg, typ: 'JWT' });
        assert401(await get(path, bearer(t)), 'InvalidToken');
        assert401(await get(path, bearer(`${t}c2ln`)), 'InvalidToken');
      }
    }
  });

  test('malformed tokens: not three parts, bad base64, JWE-shaped, oversized', async () => {
    for (const t of ['abc', 'a.b', 'a.b.c.d.e', '!!!.???.***', `${'a'.repeat(20_000)}.b.c`, 'eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.sig']) {
      assert401(await get('/global/obj.txt', bearer(t)), 'InvalidToken');
    }
  });
});

describe('status codes and bodies', () => {
  test('public buckets need no token', async () => {
    assertOk(await get('/public/obj.txt'));
  });

  test('missing token → 401 with a challenge without error attribute; HEAD has no body', async () => {
    assert401(await get('/global/obj.txt'), 'Unauthorized', 'Bearer realm="karasu"');
    assert401(await get('/global/obj.txt', { authorization: 'Basic dTpw' }), 'Unauthorized', 'Bearer realm="karasu"');
    assert401(await get('/global/obj.txt', { authorization: 'Bearer    ' }), 'Unauthorized', 'Bearer realm="karasu"');
    const head = await get('/global/obj.txt', {}, 'HEAD');
    assert.equal(head.status, 401);
    assert.equal(head.headers['www-authenticate'], 'Bearer realm="karasu"');
    assert.equal(head.body.length, 0);
  });

  test('a valid token failing a claim rule → 403; registered claims and dot-paths are checked', async () => {
    assertOk(await get('/global/obj.txt', bearer(await globalToken())));
    assert403(await get('/global/obj.txt', bearer(await globalToken({ role: 'guest' }))));
    assert403(await get('/global/obj.txt', bearer(await globalToken({ sub: 'banned' }))));
    assert403(await get('/global/obj.txt', bearer(await globalToken({ role: undefined }))));
  });

  test('iss and aud are checked when configured (401: the token is not for us)', async () => {
    assert401(await get('/global/obj.txt', bearer(await globalToken({ iss: 'https://evil.test' }))), 'InvalidToken');
    assert401(await get('/global/obj.txt', bearer(await globalToken({ iss: undefined }))), 'InvalidToken');
    assert401(await get('/global/obj.txt', bearer(await globalToken({ aud: 'someone-else' }))), 'InvalidToken');
    assertOk(await get('/global/obj.txt', bearer(await globalToken({ aud: ['x', 'other-audience'] }))));
  });

  test('exp and nbf with the configured leeway; expired → 401 TokenExpired (Yatagarasu: 403)', async () => {
    assertOk(await get('/global/obj.txt', bearer(await globalToken({}, { expiresIn: -(LEEWAY - 10) }))));
    assert401(await get('/global/obj.txt', bearer(await globalToken({}, { expiresIn: -(LEEWAY + 30) }))), 'TokenExpired');
    assertOk(await get('/global/obj.txt', bearer(await globalToken({}, { notBeforeIn: LEEWAY - 10 }))));
    const early = await get('/global/obj.txt', bearer(await globalToken({}, { notBeforeIn: LEEWAY + 60 })));
    assert401(early, 'InvalidToken');
    assert.match(JSON.parse(early.body.toString()).message, /not valid yet/);
    assertOk(await get('/global/obj.txt', bearer(await globalToken({}, { expiresIn: null }))));
  });
});

describe('token sources', () => {
  test('header with prefix, bearer, query: tried in the configured order, the first present wins', async () => {
    const good = await token({ alg: 'HS256', key: secretBytes(GLOBAL_SECRET) });
    const bad = await token({ alg: 'HS256', key: secretBytes('wrong-secret-wrong-secret-012345') });
    assertOk(await get('/sources/obj.txt', { 'x-auth-token': `Token ${good}` }));
    // The prefix is compared case-insensitively.
    assertOk(await get('/sources/obj.txt', { 'X-AUTH-TOKEN': `token   ${good}` }));
    assertOk(await get('/sources/obj.txt', bearer(good)));
    assertOk(await get('/sources/obj.txt', { authorization: `bearer ${good}` }));
    assertOk(await get(`/sources/obj.txt?access_token=${good}`));
    // The header comes first: its bad token is not rescued by a good bearer token.
    assert401(await get('/sources/obj.txt', { 'x-auth-token': `Token ${bad}`, ...bearer(good) }), 'InvalidToken');
    assertOk(await get('/sources/obj.txt', { 'x-auth-token': `Token ${good}`, ...bearer(bad) }));
    // A header without the configured prefix is not a token source: next source used.
    assertOk(await get('/sources/obj.txt', { 'x-auth-token': good, ...bearer(good) }));
    assert401(await get('/sources/obj.txt', { 'x-auth-token': good }), 'Unauthorized', 'Bearer realm="karasu"');
    assert401(await get(`/sources/obj.txt?access_token=${bad}`), 'InvalidToken');
    assert401(await get(`/sources/obj.txt?other=${good}`), 'Unauthorized', 'Bearer realm="karasu"');
  });

  test('a query token reaches neither S3 nor the logs', async () => {
    relay.reset();
    const before = logLines.length;
    const t = await globalToken({ sub: 'query-user' });
    assertOk(await get(`/global/obj.txt?access_token=${t}&x=1`));
    const bad = `${t.slice(0, -4)}AAAA`;
    assert401(await get(`/global/obj.txt?access_token=${bad}`), 'InvalidToken');
    const paths = relay.stats().paths;
    assert.ok(paths.length >= 1, 'the object was fetched from S3');
    for (const p of paths) {
      assert.ok(!p.includes(t.split('.')[2]) && !p.includes('access_token'), `upstream request target carries the token: ${p}`);
    }
    await new Promise((r) => setTimeout(r, 50));
    const logged = logLines.slice(before);
    assert.ok(logged.some((l) => l.includes('/global/obj.txt')), 'requests were logged');
    for (const line of logged) {
      assert.ok(!line.includes(t.split('.')[2]) && !line.includes(bad.split('.')[2]), `log line carries the token: ${line}`);
      assert.ok(!line.includes('access_token'), `log line carries the query: ${line}`);
    }
  });
});

describe('per-bucket settings', () => {
  test("a bucket's auth.jwt replaces the top-level jwt; auth.claims_verification adds to it", async () => {
    const globalOnly = await globalToken();
    const rsaToken = await token({ alg: 'RS256', key: rsa.privateKey });
    assertOk(await get('/global/obj.txt', bearer(globalOnly)));
    assert401(await get('/rsa/obj.txt', bearer(globalOnly)), 'InvalidToken');
    assert401(await get('/global/obj.txt', bearer(rsaToken)), 'InvalidToken');
    // The rsa bucket's own block has no claim rules: the top-level ones do not apply to it.
    assertOk(await get('/rsa/obj.txt', bearer(await token({ alg: 'RS256', key: rsa.privateKey, claims: { role: 'guest' } }))));
    // strict = top-level jwt + its own rule.
    assert403(await get('/strict/obj.txt', bearer(globalOnly)));
    assertOk(await get('/strict/obj.txt', bearer(await globalToken({ realm_access: { roles: ['downloader', 'auditor'] } }))));
    assert403(await get('/strict/obj.txt', bearer(await globalToken({ role: 'guest', realm_access: { roles: ['auditor'] } }))));
  });
});

describe('authorised cache hits', () => {
  test('a cached object is served only to callers who pass; hits need no S3 and no signature check', async () => {
    const t = await globalToken({ sub: 'cache-user' });
    const first = await get('/cached/obj.txt', bearer(t));
    assertOk(first);
    assert.equal(first.headers['x-cache'], 'MISS');
    const second = await get('/cached/obj.txt', bearer(t));
    assertOk(second);
    assert.equal(second.headers['x-cache'], 'HIT');
    relay.reset();
    assert401(await get('/cached/obj.txt'), 'Unauthorized', 'Bearer realm="karasu"');
    const head = await get('/cached/obj.txt', {}, 'HEAD');
    assert.equal(head.status, 401);
    assert.equal(head.headers['www-authenticate'], 'Bearer realm="karasu"');
    assert401(await get('/cached/obj.txt', bearer(`${t.slice(0, -4)}AAAA`)), 'InvalidToken');
    assert401(await get('/cached/obj.txt', bearer(await globalToken({}, { expiresIn: -3600 }))), 'TokenExpired');
    assert403(await get('/cached/obj.txt', bearer(await globalToken({ role: 'guest' }))));
    assert401(await get('/cached/obj.txt', { range: 'bytes=0-3' }), 'Unauthorized', 'Bearer realm="karasu"');
    assert401(await get('/cached/obj.txt', { 'if-none-match': first.headers.etag as string }), 'Unauthorized', 'Bearer realm="karasu"');
    assert.equal(relay.stats().requests, 0, 'refusals never reach S3');
    const third = await get('/cached/obj.txt', bearer(t));
    assert.equal(third.headers['x-cache'], 'HIT');
    assert.equal(relay.stats().requests, 0);
    // A CDN in front of Karasu must not keep what only a token holder may read.
    for (const response of [first, second, third]) assert.match(String(response.headers['cache-control']), /^private\b/);
    assert.doesNotMatch(String((await get('/public/obj.txt')).headers['cache-control'] ?? ''), /private/);
  });
});

describe('operations', () => {
  test('karasu_auth_total counts each result per bucket', async () => {
    const text = (await get('/metrics')).body.toString();
    for (const result of ['success', 'missing', 'invalid', 'expired', 'forbidden']) {
      assert.match(text, new RegExp(`karasu_auth_total\\{bucket="global",result="${result}"\\} [1-9]`), result);
    }
    assert.doesNotMatch(text, /karasu_auth_total\{bucket="public"/);
  });

  test('/ready shows the auth state of protected buckets', async () => {
    const res = await get('/ready');
    assert.equal(res.status, 200);
    const json = JSON.parse(res.body.toString());
    assert.equal(json.backends.global.auth, 'ready');
    assert.equal(json.backends.public.auth, undefined);
    assert.deepEqual(json.jwks, {});
  });

  test('snapshot.adminAuth verifies top-level jwt tokens against admin_claims', async () => {
    const admin = karasu.karasu.current().adminAuth;
    assert.ok(admin);
    const req = (headers: Record<string, string>, url = '/admin/cache/stats') => ({ headers, url }) as unknown as IncomingMessage;
    assert.deepEqual(await admin.authenticate(req(bearer(await globalToken({ sub: 'root', role: 'admin' })))), { sub: 'root' });
    assert.deepEqual(await admin.authenticate(req({}, `/admin/cache/stats?access_token=${await globalToken({ sub: 'q', role: 'admin' })}`)), { sub: 'q' });
    const refused = async (headers: Record<string, string>, status: number) => {
      await assert.rejects(admin.authenticate(req(headers)), (err: unknown) => err instanceof HttpError && err.status === status);
    };
    await refused({}, 401);
    await refused(bearer('garbage'), 401);
    await refused(bearer(await globalToken({ role: 'admin' }, { expiresIn: -3600 })), 401);
    await refused(bearer(await globalToken({ role: 'reader' })), 403);
    assert.equal(admin.hasToken(req({})), false);
    assert.equal(admin.hasToken(req(bearer('x'))), true);
  });

  test('key files are read at reload: a replaced PEM takes effect, an unreadable one keeps the running config', async () => {
    const oldToken = await token({ alg: 'RS256', key: rsa.privateKey, claims: { sub: 'old' } });
    const newToken = await token({ alg: 'RS256', key: rsaOther.privateKey, claims: { sub: 'new' } });
    assertOk(await get('/rotating/obj.txt', bearer(oldToken)));
    await pems.write('rotating.pem', rsaOther.pem);
    // Not read per request: the file changed, the running snapshot still has the old key.
    assertOk(await get('/rotating/obj.txt', bearer(oldToken)));
    assert401(await get('/rotating/obj.txt', bearer(newToken)), 'InvalidToken');
    const port = String(karasu.port);
    const reloadWith = (text: string) => karasu.karasu.reload(loadConfigText(text, 'karasu-test.yaml', { KARASU_TEST_PORT: port }).config);
    await reloadWith(yaml);
    assertOk(await get('/rotating/obj.txt', bearer(newToken)));
    assert401(await get('/rotating/obj.txt', bearer(oldToken)), 'InvalidToken');
    const generation = karasu.karasu.current().generation;
    await assert.rejects(reloadWith(yaml.replace(rotatingPem, `${pems.dir}/missing.pem`)), /rsa_public_key_path: cannot read .*missing\.pem: ENOENT/);
    await pems.write('private.pem', '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n');
    await assert.rejects(reloadWith(yaml.replace(rotatingPem, `${pems.dir}/private.pem`)), /holds a private key/);
    await assert.rejects(reloadWith(yaml.replace(rotatingPem, `${pems.dir}/ES256.pem`)), /holds an EC P-256 key; `rsa_public_key_path` expects an RSA key/);
    assert.equal(karasu.karasu.current().generation, generation);
    assertOk(await get('/rotating/obj.txt', bearer(newToken)));
  });

  test('karasu check reads the key files a config names', async () => {
    const good = `buckets:\n  - name: p\n    path_prefix: /p\n    s3: {bucket: b}\n    auth:\n      enabled: true\n      jwt: {algorithm: RS256, rsa_public_key_path: ${rsaPem}}\n`;
    const ok = await runCli(['check', '-c', await pems.write('good.yaml', good)]);
    assert.equal(ok.code, 0, ok.stderr);
    const badFile = await pems.write('bad.yaml', good.replace(rsaPem, `${pems.dir}/ES256.pem`));
    const bad = await runCli(['check', '-c', badFile]);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr.trim(), `${badFile}: buckets[0].auth.jwt.rsa_public_key_path: holds an EC P-256 key; \`rsa_public_key_path\` expects an RSA key`);
  });
});
