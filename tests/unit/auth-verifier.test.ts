// The verifier's token cache (a hit does not verify the signature again; `exp` is re-checked on every
// hit; bounded), candidate keys by kid and algorithm, and which JWKS entries are usable.
import assert from 'node:assert/strict';
import { createSecretKey, generateKeyPairSync, KeyObject } from 'node:crypto';
import { afterEach, describe, it } from 'node:test';
import { exportJWK, SignJWT } from 'jose';
import { keyFromJwk, type VerificationKey } from '../../src/auth/keys.js';
import { AuthFailure, TokenVerifier } from '../../src/auth/verifier.js';
import type { JwtConfig } from '../../src/config/types-auth.js';

const SECRET = new TextEncoder().encode('unit-secret-unit-secret-unit-0123');

function config(over: Partial<JwtConfig> = {}): JwtConfig {
  return {
    path: 'jwt',
    algorithm: 'HS256',
    secret: 'x',
    rsa_public_key_path: null,
    ecdsa_public_key_path: null,
    public_key_path: null,
    keys: [],
    jwks_url: null,
    jwks_refresh_interval_secs: 3600,
    jwks_refresh_cooldown_secs: 30,
    token_sources: [{ type: 'bearer' }],
    claims: [],
    admin_claims: [],
    issuer: null,
    audience: [],
    leeway_seconds: 0,
    ...over,
  };
}

const hmacKey = (kid: string | null = null): VerificationKey => ({ kid, key: createSecretKey(SECRET), algorithms: new Set(['HS256']), inferred: false, origin: 'test' });

async function sign(claims: Record<string, unknown>, opts: { exp?: number | null; kid?: string } = {}): Promise<string> {
  const jwt = new SignJWT({ sub: 'u', ...claims }).setProtectedHeader({ alg: 'HS256', ...(opts.kid ? { kid: opts.kid } : {}) });
  if (opts.exp !== null) jwt.setExpirationTime(opts.exp ?? Math.floor(Date.now() / 1000) + 3600);
  return jwt.sign(SECRET);
}

async function failure(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof AuthFailure, String(err));
    return err.kind;
  }
  assert.fail('expected an AuthFailure');
}

const realNow = Date.now;
afterEach(() => {
  Date.now = realNow;
});

describe('verified-token cache', () => {
  it('a hit does not verify the signature again (the key is gone, the cached token still passes)', async () => {
    const keys = [hmacKey()];
    const v = new TokenVerifier(config(), keys, null);
    const t = await sign({ n: 1 });
    assert.equal((await v.verify(t)).sub, 'u');
    keys.length = 0;
    assert.equal((await v.verify(t)).sub, 'u');
    assert.equal(await failure(v.verify(await sign({ n: 2 }))), 'unavailable');
  });

  it('re-checks exp on every hit (with the leeway)', async () => {
    const keys = [hmacKey()];
    const v = new TokenVerifier(config({ leeway_seconds: 5 }), keys, null);
    const exp = Math.floor(realNow() / 1000) + 10;
    const t = await sign({}, { exp });
    await v.verify(t);
    Date.now = () => exp * 1000 + 4000;
    await v.verify(t);
    Date.now = () => exp * 1000 + 6000;
    assert.equal(await failure(v.verify(t)), 'expired');
    // Not cached as valid any more: still expired on the next call, even with the key present.
    assert.equal(await failure(v.verify(t)), 'expired');
  });

  it('a token without exp is verified again after a while', async () => {
    const keys = [hmacKey()];
    const v = new TokenVerifier(config(), keys, null);
    const t = await sign({}, { exp: null });
    await v.verify(t);
    keys.length = 0;
    await v.verify(t);
    Date.now = () => realNow() + 11 * 60 * 1000;
    assert.equal(await failure(v.verify(t)), 'unavailable');
  });

  it('is bounded (least recently used tokens are verified again)', async () => {
    const keys = [hmacKey()];
    const v = new TokenVerifier(config(), keys, null, { cacheEntries: 2 });
    const [a, b, c] = await Promise.all([sign({ n: 'a' }), sign({ n: 'b' }), sign({ n: 'c' })]);
    await v.verify(a);
    await v.verify(b);
    await v.verify(c);
    keys.length = 0;
    await v.verify(c);
    await v.verify(b);
    assert.equal(await failure(v.verify(a)), 'unavailable');
  });

  it('failures are not cached', async () => {
    const keys: VerificationKey[] = [];
    const v = new TokenVerifier(config(), keys, null);
    const t = await sign({});
    assert.equal(await failure(v.verify(t)), 'unavailable');
    keys.push(hmacKey());
    assert.equal((await v.verify(t)).sub, 'u');
  });
});

