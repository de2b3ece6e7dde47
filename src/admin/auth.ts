// Who may call the admin API (PRODUCT §5):
//   - a JWT from the top-level `jwt` token sources that meets `jwt.admin_claims` (snapshot.adminAuth), or
//   - the static `admin.token`, as `Authorization: Bearer <token>`, compared in constant time;
//   - with neither configured, only loopback clients — and not a request relayed by a proxy on the same
//     host (one carrying X-Forwarded-For / Forwarded / X-Real-IP), which would make everyone "local".
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isLoopback } from '../http/client-ip.js';
import { HttpError } from '../http/errors.js';
import type { Snapshot } from '../runtime/snapshot.js';

export interface AdminIdentity {
  /** JWT `sub`; `static-token` for the static token; null for an unauthenticated loopback caller. */
  user: string | null;
  via: 'jwt' | 'token' | 'loopback';
}

const CHALLENGE = 'Bearer realm="karasu-admin"';
const digests = new WeakMap<object, Buffer>();

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** The configured token's digest, computed once per configuration. */
function tokenDigest(admin: Snapshot['config']['admin']): Buffer | null {
  if (admin.token === null) return null;
  let d = digests.get(admin);
  if (!d) {
    d = digest(admin.token);
    digests.set(admin, d);
  }
  return d;
}

function bearer(req: IncomingMessage): string | null {
  const header = req.headers.authorization;
  if (typeof header !== 'string') return null;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return m ? m[1] : null;
}

/** Equal-length digests compared with timingSafeEqual: no early exit, no length leak. */
export function tokenMatches(given: string, expected: Buffer): boolean {
  return timingSafeEqual(digest(given), expected);
}

export async function authenticateAdmin(req: IncomingMessage, snapshot: Snapshot): Promise<AdminIdentity> {
  const expected = tokenDigest(snapshot.config.admin);
  const jwt = snapshot.adminAuth;
  if (expected === null && jwt === null) {
    const relayed = req.headers['x-forwarded-for'] !== undefined || req.headers.forwarded !== undefined || req.headers['x-real-ip'] !== undefined;
    if (isLoopback(req.socket.remoteAddress) && !relayed) return { user: null, via: 'loopback' };
    throw new HttpError(
      403,
      'AdminLoopbackOnly',
      'The admin API answers only loopback clients: no admin token (`admin.token`) or admin JWT (`jwt.admin_claims`) is configured',
    );
  }
  const given = bearer(req);
  if (expected !== null && given !== null && tokenMatches(given, expected)) return { user: 'static-token', via: 'token' };
  if (jwt !== null) {
    const { sub } = await jwt.authenticate(req);
    return { user: sub, via: 'jwt' };
  }
  if (given === null) {
    throw new HttpError(401, 'Unauthorized', 'Authentication required: send the admin token as `Authorization: Bearer <token>`', {
      'www-authenticate': CHALLENGE,
    });
  }
  throw new HttpError(401, 'InvalidToken', 'Authentication failed: the admin token is not valid', {
    'www-authenticate': `${CHALLENGE}, error="invalid_token"`,
  });
}
