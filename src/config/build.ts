// The semantic pass: rules that span several keys, normalisation, and the refusals that need context
// (which bucket would be served without the protection its config asks for). Input: the schema-validated
// tree with defaults filled in. Output: the KarasuConfig every other module reads.
import { buildBucketAuth, buildGlobalJwt, warnUnusedJwt } from './build-jwt.js';
import { buildAdmin, buildAudit } from './build-ops.js';
import { normalisePathPrefix } from './checks.js';
import { childPath, type Issues, type SourceMap } from './issues.js';
import type { RawBucket, RawCache, RawConfig, RawReplica, RawS3 } from './schema.js';
import type {
  BucketConfig,
  CacheConfig,
  CacheLayer,
  CorsConfig,
  KarasuConfig,
  MetricsConfig,
  ReplicaConfig,
  S3Config,
  ServerConfig,
} from './types.js';
import type { JwtConfig } from './types-auth.js';

const NOT_AVAILABLE = 'is not available in this version of Karasu';

export function buildConfig(raw: RawConfig, issues: Issues, source: SourceMap): Omit<KarasuConfig, 'source'> {
  const b = new Builder(issues, source);
  const server = b.server(raw);
  const cache = b.cache(raw.cache);
  const metrics = b.metrics(raw.metrics, server);
  const jwt = buildGlobalJwt(raw.jwt, issues, source);
  const buckets = b.buckets(raw.buckets, cache.enabled, jwt, raw.jwt !== undefined);
  warnUnusedJwt(jwt, buckets, issues);
  return {
    server,
    buckets,
    cache,
    logging: { level: raw.logging.level, format: raw.logging.format },
    metrics,
    jwt,
    audit_log: buildAudit(raw.audit_log, issues, source),
    admin: buildAdmin(raw.admin, server, metrics, buckets, issues, source),
  };
}

class Builder {
  constructor(
    private readonly issues: Issues,
    private readonly source: SourceMap,
  ) {}

  // ─── server ───────────────────────────────────────────────────────────────────────────────────────

  server(raw: RawConfig): ServerConfig {
    const s = raw.server;
    const listen = this.listenAddress(s.address, s.port);
    return {
      address: listen.address,
      port: listen.port,
      request_timeout: s.request_timeout,
      max_concurrent_requests: s.max_concurrent_requests,
      security_limits: s.security_limits,
      trusted_proxies: s.trusted_proxies,
      shutdown_timeout_seconds: this.shutdownTimeout(raw),
      coalescing: s.coalescing,
    };
  }

  /** Yatagarasu's README writes `address: "0.0.0.0:8080"` without `port`; accept that form. */
  private listenAddress(address: string, port: number): { address: string; port: number } {
    const split = splitHostPort(address);
    if (split.port === undefined) return { address: split.host, port };
    if (this.source.given('server.port')) {
      this.issues.error('server.address', `includes a port (${split.port}) and \`server.port\` is also set; remove one`, 'value');
      return { address: split.host, port };
    }
    if (split.port > 65535) {
      this.issues.error('server.address', `has an invalid port (${split.port})`, 'value');
      return { address: split.host, port };
    }
    return { address: split.host, port: split.port };
  }

  /** Yatagarasu's docs show a top-level `shutdown.timeout_seconds`; its meaning is ours exactly. */
  private shutdownTimeout(raw: RawConfig): number {
    const own = raw.server.shutdown_timeout_seconds;
    const keys = (['timeout_seconds', 'timeout'] as const).filter((k) => this.source.given(`shutdown.${k}`));
    if (keys.length === 0 || !raw.shutdown) return own;
    if (keys.length > 1) {
      this.issues.error('shutdown.timeout', 'sets the same thing as `shutdown.timeout_seconds`; remove one');
      return own;
    }
    const path = `shutdown.${keys[0]}`;
    if (this.source.given('server.shutdown_timeout_seconds')) {
      this.issues.error(path, 'sets the same thing as `server.shutdown_timeout_seconds`; remove one');
      return own;
    }
    this.issues.warn(path, 'applied as `server.shutdown_timeout_seconds` — move it there to silence this warning');
    return raw.shutdown[keys[0]] ?? own;
  }

