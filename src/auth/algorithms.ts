// The JWS algorithms Karasu accepts, and which ones a given key may be used with. The key decides: an
// HMAC secret only ever verifies HS*, an RSA key RS*/PS*, an EC key the ES* of its curve, an Ed25519 key
// EdDSA. That is what makes algorithm confusion (an HS256 token "signed" with an RSA public key) and
// `alg: none` impossible.
import type { KeyObject } from 'node:crypto';

export const JWT_ALGORITHMS = [
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'EdDSA',
] as const;

export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

const SUPPORTED: ReadonlySet<string> = new Set(JWT_ALGORITHMS);

export function isSupportedAlgorithm(alg: unknown): alg is JwtAlgorithm {
  return typeof alg === 'string' && SUPPORTED.has(alg);
}

export const HMAC_ALGORITHMS: readonly JwtAlgorithm[] = ['HS256', 'HS384', 'HS512'];
const RSA: readonly JwtAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
const RSA_PSS: readonly JwtAlgorithm[] = ['PS256', 'PS384', 'PS512'];

export function isHmac(alg: JwtAlgorithm): boolean {
  return alg.startsWith('HS');
}

/** The algorithms a public key can verify, from its type (and curve); empty when Karasu cannot use it. */
export function algorithmsForKey(key: KeyObject): readonly JwtAlgorithm[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return RSA;
    case 'rsa-pss':
      return RSA_PSS;
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1') return ['ES256'];
      if (curve === 'secp384r1') return ['ES384'];
      return [];
    }
    case 'ed25519':
      return ['EdDSA'];
    default:
      return [];
  }
}

/** "an RSA key", "an EC P-256 key", … for load errors. */
export function describeKey(key: KeyObject): string {
  switch (key.asymmetricKeyType) {
    case 'rsa':
    case 'rsa-pss':
      return `an RSA key (${key.asymmetricKeyDetails?.modulusLength ?? '?'} bits)`;
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      const name = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : curve === 'secp521r1' ? 'P-521' : curve;
      return `an EC ${name} key`;
    }
    case 'ed25519':
      return 'an Ed25519 key';
    default:
      return `a key of type ${key.asymmetricKeyType ?? 'unknown'}`;
  }
}
