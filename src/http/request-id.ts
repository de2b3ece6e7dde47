import { randomUUID } from 'node:crypto';

// An incoming id is honoured only when it is a sane token: it ends up in logs and response headers.
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdFrom(headers: Record<string, string | string[] | undefined>): string {
  const incoming = headers['x-request-id'] ?? headers['x-correlation-id'];
  if (typeof incoming === 'string' && SANE_ID.test(incoming)) return incoming;
  return randomUUID();
}