  // ─── buckets ──────────────────────────────────────────────────────────────────────────────────────

  buckets(raw: RawBucket[], cacheEnabled: boolean, jwt: JwtConfig | null, jwtGiven: boolean): BucketConfig[] {
    const buckets = raw.map((bucket, i) => this.bucket(bucket, `buckets[${i}]`, cacheEnabled, jwt, jwtGiven));
    this.unique(buckets, (b) => b.name, 'name', (other) => `duplicate bucket name (also \`${other}\`)`);
    this.unique(
      buckets,
      (b) => b.path_prefix,
      'path_prefix',
      (other) => `routes the same prefix as \`${other}\``,
    );
    return buckets;
  }

  /** Reports every bucket whose key repeats an earlier bucket's, at that bucket's key. */
  private unique(
    buckets: BucketConfig[],
    keyOf: (b: BucketConfig) => string,
    field: string,
    message: (otherPath: string) => string,
  ): void {
    const first = new Map<string, number>();
    buckets.forEach((bucket, i) => {
      const key = keyOf(bucket);
      const earlier = first.get(key);
      if (earlier === undefined) first.set(key, i);
      else this.issues.error(`buckets[${i}].${field}`, message(`buckets[${earlier}].${field}`), 'value');
    });
  }

  private bucket(raw: RawBucket, path: string, cacheEnabled: boolean, jwt: JwtConfig | null, jwtGiven: boolean): BucketConfig {
    this.refuseMissingProtection(raw, path);
    if (raw.cache && !cacheEnabled) {
      this.issues.warn(`${path}.cache`, 'has no effect: caching is off (`cache.enabled` is false)');
    }
    return {
      name: raw.name,
      path_prefix: normalisePathPrefix(raw.path_prefix),
      s3: this.s3(raw.s3, `${path}.s3`),
      cors: this.cors(raw.cors, `${path}.cors`),
      auth: buildBucketAuth(raw, path, jwt, jwtGiven, this.issues, this.source),
      cache: {
        enabled: raw.cache?.enabled ?? null,
        ttl_seconds: raw.cache?.ttl_seconds ?? null,
        max_item_size_mb: raw.cache?.max_item_size_mb ?? null,
      },
    };
  }

  /**
   * Serving a bucket without the authorization or IP filter its config asks for would
   * expose private objects, so each of these refuses to load (Yatagarasu silently served them open).
   */
  private refuseMissingProtection(raw: RawBucket, path: string): void {
    const refuse = (key: string, feature: string, protection: string) =>
      this.issues.error(
        `${path}.${key}`,
        `${feature} ${NOT_AVAILABLE}; refusing to serve bucket \`${raw.name}\` without the ${protection} its config asks for`,
      );
    if (raw.authorization !== undefined) refuse('authorization', 'OPA/OpenFGA authorization', 'authorization');
    for (const list of ['allowlist', 'blocklist'] as const) {
      if (raw.ip_filter && raw.ip_filter[list].length > 0) {
        refuse(`ip_filter.${list}`, 'IP filtering', 'IP filtering');
      }
    }
  }

  private cors(raw: RawBucket['cors'], path: string): CorsConfig | null {
    if (!raw) return null;
    if (raw.allow_credentials && raw.allowed_origins.includes('*')) {
      this.issues.error(
        `${path}.allow_credentials`,
        'cannot be true while `allowed_origins` contains "*" (browsers reject credentialed responses to "*"); list the origins instead',
        'value',
      );
    }
    return raw;
  }

  // ─── buckets[].s3 ─────────────────────────────────────────────────────────────────────────────────

