// The JWT block, written at the top level (`jwt`, Yatagarasu's global settings) and per bucket
// (`buckets[].auth.jwt`, which Yatagarasu documents but never read). Both places share one description;
// only `admin_claims` is top-level only. Cross-key rules (which key material goes with which algorithm,
// token source names) are in build-jwt.ts. docs/authentication.md is the reference.
import { JWT_ALGORITHMS } from '../auth/algorithms.js';
import { CLAIM_OPERATORS } from '../auth/claims.js';
import { nonBlank } from './checks.js';
import { alias, anything, bool, int, list, obj, oneOf, str, unavailable } from './schema-dsl.js';

const algorithm = (what: string) => oneOf(JWT_ALGORITHMS, what);
const requiredAlgorithm = (what: string) => oneOf(JWT_ALGORITHMS, what, { required: true });

export const claimRule = obj('A claim rule: the token passes when `claim` compared by `operator` with `value` holds.', {
  claim: str('Claim name (registered ones included: `sub`, `iss`, …) or dot-path into objects (`realm_access.roles`). Required.', {
    check: nonBlank,
  }),
  name: alias('claim', 'Yatagarasu documentation name of `claim`.'),
  operator: oneOf(CLAIM_OPERATORS, 'How the claim is compared with `value`.', { required: true }),
  value: anything('What the claim is compared with: a string/number/boolean, a list for `in`, a number for gt/gte/lt/lte, a regular expression for `regex`; `exists` takes none (or true/false).'),
});

const claimRules = (description: string) => list(claimRule, description, { default: [] });

const tokenSource = obj('Where a token is looked for.', {
  type: oneOf(['bearer', 'header', 'query'], '`bearer`: `Authorization: Bearer <token>`; `header`: the header `name`; `query`: the query parameter `name`.', {
    required: true,
  }),
  name: str('Header name (`header`) or query parameter name (`query`).', { check: nonBlank }),
  prefix: str('`header` only: text the header value starts with, removed before the token (e.g. `"Bearer "`); compared case-insensitively.'),
});

const key = obj('One verification key, selected by the token header’s `kid`.', {
  id: str('Key id: tokens whose `kid` equals it are verified with this key.', { required: true, check: nonBlank }),
  algorithm: requiredAlgorithm('The one algorithm this key verifies.'),
  secret: str('HMAC secret (HS256/384/512), UTF-8 bytes.', { emptyIsAbsent: true }),
  path: str('PEM file with the public key or an X.509 certificate (RS*, PS*, ES*, EdDSA); read at load and reload.', {
    emptyIsAbsent: true,
  }),
  rsa_public_key_path: alias('path', 'Yatagarasu plan name of `path`.'),
  ecdsa_public_key_path: alias('path', 'Yatagarasu plan name of `path`.'),
});

function jwtFields(where: 'global' | 'bucket') {
  return {
    enabled: bool(
      where === 'global'
        ? 'Use this block: buckets with `auth.enabled: true` and no `auth.jwt` of their own, and the admin API (`admin_claims`).'
        : 'Use this block for this bucket (false: the top-level `jwt` applies, as if the block were absent).',
      { default: true },
    ),
    algorithm: algorithm(
      'Algorithm of `secret` / `rsa_public_key_path` / `ecdsa_public_key_path` / `public_key_path`; with `jwks_url`, the algorithm assumed for keys that do not name one.',
    ),
    secret: str('HMAC secret (HS256/384/512), UTF-8 bytes.', { emptyIsAbsent: true }),
    rsa_public_key_path: str('PEM file with an RSA public key or certificate (RS*, PS*); read at load and reload.', { emptyIsAbsent: true }),
    ecdsa_public_key_path: str('PEM file with an EC P-256/P-384 public key or certificate (ES256/ES384); read at load and reload.', {
      emptyIsAbsent: true,
    }),
    public_key_path: str('PEM file with any supported public key or certificate (RSA, EC, Ed25519) (Karasu extension).', {
      emptyIsAbsent: true,
    }),
    keys: list(key, 'Keys selected by the token’s `kid`; a token without `kid` is tried against every key.', { default: [] }),
    jwks_url: str('JWKS URL: keys fetched at start, refreshed on an interval and when a token names an unknown `kid`.', {
      emptyIsAbsent: true,
      check: jwksUrl,
    }),
    jwks_refresh_interval_secs: int('Seconds between scheduled JWKS refreshes.', { default: 3600, minimum: 1 }),
    jwks_refresh_interval_seconds: alias('jwks_refresh_interval_secs', 'Yatagarasu plan name of `jwks_refresh_interval_secs`.'),
    jwks_refresh_cooldown_secs: int('Least seconds between two refreshes triggered by unknown `kid`s (Karasu extension).', {
      default: 30,
      minimum: 0,
    }),
    token_sources: list(tokenSource, 'Where the token is looked for, in order; the first source present is used. Absent: `[{type: bearer}]`.', {
      minItems: 1,
    }),
    claims: claimRules('Claim rules every token must pass (ANDed); failing one → 403.'),
    claims_verification: alias('claims', 'Yatagarasu documentation name of `claims`.'),
    admin_claims:
      where === 'global'
        ? claimRules('Claim rules an admin API token must pass (ANDed). Empty: JWTs are not accepted by the admin API.')
        : unavailable('Admin claim rules.', '`admin_claims` is read from the top-level `jwt` only (the admin API is not per bucket)'),
    issuer: str('Required `iss` (Karasu extension).', { emptyIsAbsent: true }),
    audience: list(str('An audience.', { check: nonBlank }), 'The token’s `aud` must contain one of these (Karasu extension).', {
      default: [],
    }),
    leeway_seconds: int('Clock skew allowed when checking `exp` and `nbf` (Karasu extension).', { default: 60, minimum: 0 }),
  };
}

export const globalJwt = obj('JWT authentication settings (docs/authentication.md).', jwtFields('global'), { optional: true });

export const bucketAuth = obj(
  'Per-bucket authentication.',
  {
    enabled: bool('Require a valid JWT for every request to this bucket.', { required: true }),
    jwt: obj('This bucket’s own JWT settings; they replace the top-level `jwt` for this bucket.', jwtFields('bucket'), { optional: true }),
    claims_verification: claimRules('Claim rules for this bucket, ANDed after those of the JWT settings that apply.'),
  },
  { optional: true },
);

/** An http(s) URL without credentials; unlike S3 endpoints a query is allowed. */
function jwksUrl(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `\`${value}\` is not an http:// or https:// URL`;
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') return `\`${value}\` is not an http:// or https:// URL`;
  if (url.username !== '' || url.password !== '') return `\`${value}\` must not carry credentials`;
  if (url.hash !== '') return `\`${value}\` must not have a fragment`;
  return undefined;
}
