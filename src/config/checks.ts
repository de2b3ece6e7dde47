// Value checks shared by the schema. Each returns an error message, or undefined when the value is fine.
import { isIP } from 'node:net';

export function ipOrCidr(value: string): string | undefined {
  const [address, prefix, extra] = value.split('/');
  const family = isIP(address ?? '');
  if (family === 0 || extra !== undefined) return `\`${value}\` is not an IP address or CIDR range`;
  if (prefix === undefined) return undefined;
  const bits = Number(prefix);
  const max = family === 4 ? 32 : 128;
  if (!/^\d+$/.test(prefix) || bits > max) return `\`${value}\` has an invalid prefix length (0–${max})`;
  return undefined;
}

export function httpUrl(value: string): string | undefined {
  const url = parseUrl(value);
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
    return `\`${value}\` is not an http:// or https:// URL`;
  }
  if (url.search !== '' || url.hash !== '') return `\`${value}\` must not have a query or fragment`;
  if (url.username !== '' || url.password !== '') {
    return `\`${value}\` must not carry credentials; use access_key/secret_key`;
  }
  return undefined;
}

export function redisUrl(value: string): string | undefined {
  const url = parseUrl(value);
  if (!url || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
    return `\`${value}\` is not a redis:// or rediss:// URL`;
  }
  return undefined;
}

/** A CORS origin is compared byte for byte with the browser's `Origin` header, so it must be canonical. */
export function corsOrigin(value: string): string | undefined {
  if (value === '*') return undefined;
  const url = parseUrl(value);
  if (!url || url.origin === 'null') {
    return `\`${value}\` is not an origin (scheme://host[:port]) or "*"`;
  }
  if (url.origin !== value) {
    return `\`${value}\` is not an origin as browsers send it; did you mean \`${url.origin}\`?`;
  }
  return undefined;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export function headerName(value: string): string | undefined {
  return TOKEN.test(value) ? undefined : `\`${value}\` is not a valid HTTP header name`;
}

export function pathPrefix(value: string): string | undefined {
  if (!value.startsWith('/')) return `must start with '/' (got \`${value}\`)`;
  if (/[?#]/.test(value)) return `must not contain '?' or '#' (got \`${value}\`)`;
  const segments = value.replace(/\/+$/, '').split('/').slice(1);
  if (segments.some((s) => s === '')) return `must not contain empty segments ('//') (got \`${value}\`)`;
  if (segments.some((s) => s === '.' || s === '..')) {
    return `must not contain '.' or '..' segments (got \`${value}\`)`;
  }
  return undefined;
}

/** `/assets/` and `/assets` route identically; keep one spelling so uniqueness checks are meaningful. */
export function normalisePathPrefix(value: string): string {
  const trimmed = value.replace(/\/+$/, '');
  return trimmed === '' ? '/' : trimmed;
}

export function nonBlank(value: string): string | undefined {
  return value.trim() === '' ? 'must not be empty' : undefined;
}

function parseUrl(value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}

/** `host:port` or `[v6]:port`, port 1–65535. */
export function hostPort(value: string): string | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(value);
  if (!m || Number(m[3]) < 1 || Number(m[3]) > 65535) return `\`${value}\` is not \`host:port\` (e.g. 127.0.0.1:514)`;
  if (m[1] !== undefined && isIP(m[1]) !== 6) return `\`${value}\` has an invalid IPv6 address`;
  return undefined;
}

/** A static admin token must be hard to guess; a short one is almost always a placeholder. */
export function adminToken(value: string): string | undefined {
  if (value.length < 16) return `is ${value.length} characters long; use at least 16 (e.g. \`openssl rand -hex 32\`)`;
  if (/\s/.test(value)) return 'must not contain whitespace';
  return undefined;
}