  private s3(raw: RawS3, path: string): S3Config {
    const replicas = raw.replicas === undefined ? this.legacyReplica(raw, path) : this.replicas(raw, path);
    if (raw.retry.max_backoff_ms < raw.retry.initial_backoff_ms) {
      this.issues.error(`${path}.retry.max_backoff_ms`, 'must be at least `initial_backoff_ms`', 'value');
    }
    return {
      replicas,
      connect_timeout: raw.connect_timeout_seconds ?? Math.min(raw.timeout, 5),
      idle_timeout: raw.timeout,
      connection_pool_size: raw.connection_pool_size,
      retry: raw.retry,
      circuit_breaker: raw.circuit_breaker,
    };
  }

  /** The single-backend form becomes one replica named "default", so the rest of Karasu sees one shape. */
  private legacyReplica(raw: RawS3, path: string): ReplicaConfig[] {
    if (raw.bucket === undefined) {
      this.issues.error(`${path}.bucket`, 'missing required key `bucket` (or list the backends under `replicas`)');
    }
    const credentials = this.credentials(raw, path);
    return [
      {
        name: 'default',
        bucket: raw.bucket ?? '',
        region: raw.region,
        endpoint: raw.endpoint,
        ...credentials,
        priority: 1,
        timeout: raw.timeout,
      },
    ];
  }

  private replicas(raw: RawS3, path: string): ReplicaConfig[] {
    const legacy = LEGACY_KEYS.filter((k) => this.source.given(`${path}.${k}`));
    if (legacy.length > 0) {
      const keys = legacy.map((k) => `\`${k}\``).join(', ');
      this.issues.error(
        `${path}.${legacy[0]}`,
        `cannot be combined with \`replicas\` (legacy single-backend keys here: ${keys}); set them on each replica instead`,
      );
    }
    const replicas = (raw.replicas ?? []).map((r, i) => this.replica(r, `${path}.replicas[${i}]`, i, raw.timeout));
    this.uniqueReplicas(replicas, path);
    // Stable sort: equal priorities are an error anyway, so order among them does not matter.
    return [...replicas].sort((a, b) => a.priority - b.priority);
  }

  private replica(raw: RawReplica, path: string, index: number, bucketTimeout: number): ReplicaConfig {
    return {
      name: raw.name,
      bucket: raw.bucket,
      region: raw.region,
      endpoint: raw.endpoint,
      ...this.credentials(raw, path),
      priority: raw.priority ?? index + 1,
      timeout: raw.timeout ?? bucketTimeout,
    };
  }

  private uniqueReplicas(replicas: ReplicaConfig[], path: string): void {
    const names = new Map<string, number>();
    const priorities = new Map<number, number>();
    replicas.forEach((replica, i) => {
      const at = `${path}.replicas[${i}]`;
      const sameName = names.get(replica.name);
      if (sameName === undefined) names.set(replica.name, i);
      else this.issues.error(`${at}.name`, `duplicate replica name (also \`${path}.replicas[${sameName}].name\`)`, 'value');
      const samePriority = priorities.get(replica.priority);
      if (samePriority === undefined) priorities.set(replica.priority, i);
      else {
        this.issues.error(
          `${at}.priority`,
          `priority ${replica.priority} is also used by \`${path}.replicas[${samePriority}]\` (a replica without \`priority\` gets its position + 1)`,
          'value',
        );
      }
    });
  }

  /** Both keys or neither (→ the default AWS credential chain); one alone is almost always a missing variable. */
  private credentials(
    raw: { access_key: string | null; secret_key: string | null },
    path: string,
  ): { access_key: string | null; secret_key: string | null } {
    const { access_key, secret_key } = raw;
    if ((access_key === null) !== (secret_key === null)) {
      const [set, unset] = access_key === null ? ['secret_key', 'access_key'] : ['access_key', 'secret_key'];
      this.issues.error(
        `${path}.${set}`,
        `is set but \`${unset}\` is empty; set both, or neither to use the default AWS credential chain`,
      );
    }
    return { access_key, secret_key };
  }

