// Loading `jwt` and `buckets[].auth`: which settings apply to which bucket, and the errors that keep a
// bucket from being served without the authentication its config asks for.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, formatIssue, loadConfigText } from '../../src/config/load.js';
import type { ConfigIssue, LoadedConfig } from '../../src/config/types.js';

const S3 = 's3: {bucket: b}';

function load(text: string): LoadedConfig {
  return loadConfigText(text, 'test.yaml', {});
}

function errors(text: string): ConfigIssue[] {
  try {
    load(text);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.issues;
  }
  assert.fail('expected the config to be rejected');
}

function assertOneError(text: string, path: string, message: RegExp): void {
  const found = errors(text);
  assert.equal(found.length, 1, found.map(formatIssue).join('\n'));
  assert.equal(found[0].path, path, formatIssue(found[0]));
  assert.match(found[0].message, message);
}

const bucket = (extra = '', name = 'private') => `  - name: ${name}\n    path_prefix: /${name}\n    ${S3}\n${extra}`;

describe('which JWT settings apply', () => {
  it('a bucket with auth.enabled uses the top-level jwt; public buckets have no auth', () => {
    const { config, warnings } = load(`jwt:\n  algorithm: HS256\n  secret: s3cret\nbuckets:\n${bucket('    auth: {enabled: true}\n')}${bucket('    auth: {enabled: false}\n', 'public')}${bucket('', 'plain')}`);
    assert.deepEqual(warnings, []);
    assert.ok(config.jwt);
    assert.equal(config.jwt.path, 'jwt');
    assert.equal(config.buckets[0].auth?.jwt, config.jwt);
    assert.equal(config.buckets[1].auth, null);
    assert.equal(config.buckets[2].auth, null);
    assert.deepEqual(config.jwt.token_sources, [{ type: 'bearer' }], 'default source');
    assert.equal(config.jwt.leeway_seconds, 60);
    assert.equal(config.jwt.jwks_refresh_interval_secs, 3600);
    assert.equal(config.jwt.jwks_refresh_cooldown_secs, 30);
    assert.deepEqual(config.jwt.audience, []);
    assert.equal(config.jwt.issuer, null);
  });

  it("a bucket's auth.jwt replaces the top-level jwt for that bucket", () => {
    const { config } = load(
      `jwt: {algorithm: HS256, secret: global}\nbuckets:\n${bucket('    auth:\n      enabled: true\n      jwt: {algorithm: HS512, secret: own}\n')}${bucket('    auth: {enabled: true}\n', 'other')}`,
    );
    assert.equal(config.buckets[0].auth?.jwt.secret, 'own');
    assert.equal(config.buckets[0].auth?.jwt.algorithm, 'HS512');
    assert.equal(config.buckets[0].auth?.jwt.path, 'buckets[0].auth.jwt');
    assert.equal(config.buckets[1].auth?.jwt, config.jwt);
  });

  it('auth.enabled without any JWT settings is an error naming the bucket (Yatagarasu served it open)', () => {
    assertOneError(`buckets:\n${bucket('    auth:\n      enabled: true\n')}`, 'buckets[0].auth.enabled', /no JWT settings apply: there is no top-level `jwt`.*refusing to serve bucket `private`/);
    assertOneError(
      `jwt: {enabled: false, algorithm: HS256, secret: x}\nbuckets:\n${bucket('    auth: {enabled: true}\n')}`,
      'buckets[0].auth.enabled',
      /the top-level `jwt` is disabled/,
    );
    assertOneError(
      `buckets:\n${bucket('    auth:\n      enabled: true\n      jwt: {enabled: false, algorithm: HS256, secret: x}\n')}`,
      'buckets[0].auth.enabled',
      /no JWT settings apply/,
    );
  });

  it('auth needs `enabled` (as in Yatagarasu)', () => {
    assertOneError(`jwt: {algorithm: HS256, secret: x}\nbuckets:\n${bucket('    auth:\n      jwt: {algorithm: HS256, secret: x}\n')}`, 'buckets[0].auth.enabled', /missing required key `enabled`/);
  });

  it('warns about settings that are switched off', () => {
    const { config, warnings } = load(
      `jwt: {enabled: false, algorithm: HS256, secret: x}\nbuckets:\n${bucket('    auth:\n      enabled: false\n      jwt: {algorithm: HS256, secret: x}\n')}`,
    );
    assert.equal(config.jwt, null);
    assert.equal(config.buckets[0].auth, null);
    assert.deepEqual(
      warnings.map((w) => [w.path, w.message]),
      [
        ['jwt', 'has no effect: `jwt.enabled` is false'],
        ['buckets[0].auth.jwt', 'has no effect: `buckets[0].auth.enabled` is false (the bucket is public)'],
      ],
    );
  });
});

