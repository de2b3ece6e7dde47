// JWT test kit: keys generated with jose (RSA, EC, Ed25519, HMAC), PEM files in a temp dir, tokens, and
// a real JWKS HTTP server on loopback whose key set can rotate, go down and come back.
import { KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

export type Alg = 'HS256' | 'HS384' | 'HS512' | 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'EdDSA';

export const ALL_ALGS: Alg[] = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA'];

export interface AsymmetricKey {
  alg: Alg;
  /** A KeyObject: unlike a CryptoKey it is not bound to one algorithm (one RSA key signs RS* and PS*). */
  privateKey: KeyObject;
  publicKey: CryptoKey;
  pem: string;
  jwk: JWK;
}

/** A key pair for `alg`; RSA keys are 2048 bits (one RSA key can sign RS256…PS512). */
export async function keyPair(alg: Exclude<Alg, 'HS256' | 'HS384' | 'HS512'>, kid?: string): Promise<AsymmetricKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  if (kid !== undefined) jwk.kid = kid;
  jwk.alg = alg;
  jwk.use = 'sig';
  return { alg, privateKey: KeyObject.from(privateKey), publicKey, pem: await exportSPKI(publicKey), jwk };
}

export const secretBytes = (secret: string): Uint8Array => new TextEncoder().encode(secret);

export interface TokenOptions {
  alg: Alg;
  key: KeyObject | Uint8Array;
  kid?: string;
  /** Seconds from now; null: no exp. Default 3600. */
  expiresIn?: number | null;
  notBeforeIn?: number;
  claims?: JWTPayload;
}

export async function token(opts: TokenOptions): Promise<string> {
  const header: { alg: string; kid?: string; typ: string } = { alg: opts.alg, typ: 'JWT' };
  if (opts.kid !== undefined) header.kid = opts.kid;
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ sub: 'alice', ...opts.claims }).setProtectedHeader(header).setIssuedAt(now);
  const expiresIn = opts.expiresIn === undefined ? 3600 : opts.expiresIn;
  if (expiresIn !== null) jwt.setExpirationTime(now + expiresIn);
  if (opts.notBeforeIn !== undefined) jwt.setNotBefore(now + opts.notBeforeIn);
  return jwt.sign(opts.key);
}

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** An unsecured token (`alg: none`), with or without the empty signature part. */
export function unsecuredToken(claims: JWTPayload = { sub: 'mallory' }, header: Record<string, unknown> = { alg: 'none', typ: 'JWT' }): string {
  return `${b64url(header)}.${b64url({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}.`;
}

/** An HMAC token signed with arbitrary bytes (e.g. an RSA public key's PEM: the algorithm-confusion attack). */
export async function hmacTokenWithBytes(alg: 'HS256' | 'HS384' | 'HS512', bytes: Uint8Array, claims: JWTPayload = {}, kid?: string): Promise<string> {
  return token({ alg, key: bytes, claims, kid });
}

export interface PemDir {
  dir: string;
  write(name: string, text: string): Promise<string>;
  remove(): Promise<void>;
}

export async function pemDir(): Promise<PemDir> {
  const dir = await mkdtemp(join(tmpdir(), 'karasu-jwt-'));
  return {
    dir,
    async write(name, text) {
      const path = join(dir, name);
      await writeFile(path, text);
      return path;
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

// ─── a JWKS server ──────────────────────────────────────────────────────────────────────────────────

export interface JwksServer {
  url: string;
  /** Requests received for the key set. */
  readonly fetches: number;
  /** Replaces the published keys. */
  setKeys(keys: JWK[]): void;
  /** down: every request is answered 503 (or the connection is reset with `reset`); up: back to normal. */
  down(mode?: '503' | 'reset'): void;
  up(): void;
  stop(): Promise<void>;
}

export async function startJwksServer(keys: JWK[] = []): Promise<JwksServer> {
  let published = keys;
  let fetches = 0;
  let outage: null | '503' | 'reset' = null;
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    fetches++;
    if (outage === 'reset') {
      req.socket.destroy();
      return;
    }
    if (outage === '503') {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('down for maintenance');
      return;
    }
    const body = JSON.stringify({ keys: published });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    get fetches() {
      return fetches;
    },
    setKeys(next) {
      published = next;
    },
    down(mode = '503') {
      outage = mode;
    },
    up() {
      outage = null;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Polls until `check` holds or the deadline passes. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
