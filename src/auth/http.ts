// How an authentication failure is answered (RFC 6750): 401 with `WWW-Authenticate: Bearer` for a
// missing, malformed, badly signed or expired token (the `error` attribute only when a token was sent),
// 403 for a valid token that fails a claim rule, 503 while the keys to verify with are not loaded yet.
import { HttpError } from '../http/errors.js';
import { AuthFailure } from './verifier.js';

export const REALM = 'karasu';

const CHALLENGE = `Bearer realm="${REALM}"`;

export function authHttpError(failure: AuthFailure): HttpError {
  switch (failure.kind) {
    case 'missing':
      return new HttpError(401, 'Unauthorized', failure.message, { 'www-authenticate': CHALLENGE });
    case 'invalid':
      return new HttpError(401, 'InvalidToken', failure.message, { 'www-authenticate': `${CHALLENGE}, error="invalid_token"` });
    case 'expired':
      return new HttpError(401, 'TokenExpired', failure.message, { 'www-authenticate': `${CHALLENGE}, error="invalid_token"` });
    case 'forbidden':
      return new HttpError(403, 'Forbidden', failure.message, { 'www-authenticate': `${CHALLENGE}, error="insufficient_scope"` });
    case 'unavailable':
      return new HttpError(503, 'AuthUnavailable', failure.message, { 'retry-after': '5' });
  }
}

export const missingToken = (): AuthFailure => new AuthFailure('missing', 'A token is required');