  // ─── cache ────────────────────────────────────────────────────────────────────────────────────────

  cache(raw: RawCache): CacheConfig {
    this.checkLayers(raw);
    if (!raw.enabled && this.source.given('cache') && this.givenUnder('cache', ['enabled'])) {
      this.issues.warn('cache', 'has no effect: `cache.enabled` is false, nothing is cached');
    }
    const { memory, disk, redis } = raw;
    return {
      enabled: raw.enabled,
      cache_layers: raw.cache_layers,
      // memory.enabled only exists to be checked against cache_layers.
      memory: {
        max_item_size_mb: memory.max_item_size_mb,
        max_cache_size_mb: memory.max_cache_size_mb,
        default_ttl_seconds: memory.default_ttl_seconds,
      },
      disk,
      redis,
      stale_while_revalidate_seconds: raw.stale_while_revalidate_seconds,
      stale_if_error_seconds: raw.stale_if_error_seconds,
      warming: raw.warming,
    };
  }

  /** Every listed tier must be switched on and usable; a switched-on tier nobody lists is worth a warning. */
  private checkLayers(raw: RawCache): void {
    const listed = new Set<CacheLayer>();
    raw.cache_layers.forEach((layer, i) => {
      const path = `cache.cache_layers[${i}]`;
      if (listed.has(layer)) this.issues.error(path, `\`${layer}\` is listed twice`, 'value');
      listed.add(layer);
      if (!raw[layer].enabled) {
        this.issues.error(path, `\`${layer}\` is listed but \`cache.${layer}.enabled\` is false; enable it or remove it from the list`, 'value');
      }
    });
    if (listed.has('redis') && raw.redis.redis_url === null) {
      this.issues.error('cache.redis.redis_url', 'is required when `redis` is listed in `cache.cache_layers`');
    }
    for (const layer of ['memory', 'disk', 'redis'] as const) {
      const path = `cache.${layer}.enabled`;
      if (raw[layer].enabled && this.source.given(path) && !listed.has(layer)) {
        this.issues.warn(path, `tier not used: \`${layer}\` is not listed in \`cache.cache_layers\``);
      }
    }
  }

  private givenUnder(path: string, except: string[]): boolean {
    return this.source
      .givenPaths()
      .some((p) => p.startsWith(`${path}.`) && !except.some((e) => p === childPath(path, e)));
  }

  // ─── metrics ──────────────────────────────────────────────────────────────────────────────────────

  metrics(raw: RawConfig['metrics'], server: ServerConfig): MetricsConfig {
    if (raw.port !== null && raw.enabled && raw.port === server.port && overlaps(raw.address, server.address)) {
      this.issues.error('metrics.port', 'is also the proxy port (`server.port`); pick another, or null to serve /metrics on the proxy port', 'value');
    }
    if (!raw.enabled && raw.port !== null) {
      this.issues.warn('metrics.port', 'has no effect: `metrics.enabled` is false');
    } else if (raw.port === null && this.source.given('metrics.address')) {
      this.issues.warn('metrics.address', 'has no effect without `metrics.port`');
    }
    return { enabled: raw.enabled, port: raw.port, address: raw.address };
  }
}

const LEGACY_KEYS = ['bucket', 'region', 'endpoint', 'access_key', 'secret_key'] as const;

/** `host`, `host:port`, `[v6]`, `[v6]:port`; a bare IPv6 address has no port. */
function splitHostPort(address: string): { host: string; port?: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(address);
  if (bracketed) return { host: bracketed[1], port: bracketed[2] === undefined ? undefined : Number(bracketed[2]) };
  const parts = address.split(':');
  if (parts.length === 2 && /^\d+$/.test(parts[1])) return { host: parts[0], port: Number(parts[1]) };
  return { host: address };
}

function overlaps(a: string, b: string): boolean {
  const wildcard = (x: string) => x === '0.0.0.0' || x === '::' || x === '[::]';
  return a === b || wildcard(a) || wildcard(b);
}
