// What the audit log must never contain: credentials. Request headers that carry them (Authorization,
// Cookie, tokens) are never copied into a record; the paths recorded have no query string; the Referer —
// a URL the client chose to send — keeps its query, but the values of parameters that look like secrets
// (token, jwt, signature, key, password, …) and any user:password@ are replaced.

export const REDACTED = '[REDACTED]';

const SECRET_PARAM = /token|jwt|auth|sig|secret|passw|pwd|key|credential|session|code|ticket|apikey/i;
const QUERY_PAIR = /([?&;])([^=&;#]*)=([^&;#]*)/g;
const USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)[^/@?#]*@/i;

/** Longest user agent / referer kept; the rest is cut (a header can be tens of kilobytes). */
export const MAX_FIELD = 1024;

/** A URL with secret-looking query values and userinfo replaced. */
export function redactUrl(url: string): string {
  let out = url.length > MAX_FIELD ? url.slice(0, MAX_FIELD) : url;
  if (out.includes('@')) out = out.replace(USERINFO, `$1${REDACTED}@`);
  if (!out.includes('?')) return out;
  const q = out.indexOf('?');
  return out.slice(0, q) + out.slice(q).replace(QUERY_PAIR, (all, sep: string, name: string) => {
    let decoded = name;
    try {
      decoded = decodeURIComponent(name);
    } catch {
      // keep the raw name
    }
    return SECRET_PARAM.test(decoded) ? `${sep}${name}=${REDACTED}` : all;
  });
}

/** A header value for the log: a string, cut to MAX_FIELD, or null when absent. */
export function headerText(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  const text = Array.isArray(value) ? value.join(', ') : value;
  return text.length > MAX_FIELD ? text.slice(0, MAX_FIELD) : text;
}
