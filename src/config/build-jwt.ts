// The semantic pass for JWT settings: key material matches the algorithm, token sources are complete,
// claim rule values fit their operator, and a bucket that asks for authentication gets some (Yatagarasu
// silently served `auth.enabled: true` buckets without auth when no top-level `jwt` existed). Key files
// are read when a snapshot is built (runtime/snapshot.ts), not here: loading stays synchronous.
import { isHmac, type JwtAlgorithm } from '../auth/algorithms.js';
import { checkRuleValue, type ClaimRule } from '../auth/claims.js';
import { headerName } from './checks.js';
import type { Issues, SourceMap } from './issues.js';
import type { RawBucket, RawConfig } from './schema.js';
import type { BucketAuthConfig, JwtConfig, JwtKeyConfig, TokenSourceConfig } from './types-auth.js';

type RawJwt = NonNullable<RawConfig['jwt']>;
type RawBucketJwt = NonNullable<NonNullable<RawBucket['auth']>['jwt']>;
type RawRule = RawJwt['claims'][number];

const SINGLE_KEYS = ['secret', 'rsa_public_key_path', 'ecdsa_public_key_path', 'public_key_path'] as const;

/** The top-level `jwt`; null when absent or `enabled: false`. */
export function buildGlobalJwt(raw: RawConfig['jwt'], issues: Issues, source: SourceMap): JwtConfig | null {
  if (!raw) return null;
  if (!raw.enabled) {
    warnInert('jwt', issues, source, 'has no effect: `jwt.enabled` is false');
    return null;
  }
  return buildJwt(raw, 'jwt', issues, source, raw.admin_claims);
}

/** `buckets[i].auth`: null when the bucket is public. */
export function buildBucketAuth(
  raw: RawBucket,
  path: string,
  global: JwtConfig | null,
  globalGiven: boolean,
  issues: Issues,
  source: SourceMap,
): BucketAuthConfig | null {
  const auth = raw.auth;
  if (!auth) return null;
  const at = `${path}.auth`;
  const own = auth.jwt && auth.jwt.enabled ? buildJwt(auth.jwt, `${at}.jwt`, issues, source, []) : null;
  if (auth.jwt && !auth.jwt.enabled) {
    warnInert(`${at}.jwt`, issues, source, `has no effect: \`${at}.jwt.enabled\` is false (the top-level \`jwt\` applies)`);
  }
  const claims = rules(auth.claims_verification, `${at}.claims_verification`, issues);
  if (!auth.enabled) {
    const given = ['jwt', 'claims_verification'].filter((k) => source.given(`${at}.${k}`));
    if (given.length > 0) issues.warn(`${at}.${given[0]}`, `has no effect: \`${at}.enabled\` is false (the bucket is public)`);
    return null;
  }
  const jwt = own ?? global;
  if (!jwt) {
    const why = globalGiven ? 'the top-level `jwt` is disabled (`jwt.enabled: false`)' : 'there is no top-level `jwt`';
    issues.error(
      `${at}.enabled`,
      `is true but no JWT settings apply: ${why} and the bucket has no \`auth.jwt\`; refusing to serve bucket \`${raw.name}\` without the authentication its config asks for`,
    );
    return null;
  }
  return { jwt, claims };
}

/** A top-level `jwt` that no bucket falls back to and that grants no admin access does nothing. */
export function warnUnusedJwt(jwt: JwtConfig | null, buckets: ReadonlyArray<{ auth: BucketAuthConfig | null }>, issues: Issues): void {
  if (!jwt || jwt.admin_claims.length > 0 || buckets.some((b) => b.auth?.jwt === jwt)) return;
  issues.warn(
    'jwt',
    'has no effect: no bucket uses it (`auth.enabled: true` without its own `auth.jwt`) and `admin_claims` is empty (JWTs grant no admin access without it)',
  );
}

function buildJwt(raw: RawJwt | RawBucketJwt, path: string, issues: Issues, source: SourceMap, adminRaw: RawRule[]): JwtConfig {
  const singles = SINGLE_KEYS.filter((k) => raw[k] !== undefined);
  if (singles.length > 1) {
    issues.error(
      `${path}.${singles[1]}`,
      `cannot be combined with \`${singles[0]}\`: one block has one single key (use \`keys\` for several, each with its own algorithm)`,
    );
  }
  const single = singles[0];
  if (single !== undefined) {
    if (raw.algorithm === undefined) {
      issues.error(`${path}.algorithm`, `is required with \`${single}\` (e.g. ${example(single)})`);
    } else {
      const problem = algorithmFits(single, raw.algorithm);
      if (problem) issues.error(`${path}.algorithm`, problem, 'value');
    }
  } else if (raw.algorithm !== undefined && raw.jwks_url === undefined) {
    issues.warn(
      `${path}.algorithm`,
      'has no effect: it names the algorithm of `secret` or a public key file (or of JWKS keys without `alg`), and none is set',
    );
  }
  const keys = raw.keys.map((k, i) => key(k, `${path}.keys[${i}]`, issues));
  const ids = new Map<string, number>();
  keys.forEach((k, i) => {
    const earlier = ids.get(k.id);
    if (earlier === undefined) ids.set(k.id, i);
    else issues.error(`${path}.keys[${i}].id`, `duplicate key id (also \`${path}.keys[${earlier}].id\`)`, 'value');
  });
  if (single === undefined && keys.length === 0 && raw.jwks_url === undefined) {
    issues.error(
      path,
      'has no key to verify tokens with: set `secret`, `rsa_public_key_path`, `ecdsa_public_key_path`, `public_key_path`, `keys` or `jwks_url`',
    );
  }
  if (raw.jwks_url === undefined) {
    for (const k of ['jwks_refresh_interval_secs', 'jwks_refresh_cooldown_secs']) {
      if (source.given(`${path}.${k}`)) issues.warn(`${path}.${k}`, 'has no effect without `jwks_url`');
    }
  }
  return {
    path,
    algorithm: raw.algorithm ?? null,
    secret: raw.secret ?? null,
    rsa_public_key_path: raw.rsa_public_key_path ?? null,
    ecdsa_public_key_path: raw.ecdsa_public_key_path ?? null,
    public_key_path: raw.public_key_path ?? null,
    keys,
    jwks_url: raw.jwks_url ?? null,
    jwks_refresh_interval_secs: raw.jwks_refresh_interval_secs,
    jwks_refresh_cooldown_secs: raw.jwks_refresh_cooldown_secs,
    token_sources: tokenSources(raw.token_sources, `${path}.token_sources`, issues),
    claims: rules(raw.claims, `${path}.claims`, issues),
    admin_claims: rules(adminRaw, `${path}.admin_claims`, issues),
    issuer: raw.issuer ?? null,
    audience: raw.audience,
    leeway_seconds: raw.leeway_seconds,
  };
}