describe("Yatagarasu's documented per-bucket form", () => {
  it('loads config.docker.yaml’s private bucket: header source with prefix, query source, claims_verification', () => {
    const { config, warnings } = load(`buckets:
  - name: "private-data"
    path_prefix: "/private"
    s3: {bucket: private-data}
    auth:
      enabled: true
      jwt:
        token_sources:
          - type: "header"
            name: "Authorization"
            prefix: "Bearer "
          - type: "query"
            name: "token"
        secret: "secret"
        algorithm: "HS256"
        claims_verification:
          - claim: "role"
            operator: "equals"
            value: "admin"
`);
    assert.deepEqual(
      warnings.map((w) => w.path),
      ['buckets[0].auth.jwt.claims_verification'],
    );
    assert.match(warnings[0].message, /applied as `claims`/);
    const jwt = config.buckets[0].auth!.jwt;
    assert.deepEqual(jwt.token_sources, [
      { type: 'header', name: 'authorization', prefix: 'Bearer ' },
      { type: 'query', name: 'token' },
    ]);
    assert.deepEqual(jwt.claims, [{ claim: 'role', operator: 'equals', value: 'admin' }]);
  });

  it('takes `name` for `claim` (their docs) with a warning, and bucket-level claims_verification as extra rules', () => {
    const { config, warnings } = load(
      `jwt:\n  algorithm: HS256\n  secret: x\n  claims:\n    - {name: role, operator: in, value: [a, b]}\nbuckets:\n${bucket('    auth:\n      enabled: true\n      claims_verification:\n        - {claim: tenant, operator: equals, value: acme}\n')}`,
    );
    assert.deepEqual(warnings.map((w) => w.path), ['jwt.claims[0].name']);
    assert.deepEqual(config.jwt!.claims, [{ claim: 'role', operator: 'in', value: ['a', 'b'] }]);
    assert.deepEqual(config.buckets[0].auth!.claims, [{ claim: 'tenant', operator: 'equals', value: 'acme' }]);
  });

  it('keys[] with id/algorithm/secret/path, jwks_url and its interval', () => {
    const { config, warnings } = load(`jwt:
  algorithm: RS256
  jwks_url: https://idp.example/.well-known/jwks.json?tenant=a
  jwks_refresh_interval_secs: 1800
  keys:
    - {id: k1, algorithm: HS256, secret: one}
    - {id: k2, algorithm: RS256, path: /etc/karasu/k2.pem}
    - {id: k3, algorithm: ES256, ecdsa_public_key_path: /etc/karasu/k3.pem}
buckets:
${bucket('    auth: {enabled: true}\n')}`);
    assert.deepEqual(warnings.map((w) => w.path), ['jwt.keys[2].ecdsa_public_key_path']);
    assert.deepEqual(config.jwt!.keys, [
      { id: 'k1', algorithm: 'HS256', secret: 'one', path: null },
      { id: 'k2', algorithm: 'RS256', secret: null, path: '/etc/karasu/k2.pem' },
      { id: 'k3', algorithm: 'ES256', secret: null, path: '/etc/karasu/k3.pem' },
    ]);
    assert.equal(config.jwt!.jwks_url, 'https://idp.example/.well-known/jwks.json?tenant=a');
    assert.equal(config.jwt!.jwks_refresh_interval_secs, 1800);
  });
});