describe('candidate keys', () => {
  it('kid selects the key; an unknown kid falls back to keys without an id; a known kid never does', async () => {
    const other = new TextEncoder().encode('other-secret-other-secret-other-0');
    const named: VerificationKey = { kid: 'k1', key: createSecretKey(other), algorithms: new Set(['HS256']), inferred: false, origin: 'k1' };
    const v = new TokenVerifier(config(), [named, hmacKey()], null);
    assert.equal((await v.verify(await sign({}, { kid: 'unknown' }))).sub, 'u', 'unknown kid → the single key');
    assert.equal(await failure(v.verify(await sign({ x: 1 }, { kid: 'k1' }))), 'invalid', 'kid k1 → only k1, which does not match');
    assert.equal((await v.verify(await sign({ x: 2 }))).sub, 'u', 'no kid → every key');
  });

  it('a key is tried only for its own algorithms', async () => {
    const hs384Only: VerificationKey = { ...hmacKey(), algorithms: new Set(['HS384']) };
    const v = new TokenVerifier(config(), [hs384Only], null);
    assert.equal(await failure(v.verify(await sign({}))), 'invalid');
  });
});

describe('JWKS entries', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
  const p521 = generateKeyPairSync('ec', { namedCurve: 'secp521r1' }).publicKey;
  const p256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
  const jwk = (k: KeyObject) => exportJWK(k);

  it('named alg → that algorithm only; no alg → the algorithms of the key type', async () => {
    const named = keyFromJwk({ ...(await jwk(rsa)), kid: 'a', alg: 'PS384' }, 'u');
    assert.ok(typeof named !== 'string');
    assert.deepEqual([...named.algorithms], ['PS384']);
    assert.equal(named.kid, 'a');
    assert.equal(named.inferred, false);
    const inferred = keyFromJwk({ ...(await jwk(rsa)), use: 'sig' }, 'u');
    assert.ok(typeof inferred !== 'string');
    assert.deepEqual([...inferred.algorithms], ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']);
    assert.equal(inferred.kid, null);
    const ec = keyFromJwk(await jwk(p256), 'u');
    assert.ok(typeof ec !== 'string');
    assert.deepEqual([...ec.algorithms], ['ES256']);
  });

  it('skips what must not or cannot be used', async () => {
    assert.match(keyFromJwk({ kty: 'oct', k: 'c2VjcmV0', alg: 'HS256' }, 'u') as string, /symmetric keys are not accepted/);
    assert.match(keyFromJwk({ ...(await jwk(rsa)), use: 'enc' }, 'u') as string, /not "sig"/);
    assert.match(keyFromJwk({ ...(await jwk(rsa)), alg: 'none' }, 'u') as string, /not accepted/);
    assert.match(keyFromJwk({ ...(await jwk(rsa)), alg: 'ES256' }, 'u') as string, /does not fit an RSA key/);
    assert.match(keyFromJwk({ ...(await jwk(rsa)), alg: 'RSA-OAEP' }, 'u') as string, /not accepted/);
    assert.match(keyFromJwk(await jwk(small), 'u') as string, /at least 2048 bits/);
    assert.match(keyFromJwk(await jwk(p521), 'u') as string, /cannot verify any accepted algorithm/);
    assert.match(keyFromJwk({ kty: 'RSA', n: 'AQAB' }, 'u') as string, /not a usable public key/);
    assert.match(keyFromJwk('x', 'u') as string, /not an object/);
  });

  it('reads only the public part of a JWK that also carries private members', async () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const key = keyFromJwk({ ...(await exportJWK(pair.privateKey)), alg: 'ES256' }, 'u');
    assert.ok(typeof key !== 'string');
    assert.equal((key.key as KeyObject).type, 'public');
  });
});