function key(raw: RawJwt['keys'][number], path: string, issues: Issues): JwtKeyConfig {
  const secret = raw.secret ?? null;
  const file = raw.path ?? null;
  if ((secret === null) === (file === null)) {
    issues.error(path, secret === null ? 'needs `secret` (HS*) or `path` (a PEM public key)' : 'set `secret` or `path`, not both');
  } else if (raw.algorithm !== undefined) {
    const problem = algorithmFits(secret !== null ? 'secret' : 'public_key_path', raw.algorithm);
    if (problem) issues.error(`${path}.algorithm`, problem, 'value');
  }
  return { id: raw.id, algorithm: raw.algorithm, secret, path: file };
}

/** Which algorithms go with which key field: the first line of defence against algorithm confusion. */
function algorithmFits(field: (typeof SINGLE_KEYS)[number], alg: JwtAlgorithm): string | undefined {
  switch (field) {
    case 'secret':
      return isHmac(alg) ? undefined : `\`${alg}\` is not an HMAC algorithm; \`secret\` verifies HS256, HS384 or HS512 only`;
    case 'rsa_public_key_path':
      return /^(RS|PS)/.test(alg) ? undefined : `\`${alg}\` cannot be used with an RSA key (\`rsa_public_key_path\`): use RS256/384/512 or PS256/384/512`;
    case 'ecdsa_public_key_path':
      return alg === 'ES256' || alg === 'ES384' ? undefined : `\`${alg}\` cannot be used with an EC key (\`ecdsa_public_key_path\`): use ES256 or ES384`;
    case 'public_key_path':
      return isHmac(alg) ? `\`${alg}\` is an HMAC algorithm; a public key file verifies RS*, PS*, ES* or EdDSA` : undefined;
  }
}

function example(field: (typeof SINGLE_KEYS)[number]): string {
  return { secret: 'HS256', rsa_public_key_path: 'RS256', ecdsa_public_key_path: 'ES256', public_key_path: 'RS256, ES256 or EdDSA' }[field];
}

function tokenSources(raw: RawJwt['token_sources'], path: string, issues: Issues): TokenSourceConfig[] {
  if (raw === undefined) return [{ type: 'bearer' }];
  return raw.map((s, i): TokenSourceConfig => {
    const at = `${path}[${i}]`;
    if (s.type === 'bearer') {
      for (const k of ['name', 'prefix'] as const) {
        if (s[k] !== undefined) issues.warn(`${at}.${k}`, '`bearer` always reads `Authorization: Bearer <token>`; has no effect (use `type: header` for another header)');
      }
      return { type: 'bearer' };
    }
    if (s.name === undefined) {
      issues.error(`${at}.name`, `missing required key \`name\` (the ${s.type === 'header' ? 'header' : 'query parameter'} holding the token)`);
      return { type: 'bearer' };
    }
    if (s.type === 'header') {
      const bad = headerName(s.name);
      if (bad) issues.error(`${at}.name`, bad, 'value');
      return { type: 'header', name: s.name.toLowerCase(), prefix: s.prefix ?? null };
    }
    if (s.prefix !== undefined) issues.warn(`${at}.prefix`, 'has no effect for `type: query`');
    return { type: 'query', name: s.name };
  });
}

function rules(raw: RawRule[], path: string, issues: Issues): ClaimRule[] {
  const out: ClaimRule[] = [];
  raw.forEach((r, i) => {
    const at = `${path}[${i}]`;
    if (r.claim === undefined) {
      issues.error(`${at}.claim`, 'missing required key `claim` (the claim name or dot-path)');
      return;
    }
    const value = r.value ?? undefined;
    const problem = checkRuleValue(r.operator, value);
    if (problem) {
      issues.error(r.value === undefined || r.value === null ? at : `${at}.value`, problem, 'value');
      return;
    }
    out.push(value === undefined ? { claim: r.claim, operator: r.operator } : { claim: r.claim, operator: r.operator, value });
  });
  return out;
}

function warnInert(path: string, issues: Issues, source: SourceMap, message: string): void {
  const given = source.givenPaths().filter((p) => p.startsWith(`${path}.`) && p !== `${path}.enabled`);
  if (given.length > 0) issues.warn(path, message);
}