describe('key material must fit the algorithm (no confusion by configuration)', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['{algorithm: RS256, secret: x}', 'jwt.algorithm', /`RS256` is not an HMAC algorithm/],
    ['{algorithm: HS256, rsa_public_key_path: /k.pem}', 'jwt.algorithm', /`HS256` cannot be used with an RSA key/],
    ['{algorithm: ES256, rsa_public_key_path: /k.pem}', 'jwt.algorithm', /cannot be used with an RSA key/],
    ['{algorithm: RS256, ecdsa_public_key_path: /k.pem}', 'jwt.algorithm', /cannot be used with an EC key/],
    ['{algorithm: HS384, public_key_path: /k.pem}', 'jwt.algorithm', /is an HMAC algorithm/],
    ['{secret: x}', 'jwt.algorithm', /is required with `secret` \(e\.g\. HS256\)/],
    ['{algorithm: HS256, secret: x, rsa_public_key_path: /k.pem}', 'jwt.rsa_public_key_path', /cannot be combined with `secret`/],
    ['{algorithm: HS256}', 'jwt', /has no key to verify tokens with/],
    ['{keys: [{id: a, algorithm: HS256}]}', 'jwt.keys[0]', /needs `secret` \(HS\*\) or `path`/],
    ['{keys: [{id: a, algorithm: HS256, secret: x, path: /k.pem}]}', 'jwt.keys[0]', /not both/],
    ['{keys: [{id: a, algorithm: RS256, secret: x}]}', 'jwt.keys[0].algorithm', /not an HMAC algorithm/],
    ['{keys: [{id: a, algorithm: HS256, path: /k.pem}]}', 'jwt.keys[0].algorithm', /is an HMAC algorithm/],
    ['{keys: [{id: a, algorithm: HS256, secret: x}, {id: a, algorithm: HS256, secret: y}]}', 'jwt.keys[1].id', /duplicate key id/],
    ['{keys: [{id: a, secret: x}]}', 'jwt.keys[0].algorithm', /missing required key `algorithm`/],
    ['{algorithm: none, secret: x}', 'jwt.algorithm', /must be one of/],
    ['{jwks_url: "ftp://idp/keys"}', 'jwt.jwks_url', /is not an http:\/\/ or https:\/\/ URL/],
    ['{jwks_url: "https://u:p@idp/keys"}', 'jwt.jwks_url', /must not carry credentials/],
  ];
  for (const [jwt, path, message] of cases) {
    it(`jwt: ${jwt}`, () => assertOneError(`jwt: ${jwt}\nbuckets:\n${bucket()}`, path, message));
  }
});

describe('token sources and claim rules', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['token_sources: [{type: header}]', 'jwt.token_sources[0].name', /missing required key `name`/],
    ['token_sources: [{type: query}]', 'jwt.token_sources[0].name', /query parameter/],
    ['token_sources: [{type: header, name: "X Token"}]', 'jwt.token_sources[0].name', /not a valid HTTP header name/],
    ['token_sources: [{type: cookie, name: t}]', 'jwt.token_sources[0].type', /must be one of `bearer`, `header`, `query`/],
    ['token_sources: []', 'jwt.token_sources', /at least 1 item/],
    ['claims: [{operator: equals, value: x}]', 'jwt.claims[0].claim', /missing required key `claim`/],
    ['claims: [{claim: role, operator: in, value: admin}]', 'jwt.claims[0].value', /`in` needs a non-empty list/],
    ['claims: [{claim: role, operator: equals}]', 'jwt.claims[0]', /`equals` needs a `value`/],
    ['claims: [{claim: role, operator: regex, value: "("}]', 'jwt.claims[0].value', /not a valid regular expression/],
    ['claims: [{claim: n, operator: gt, value: "5"}]', 'jwt.claims[0].value', /`gt` needs a number/],
    ['claims: [{claim: role, operator: matches, value: x}]', 'jwt.claims[0].operator', /must be one of/],
    ['admin_claims: [{claim: role, operator: exists, value: maybe}]', 'jwt.admin_claims[0].value', /`exists` takes no value/],
  ];
  for (const [extra, path, message] of cases) {
    it(extra, () => assertOneError(`jwt:\n  algorithm: HS256\n  secret: x\n  ${extra}\nbuckets:\n${bucket()}`, path, message));
  }

  it('admin_claims only at the top level', () => {
    assertOneError(
      `buckets:\n${bucket('    auth:\n      enabled: true\n      jwt: {algorithm: HS256, secret: x, admin_claims: []}\n')}`,
      'buckets[0].auth.jwt.admin_claims',
      /read from the top-level `jwt` only/,
    );
  });

  it('warns about keys that do nothing', () => {
    const { warnings } = load(
      `jwt:\n  keys: [{id: a, algorithm: HS256, secret: x}]\n  algorithm: HS256\n  jwks_refresh_interval_secs: 10\n  token_sources: [{type: bearer, name: X}, {type: query, name: t, prefix: "x"}]\nbuckets:\n${bucket()}`,
    );
    assert.deepEqual(
      warnings.map((w) => w.path),
      ['jwt', 'jwt.algorithm', 'jwt.jwks_refresh_interval_secs', 'jwt.token_sources[0].name', 'jwt.token_sources[1].prefix'],
    );
    assert.match(warnings[0].message, /^has no effect: no bucket uses it/);
  });

  it('a top-level jwt used by a bucket or by admin_claims is not "unused"', () => {
    assert.deepEqual(load(`jwt: {algorithm: HS256, secret: x}\nbuckets:\n${bucket('    auth: {enabled: true}\n')}`).warnings, []);
    const adminOnly = `jwt:\n  algorithm: HS256\n  secret: x\n  admin_claims: [{claim: role, operator: equals, value: admin}]\nbuckets:\n${bucket()}`;
    assert.deepEqual(load(adminOnly).warnings, []);
  });
});
