// Key material: the secret, PEM files and `keys[]` of one JWT block, read when a snapshot is built (start
// and every reload, never per request), and JWKS entries turned into the same shape. Each key carries
// the only algorithms it may verify (see algorithms.ts).
import { createPublicKey, webcrypto, type JsonWebKeyInput, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { JwtConfig } from '../config/types-auth.js';
import { algorithmsForKey, describeKey, isSupportedAlgorithm, type JwtAlgorithm } from './algorithms.js';

export interface VerificationKey {
  /** `keys[].id` or the JWKS `kid`; null for a block's single key (and JWKS keys without `kid`). */
  readonly kid: string | null;
  /** A public KeyObject, or an HMAC secret imported once for its one algorithm. */
  readonly key: KeyObject | webcrypto.CryptoKey;
  readonly algorithms: ReadonlySet<JwtAlgorithm>;
  /** A JWKS key that names no `alg`: its algorithms come from its type (see TokenVerifier). */
  readonly inferred: boolean;
  /** Where it came from, for logs: `jwt.secret`, `buckets[1].auth.jwt.keys[0]`, `https://…#kid`. */
  readonly origin: string;
}

/** A key file or secret that cannot be used; the message starts with the key path. */
export class KeyMaterialError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
    this.name = 'KeyMaterialError';
  }
}

const encoder = new TextEncoder();

/** Imported once: jose would otherwise import raw secret bytes on every verification. */
function hmacKey(secret: string, alg: JwtAlgorithm): Promise<webcrypto.CryptoKey> {
  return webcrypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: `SHA-${alg.slice(2)}` }, false, ['verify']);
}

/** The block's single key and `keys[]`, files read now. Throws KeyMaterialError naming the key. */
export async function loadStaticKeys(jwt: JwtConfig): Promise<VerificationKey[]> {
  const keys: VerificationKey[] = [];
  const alg = jwt.algorithm;
  if (jwt.secret !== null && alg) {
    keys.push({ kid: null, key: await hmacKey(jwt.secret, alg), algorithms: new Set([alg]), inferred: false, origin: `${jwt.path}.secret` });
  }
  for (const field of ['rsa_public_key_path', 'ecdsa_public_key_path', 'public_key_path'] as const) {
    const file = jwt[field];
    if (file === null || !alg) continue;
    const path = `${jwt.path}.${field}`;
    const key = await readPublicKey(file, path);
    checkFits(key, alg, path, field);
    keys.push({ kid: null, key, algorithms: new Set([alg]), inferred: false, origin: path });
  }
  for (const [i, k] of jwt.keys.entries()) {
    const path = `${jwt.path}.keys[${i}]`;
    if (k.secret !== null) {
      keys.push({ kid: k.id, key: await hmacKey(k.secret, k.algorithm), algorithms: new Set([k.algorithm]), inferred: false, origin: path });
    } else if (k.path !== null) {
      const key = await readPublicKey(k.path, `${path}.path`);
      checkFits(key, k.algorithm, `${path}.algorithm`, 'public_key_path');
      keys.push({ kid: k.id, key, algorithms: new Set([k.algorithm]), inferred: false, origin: path });
    }
  }
  return keys;
}

async function readPublicKey(file: string, path: string): Promise<KeyObject> {
  const absolute = resolve(file);
  let text: string;
  try {
    text = await readFile(absolute, 'utf8');
  } catch (err) {
    throw new KeyMaterialError(path, `cannot read ${absolute}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    throw new KeyMaterialError(path, `${absolute} holds a private key; give Karasu the public key (or certificate) only`);
  }
  try {
    return createPublicKey(text);
  } catch (err) {
    throw new KeyMaterialError(path, `${absolute} is not a PEM public key or certificate (${(err as Error).message})`);
  }
}

const FIELD_TYPES: Record<string, readonly string[] | undefined> = {
  rsa_public_key_path: ['rsa', 'rsa-pss'],
  ecdsa_public_key_path: ['ec'],
};

function checkFits(key: KeyObject, alg: JwtAlgorithm, path: string, field: string): void {
  const types = FIELD_TYPES[field];
  if (types && !types.includes(key.asymmetricKeyType ?? '')) {
    throw new KeyMaterialError(path, `holds ${describeKey(key)}; \`${field}\` expects ${field.startsWith('rsa') ? 'an RSA' : 'an EC'} key`);
  }
  if (!algorithmsForKey(key).includes(alg)) {
    throw new KeyMaterialError(path, `holds ${describeKey(key)}, which cannot verify ${alg}`);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (bits !== undefined && bits < 2048) throw new KeyMaterialError(path, `holds ${describeKey(key)}; RSA keys need at least 2048 bits`);
}

/**
 * One JWKS entry as a key, or a reason it is skipped: symmetric and encryption keys, unknown types and
 * algorithms, and RSA keys under 2048 bits are never used.
 */
export function keyFromJwk(jwk: unknown, origin: string): VerificationKey | string {
  if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) return 'not an object';
  const entry = jwk as Record<string, unknown>;
  const kid = typeof entry.kid === 'string' ? entry.kid : null;
  if (entry.use !== undefined && entry.use !== 'sig') return `use is ${JSON.stringify(entry.use)}, not "sig"`;
  if (entry.kty === 'oct') return 'symmetric keys are not accepted from a JWKS URL';
  if (entry.alg !== undefined && !isSupportedAlgorithm(entry.alg)) return `algorithm ${JSON.stringify(entry.alg)} is not accepted`;
  let key: KeyObject;
  try {
    // Only the public members: a JWKS that (wrongly) publishes a private key is still read as public.
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, k: _k, ...pub } = entry;
    key = createPublicKey({ key: pub, format: 'jwk' } as JsonWebKeyInput);
  } catch (err) {
    return `not a usable public key (${(err as Error).message})`;
  }
  const possible = algorithmsForKey(key);
  if (possible.length === 0) return `${describeKey(key)} cannot verify any accepted algorithm`;
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (bits !== undefined && bits < 2048) return `${describeKey(key)}: RSA keys need at least 2048 bits`;
  if (isSupportedAlgorithm(entry.alg)) {
    if (!possible.includes(entry.alg)) return `alg ${entry.alg} does not fit ${describeKey(key)}`;
    return { kid, key, algorithms: new Set([entry.alg]), inferred: false, origin: `${origin}#${kid ?? '(no kid)'}` };
  }
  return { kid, key, algorithms: new Set(possible), inferred: true, origin: `${origin}#${kid ?? '(no kid)'}` };
}
