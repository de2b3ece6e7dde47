// JWKS clients: one per URL (and refresh settings), owned by the Karasu instance and shared by every
// snapshot, so a reload neither refetches nor forgets the keys. A client fetches at start, refreshes on
// its interval (sooner, with backoff, while the URL fails) and on demand when a token names a `kid` it
// does not know (at most once per cool-down). A failed refresh keeps the last good set.
import type { Logger } from '../observability/logger.js';
import { keyFromJwk, type VerificationKey } from './keys.js';

/** `ok`: the last fetch worked; `stale`: it failed, the last good set is used; `unavailable`: never loaded. */
export type JwksState = 'ok' | 'stale' | 'unavailable';

export interface JwksEvents {
  refreshed(result: 'success' | 'failure'): void;
}

export interface JwksSettings {
  url: string;
  refreshIntervalSecs: number;
  cooldownSecs: number;
}

const FETCH_TIMEOUT_MS = 5000;
const MAX_BODY_BYTES = 1 << 20;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 60_000;

export class JwksClient {
  readonly url: string;
  private keys: readonly VerificationKey[] = [];
  private byKid = new Map<string, VerificationKey[]>();
  private loaded = false;
  private failing = false;
  private lastError: string | null = null;
  private inflight: Promise<void> | null = null;
  private lastOnDemand = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | null = null;
  /** Consecutive failed fetches: retries come after 1, 2, 4 … s (at most 60 s, at most the interval). */
  private failures = 0;
  private readonly stopped = new AbortController();

  constructor(
    readonly settings: JwksSettings,
    private readonly log: Logger,
    private readonly events: JwksEvents,
  ) {
    this.url = settings.url;
  }

  state(): JwksState {
    if (!this.loaded) return 'unavailable';
    return this.failing ? 'stale' : 'ok';
  }

  error(): string | null {
    return this.lastError;
  }

  hasKeys(): boolean {
    return this.keys.length > 0;
  }

  all(): readonly VerificationKey[] {
    return this.keys;
  }

  withKid(kid: string): readonly VerificationKey[] {
    return this.byKid.get(kid) ?? [];
  }

  /** First fetch; resolves when it has succeeded or failed (never rejects). */
  start(): Promise<void> {
    return this.refresh();
  }

  /** Resolves once a fetch in progress (if any) has finished. */
  settled(): Promise<void> {
    return this.inflight ?? Promise.resolve();
  }

  /**
   * A token names a `kid` (or the set is empty): refetch now unless one ran on demand within the
   * cool-down. Concurrent callers share one fetch. True when a fetch ran (or was joined).
   */
  async refreshForUnknownKid(): Promise<boolean> {
    if (this.stopped.signal.aborted) return false;
    if (this.inflight) {
      await this.inflight;
      return true;
    }
    const now = performance.now();
    if (now - this.lastOnDemand < this.settings.cooldownSecs * 1000) return false;
    this.lastOnDemand = now;
    await this.refresh();
    return true;
  }

  refresh(): Promise<void> {
    if (this.stopped.signal.aborted) return Promise.resolve();
    this.inflight ??= this.fetchOnce().finally(() => {
      this.inflight = null;
      this.schedule();
    });
    return this.inflight;
  }

  stop(): void {
    this.stopped.abort();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.stopped.signal.aborted) return;
    if (this.timer) clearTimeout(this.timer);
    const interval = this.settings.refreshIntervalSecs * 1000;
    const retry = Math.min(RETRY_MIN_MS * 2 ** Math.max(0, this.failures - 1), RETRY_MAX_MS);
    const delay = this.failures > 0 ? Math.min(interval, retry) : interval;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.refresh();
    }, delay);
    this.timer.unref();
  }

  private async fetchOnce(): Promise<void> {
    try {
      const keys = await this.download();
      this.keys = keys;
      this.byKid = new Map();
      for (const key of keys) {
        if (key.kid === null) continue;
        const list = this.byKid.get(key.kid);
        if (list) list.push(key);
        else this.byKid.set(key.kid, [key]);
      }
      if (this.failing || !this.loaded) {
        this.log.info({ jwks_url: this.url, keys: keys.length }, this.loaded ? 'JWKS reachable again' : 'JWKS loaded');
      }
      this.loaded = true;
      this.failing = false;
      this.lastError = null;
      this.failures = 0;
      this.events.refreshed('success');
    } catch (err) {
      if (this.stopped.signal.aborted) return;
      const reason = err instanceof Error ? err.message : String(err);
      this.failing = true;
      this.lastError = reason;
      this.failures++;
      this.events.refreshed('failure');
      this.log.warn(
        { jwks_url: this.url, reason, keys_kept: this.keys.length },
        this.loaded ? 'JWKS refresh failed; keeping the last good key set' : 'JWKS could not be loaded; tokens cannot be verified with it yet',
      );
    }
  }

  private async download(): Promise<VerificationKey[]> {
    const signal = AbortSignal.any([AbortSignal.timeout(FETCH_TIMEOUT_MS), this.stopped.signal]);
    const res = await fetch(this.url, {
      signal,
      headers: { accept: 'application/jwk-set+json, application/json' },
      redirect: 'follow',
    }).catch((err: Error) => {
      throw new Error(err.name === 'TimeoutError' ? `no answer within ${FETCH_TIMEOUT_MS} ms` : `fetch failed: ${causeOf(err)}`);
    });
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new Error(`HTTP ${res.status}`);
    }
    const declared = Number(res.headers.get('content-length'));
    if (declared > MAX_BODY_BYTES) {
      await res.body?.cancel();
      throw new Error(`response larger than ${MAX_BODY_BYTES} bytes`);
    }
    const text = await res.text();
    if (text.length > MAX_BODY_BYTES) throw new Error(`response larger than ${MAX_BODY_BYTES} bytes`);
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new Error('response is not JSON');
    }
    const list = (doc as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(list)) throw new Error('response has no "keys" array');
    const keys: VerificationKey[] = [];
    const skipped: string[] = [];
    for (const jwk of list) {
      const key = keyFromJwk(jwk, this.url);
      if (typeof key === 'string') skipped.push(`${(jwk as { kid?: unknown })?.kid ?? '?'}: ${key}`);
      else keys.push(key);
    }
    if (skipped.length > 0) this.log.debug({ jwks_url: this.url, skipped }, 'JWKS keys skipped');
    if (keys.length === 0) throw new Error(`no usable signing key among ${list.length}`);
    return keys;
  }
}

function causeOf(err: Error): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? err.message;
}

/** The clients of one Karasu instance, shared by its snapshots; closed with the instance. */
export class JwksRegistry {
  private readonly clients = new Map<string, JwksClient>();

  constructor(
    private readonly log: Logger,
    private readonly events: JwksEvents,
  ) {}

  /** The client for these settings, started (first fetch under way) if it is new. */
  acquire(settings: JwksSettings): JwksClient {
    const id = `${settings.refreshIntervalSecs}|${settings.cooldownSecs}|${settings.url}`;
    let client = this.clients.get(id);
    if (!client) {
      client = new JwksClient(settings, this.log, this.events);
      this.clients.set(id, client);
      void client.start();
    }
    return client;
  }

  /** Stops the clients the newest snapshot no longer uses (older snapshots keep their last key sets). */
  retain(used: ReadonlySet<JwksClient>): void {
    for (const [id, client] of this.clients) {
      if (!used.has(client)) {
        client.stop();
        this.clients.delete(id);
      }
    }
  }

  close(): void {
    for (const client of this.clients.values()) client.stop();
    this.clients.clear();
  }
}
