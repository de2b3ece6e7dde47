// The config file, key by key: type, default, whether required, what it does. This table is the single
// source for validation, for config/karasu.schema.json (scripts/gen-schema.ts) and for the shape the
// semantic pass (build.ts) receives. Cross-key rules (legacy S3 vs replicas, cache tiers, ...) live in
// build.ts because a table cannot express them.
import {
  adminToken,
  corsOrigin,
  headerName,
  hostPort,
  httpUrl,
  ipOrCidr,
  nonBlank,
  pathPrefix,
  redisUrl,
} from './checks.js';
import {
  alias,
  anything,
  bool,
  ignored,
  int,
  list,
  num,
  obj,
  oneOf,
  str,
  unavailable,
  type Infer,
} from './schema-dsl.js';
import { bucketAuth, globalJwt } from './schema-jwt.js';

const MB = 1024 * 1024;
const bytesToMb = (bytes: number): number => bytes / MB;
const fromBytes = { convert: bytesToMb, conversion: 'bytes converted to MB' };
const bytes = (what: string) => int(`${what}, in bytes (Yatagarasu website name).`, { minimum: 1 });

const NOT_AVAILABLE = 'is not available in this version of Karasu';

// ─── server ──────────────────────────────────────────────────────────────────────────────────────────

const server = obj('The HTTP listener, request limits and shutdown.', {
  address: str('Address to listen on. `"host:port"` is also accepted when `port` is not set.', {
    default: '0.0.0.0',
    check: nonBlank,
  }),
  port: int('Port to listen on (0: any free port, as tests use).', { default: 8080, minimum: 0, maximum: 65535 }),
  request_timeout: num('Seconds an upstream request may take until its response headers arrive (→ 504).', {
    default: 30,
    exclusiveMinimum: 0,
  }),
  max_concurrent_requests: int('Requests in flight at once; more are answered 503 with Retry-After.', {
    default: 1000,
    minimum: 1,
  }),
  security_limits: obj('Request size limits.', {
    max_body_size: int('Largest request body in bytes (→ 413).', { default: 10485760, minimum: 1 }),
    max_header_size: int('Largest request header block in bytes (→ 431).', { default: 65536, minimum: 1 }),
    max_uri_length: int('Longest request URI in bytes (→ 414).', { default: 8192, minimum: 1 }),
  }),
  trusted_proxies: list(
    str('An IP address or CIDR range.', { check: ipOrCidr }),
    'Peers whose X-Forwarded-For is believed when logging the client IP (Karasu extension).',
    { default: [] },
  ),
  shutdown_timeout_seconds: num('Seconds in-flight requests get to finish on SIGTERM (Karasu extension).', {
    default: 30,
    minimum: 0,
  }),
  coalescing: obj('Concurrent misses for one object share one upstream request.', {
    enabled: bool('Coalesce concurrent misses.', { default: true }),
    strategy: ignored(
      'Yatagarasu coalescing strategy.',
      'Karasu always streams bytes to every waiting client as they arrive (Yatagarasu wires only `streaming` too)',
    ),
  }),
  threads: ignored('Yatagarasu worker thread count.', 'Karasu runs one event loop per process'),
  rate_limit: obj(
    'Yatagarasu global and per-IP rate limits. Only `enabled: false` is accepted.',
    {
      enabled: bool('Must be false.', {
        default: false,
        reject: { value: true, message: `rate limiting ${NOT_AVAILABLE}` },
      }),
      global: anything('Inert while rate limiting is disabled.'),
      per_ip: anything('Inert while rate limiting is disabled.'),
    },
    { optional: true },
  ),
});

// ─── buckets[].s3 ────────────────────────────────────────────────────────────────────────────────────

const endpoint = str('S3-compatible endpoint, `http(s)://host[:port]`; switches to path-style addressing.', {
  default: null,
  emptyIsAbsent: true,
  check: httpUrl,
});
const accessKey = str('Access key id. Unset together with `secret_key` → the default AWS credential chain.', {
  default: null,
  emptyIsAbsent: true,
});
const secretKey = str('Secret access key. Set together with `access_key`.', { default: null, emptyIsAbsent: true });
const region = str('AWS region (`auto` for R2).', { default: 'us-east-1', emptyIsAbsent: true });

const replica = obj('One backend of a bucket; tried in priority order.', {
  name: str('Replica name, unique within the bucket (logs, metrics).', { required: true, check: nonBlank }),
  bucket: str('S3 bucket name.', { required: true, emptyIsAbsent: true }),
  region,
  endpoint,
  access_key: accessKey,
  secret_key: secretKey,
  priority: int('Lower is tried first; unique within the bucket. Default: position in the list + 1.', {
    minimum: 1,
  }),
  timeout: num('Seconds per attempt until response headers arrive. Default: `s3.timeout`.', {
    exclusiveMinimum: 0,
  }),
  timeout_seconds: alias('timeout', 'Yatagarasu website name of `timeout`.'),
});

const s3 = obj(
  'The S3 backend: either the legacy single backend (`bucket`, `region`, …) or `replicas`.',
  {
    bucket: str('S3 bucket name (legacy single backend).', { emptyIsAbsent: true }),
    region: str('AWS region (legacy single backend).', { default: 'us-east-1', emptyIsAbsent: true }),
    endpoint,
    access_key: accessKey,
    secret_key: secretKey,
    replicas: list(replica, 'Backends tried in priority order when one fails or its breaker is open.', {
      minItems: 1,
    }),
    timeout: num('Seconds without a byte from S3 once a body streams; also the default replica `timeout`.', {
      default: 20,
      exclusiveMinimum: 0,
    }),
    connect_timeout_seconds: num('Seconds to establish a connection (Karasu extension). Default: min(timeout, 5).', {
      exclusiveMinimum: 0,
    }),
    connection_pool_size: int('Sockets kept open per replica.', { default: 50, minimum: 1 }),
    retry: obj('Retries of idempotent requests that failed before any byte reached the client.', {
      max_attempts: int('Attempts in total, the first included.', { default: 3, minimum: 1 }),
      initial_backoff_ms: int('Backoff before the first retry; doubles each time, with jitter.', {
        default: 100,
        minimum: 0,
      }),
      max_backoff_ms: int('Upper bound of the backoff.', { default: 1000, minimum: 0 }),
    }),
    circuit_breaker: obj('Per-replica breaker; an open breaker answers 503 or fails over.', {
      failure_threshold: int('Consecutive failures that open the breaker.', { default: 5, minimum: 1 }),
      success_threshold: int('Successes in half-open state that close it.', { default: 2, minimum: 1 }),
      timeout_seconds: num('Seconds open before trying half-open.', { default: 60, exclusiveMinimum: 0 }),
      half_open_max_requests: int('Trial requests let through while half-open.', { default: 3, minimum: 1 }),
      half_open_requests: alias('half_open_max_requests', 'Yatagarasu website name of `half_open_max_requests`.'),
    }),
    rate_limit: unavailable('Yatagarasu per-bucket rate limit.', `per-bucket rate limiting ${NOT_AVAILABLE}`),
    path_style: ignored(
      'Yatagarasu website key.',
      'Karasu uses path-style addressing whenever `endpoint` is set, virtual-hosted style for AWS',
    ),
  },
  { required: true },
);

// ─── buckets[] ───────────────────────────────────────────────────────────────────────────────────────

const cors = obj(
  'CORS for browsers fetching from other origins: preflight answers and response headers (Karasu extension).',
  {
    allowed_origins: list(
      str('An origin (`https://app.example`) or "*".', { check: corsOrigin }),
      'Origins allowed to read responses.',
      { required: true, minItems: 1 },
    ),
    allowed_headers: list(
      str('A request header name.', { check: headerName }),
      'Request headers a preflight may ask for; empty: Authorization, Range and the conditional request headers.',
      { default: [] },
    ),
    expose_headers: list(
      str('A response header name.', { check: headerName }),
      'Response headers exposed in addition to ETag, Content-Range, Accept-Ranges, Content-Length, X-Request-Id and X-Cache.',
      { default: [] },
    ),
    max_age_seconds: int('How long browsers may cache a preflight answer.', { default: 600, minimum: 0 }),
    allow_credentials: bool('Allow cookies/credentials; not allowed with origin "*".', { default: false }),
  },
  { optional: true },
);

const bucket = obj('A path prefix mapped to an S3 bucket.', {
  name: str('Unique name (cache keys, logs, metrics, admin API).', { required: true, check: nonBlank }),
  path_prefix: str('URL prefix routed to this bucket, matched on a segment boundary.', {
    required: true,
    check: pathPrefix,
  }),
  s3,
  auth: bucketAuth,
  authorization: anything('OPA/OpenFGA authorization; rejected: not available in this version.'),
  ip_filter: obj(
    'Yatagarasu IP allow/block lists. Only empty lists are accepted in this version.',
    {
      allowlist: list(str('An IP address or CIDR range.'), 'Must be empty.', { default: [] }),
      blocklist: list(str('An IP address or CIDR range.'), 'Must be empty.', { default: [] }),
    },
    { optional: true },
  ),
  watermark: obj(
    'Yatagarasu image watermarking: out of scope, only `enabled: false` is accepted.',
    {
      enabled: bool('Must be false.', {
        default: false,
        reject: { value: true, message: 'image watermarking is out of scope for Karasu' },
      }),
      cache_ttl_seconds: anything('Inert while watermarking is disabled.'),
      rules: anything('Inert while watermarking is disabled.'),
    },
    { optional: true },
  ),
  cache: obj(
    'Per-bucket overrides of the global cache settings.',
    {
      enabled: bool('Cache this bucket (null: follow `cache.enabled`).', { default: null }),
      ttl_seconds: int('Default TTL for this bucket when S3 sends no max-age (null: `cache.memory.default_ttl_seconds`).', {
        default: null,
        minimum: 0,
      }),
      max_item_size_mb: num('Largest object cached for this bucket (null: each tier’s own limit).', {
        default: null,
        exclusiveMinimum: 0,
      }),
    },
    { optional: true },
  ),
  cors,
});

// ─── cache ───────────────────────────────────────────────────────────────────────────────────────────

const cache = obj('Response cache tiers.', {
  enabled: bool('Master switch.', { default: false }),
  cache_layers: list(oneOf(['memory', 'disk', 'redis'], 'A cache tier.'), 'Tiers looked up in this order.', {
    default: ['memory'],
    minItems: 1,
  }),
  memory: obj('In-process tier.', {
    enabled: bool('Load-test name: `false` while `memory` is listed in `cache_layers` is an error.', {
      default: true,
    }),
    max_item_size_mb: num('Largest object kept in memory.', { default: 10, exclusiveMinimum: 0 }),
    max_cache_size_mb: num('Memory budget of the tier.', { default: 1024, exclusiveMinimum: 0 }),
    default_ttl_seconds: int('Freshness lifetime when S3 sends no max-age and the bucket sets no ttl.', {
      default: 3600,
      minimum: 0,
    }),
    max_capacity: alias('max_cache_size_mb', 'Yatagarasu website name: tier size in bytes.', {
      spec: bytes('Tier size'),
      ...fromBytes,
    }),
    max_file_size: alias('max_item_size_mb', 'Yatagarasu website name: largest object in bytes.', {
      spec: bytes('Largest object'),
      ...fromBytes,
    }),
    ttl_seconds: alias('default_ttl_seconds', 'Yatagarasu website name of `default_ttl_seconds`.'),
    max_memory_cache_mb: alias('max_cache_size_mb', 'Yatagarasu load-test name of `max_cache_size_mb`.'),
    max_entry_size_mb: alias('max_item_size_mb', 'Yatagarasu load-test name of `max_item_size_mb`.'),
  }),
  disk: obj('On-disk tier; survives restarts.', {
    enabled: bool('Must be true when `disk` is listed in `cache_layers`.', { default: false }),
    cache_dir: str('Directory holding the tier.', { default: '/var/cache/karasu', check: nonBlank }),
    max_disk_cache_size_mb: num('Disk budget of the tier.', { default: 10240, exclusiveMinimum: 0 }),
    max_item_size_mb: num('Largest object kept on disk (Karasu extension).', { default: 1024, exclusiveMinimum: 0 }),
    path: alias('cache_dir', 'Yatagarasu website name of `cache_dir`.'),
    max_capacity: alias('max_disk_cache_size_mb', 'Yatagarasu website name: tier size in bytes.', {
      spec: bytes('Tier size'),
      ...fromBytes,
    }),
    max_file_size: alias('max_item_size_mb', 'Yatagarasu website name: largest object in bytes.', {
      spec: bytes('Largest object'),
      ...fromBytes,
    }),
    ttl_seconds: ignored(
      'Yatagarasu website key.',
      'an object has one freshness lifetime whatever tier holds it (see `cache.memory.default_ttl_seconds`)',
    ),
    sendfile: ignored('Yatagarasu sendfile switch.', 'Karasu streams disk entries itself; there is no sendfile switch'),
  }),
  redis: obj('Shared tier in Redis or Valkey.', {
    enabled: bool('Must be true when `redis` is listed in `cache_layers`.', { default: false }),
    redis_url: str('`redis://` or `rediss://` URL; required when `redis` is listed in `cache_layers`.', {
      default: null,
      emptyIsAbsent: true,
          check: redisUrl,
    }),
    redis_password: str('Password (AUTH), if not in the URL.', { default: null, emptyIsAbsent: true }),
    redis_db: int('Database number.', { default: 0, minimum: 0 }),
    redis_key_prefix: str('Prefix of every key Karasu writes.', { default: 'karasu:' }),
    redis_ttl_seconds: int('Upper bound of the TTL of entries written to Redis.', { default: 3600, minimum: 1 }),
    max_item_size_mb: num('Largest object written to Redis (Karasu extension).', { default: 10, exclusiveMinimum: 0 }),
    timeout_ms: int('Timeout of each Redis command; a slow Redis is skipped (Karasu extension).', {
      default: 500,
      minimum: 1,
    }),
    url: alias('redis_url', 'Yatagarasu website name of `redis_url`.'),
    ttl_seconds: alias('redis_ttl_seconds', 'Yatagarasu website name of `redis_ttl_seconds`.'),
    max_file_size: alias('max_item_size_mb', 'Yatagarasu website name: largest object in bytes.', {
      spec: bytes('Largest object'),
      ...fromBytes,
    }),
    operation_timeout_ms: alias('timeout_ms', 'Yatagarasu load-test name of `timeout_ms`.'),
    max_capacity: ignored('Yatagarasu website key.', 'size Redis itself with `maxmemory` and an LRU policy'),
    pool_size: ignored('Yatagarasu website key.', 'Karasu pipelines commands over one connection'),
    min_pool_size: ignored('Yatagarasu load-test key.', 'Karasu pipelines commands over one connection'),
    max_pool_size: ignored('Yatagarasu load-test key.', 'Karasu pipelines commands over one connection'),
    connection_timeout_ms: ignored('Yatagarasu load-test key.', 'Redis operations are bounded by `timeout_ms`'),
    retry_attempts: ignored('Yatagarasu website key.', 'a failing Redis is skipped and reconnects by itself'),
    retry_delay_ms: ignored('Yatagarasu website key.', 'a failing Redis is skipped and reconnects by itself'),
    sentinel: unavailable('Yatagarasu website key.', `Redis Sentinel ${NOT_AVAILABLE}; use \`redis_url\``),
    cluster: unavailable('Yatagarasu website key.', `Redis Cluster ${NOT_AVAILABLE}; use \`redis_url\``),
  }),
  stale_while_revalidate_seconds: int('Serve an expired entry this long while it is refreshed in the background.', {
    default: 0,
    minimum: 0,
  }),
  stale_if_error_seconds: int('Serve an expired entry this long when S3 fails or times out.', {
    default: 0,
    minimum: 0,
  }),
  warming: obj('Prewarm tasks (`POST /admin/cache/prewarm`, `karasu warm`).', {
    concurrency: int('Objects fetched at once by one prewarm task.', { default: 10, minimum: 1, maximum: 1000 }),
    rate_limit: num('Objects a prewarm task starts fetching per second, at most.', { default: 100, exclusiveMinimum: 0 }),
  }),
});

// ─── logging, metrics ────────────────────────────────────────────────────────────────────────────────

const logging = obj('Process log (pino).', {
  level: oneOf(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], 'Lowest level written.', {
    default: 'info',
  }),
  format: oneOf(['json', 'pretty', 'auto'], '`auto`: pretty on a terminal, JSON otherwise.', {
    default: 'auto',
    valueAliases: { text: 'pretty' },
  }),
  request_logging: ignored('Yatagarasu website key.', `Yatagarasu never read it and request logging ${NOT_AVAILABLE}`),
});

const metrics = obj('Prometheus metrics, always at /metrics on the main listener.', {
  enabled: bool('Serve /metrics.', { default: true }),
  port: int('Also serve /metrics on a separate listener on this port (null: main listener only).', {
    default: null,
    minimum: 1,
    maximum: 65535,
  }),
  address: str('Address of the separate metrics listener.', { default: '0.0.0.0', check: nonBlank }),
});

// ─── features present in Yatagarasu, not (yet) in Karasu: accepted only when switched off ──────────

const inert = (what: string) => anything(`Inert while ${what} is disabled.`);

// ─── audit log, admin API ───────────────────────────────────────────────────────────────────────────

const auditLog = obj(
  'One JSON line per request to a file, syslog and/or S3 (docs/audit.md).',
  {
    enabled: bool('Write the audit log.', { default: false }),
    outputs: list(oneOf(['file', 'syslog', 's3'], 'An audit output.'), 'Outputs written (absent: every output block given).'),
    log_level: oneOf(['trace', 'debug', 'info', 'warn', 'error'], 'Lowest severity recorded: info = every request, warn = status ≥ 400, error = status ≥ 500.', {
      default: 'info',
    }),
    file: obj(
      'Audit lines appended to a file, rotated by size or daily.',
      {
        path: str('The audit file.', { required: true, check: nonBlank }),
        max_file_size_mb: num('Rotate when the file reaches this size (rotation_policy size).', { default: 50, exclusiveMinimum: 0 }),
        max_backup_files: int('Rotated files kept; older ones are deleted.', { default: 5, minimum: 1 }),
        rotation_policy: oneOf(['size', 'daily'], '`size`: at `max_file_size_mb`; `daily`: at midnight UTC.', { default: 'size' }),
        buffer_size: int('Bytes of audit lines held in memory while the disk catches up; more are dropped and counted.', {
          default: 1048576,
          minimum: 1024,
        }),
      },
      { optional: true },
    ),
    syslog: obj(
      'Audit lines sent to a syslog server as RFC 5424 messages.',
      {
        address: str('`host:port` of the syslog server.', { required: true, check: hostPort }),
        protocol: oneOf(['udp', 'tcp'], '`udp` (one datagram per line) or `tcp` (octet-counted framing, RFC 6587).', { default: 'udp' }),
        facility: oneOf(['local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7'], 'Syslog facility.', {
          default: 'local0',
        }),
      },
      { optional: true },
    ),
    s3_export: obj(
      'Audit lines uploaded in batches as `.jsonl` objects to an S3 bucket.',
      {
        bucket: str('Bucket the batches are written to.', { required: true, emptyIsAbsent: true }),
        region: str('AWS region of that bucket.', { default: 'us-east-1', emptyIsAbsent: true }),
        path_prefix: str('Prefix of the object keys, e.g. `audit/`.', { default: '' }),
        export_interval_seconds: num('Upload whatever has accumulated at least this often.', { default: 60, exclusiveMinimum: 0 }),
        endpoint: str('S3-compatible endpoint, `http(s)://host[:port]` (Karasu extension).', {
          default: null,
          emptyIsAbsent: true,
          check: httpUrl,
        }),
        access_key: str('Access key id (Karasu extension). Unset with `secret_key` → the default AWS credential chain.', {
          default: null,
          emptyIsAbsent: true,
        }),
        secret_key: str('Secret access key (Karasu extension).', { default: null, emptyIsAbsent: true }),
        batch_size: int('Lines per object: a batch this large is uploaded at once (Karasu extension).', {
          default: 10000,
          minimum: 1,
        }),
      },
      { optional: true },
    ),
  },
);

const admin = obj('The admin API (docs/operations.md) (Karasu extension).', {
  token: str('Static admin token, sent as `Authorization: Bearer <token>`; at least 16 characters.', {
    default: null,
    emptyIsAbsent: true,
    check: adminToken,
  }),
  port: int('Serve the admin API on its own listener on this port, and only there (null: on the proxy port).', {
    default: null,
    minimum: 1,
    maximum: 65535,
  }),
  address: str('Address of the separate admin listener.', { default: '127.0.0.1', check: nonBlank }),
});

const off = (what: string) => ({ default: false, reject: { value: true, message: `${what} ${NOT_AVAILABLE}` } });

const observability = obj(
  'Yatagarasu tracing and request logging. Accepted only while everything in it is switched off.',
  {
    tracing: obj(
      'OpenTelemetry tracing.',
      {
        enabled: bool('Must be false.', off('tracing')),
        exporter: inert('tracing'),
        otlp_endpoint: inert('tracing'),
        jaeger_endpoint: inert('tracing'),
        zipkin_endpoint: inert('tracing'),
        service_name: inert('tracing'),
        sampling_ratio: inert('tracing'),
        propagate_context: inert('tracing'),
      },
      { optional: true },
    ),
    request_logging: obj(
      'Request/response logging.',
      {
        log_requests: bool('Must be false.', off('request logging')),
        log_responses: bool('Must be false.', off('response logging')),
        include_paths: inert('request logging'),
        exclude_paths: inert('request logging'),
        status_codes: inert('request logging'),
        redact_headers: inert('request logging'),
        log_request_body: inert('request logging'),
        log_response_body: inert('request logging'),
        max_body_size: inert('request logging'),
      },
      { optional: true },
    ),
    slow_query: obj(
      'Slow request logging.',
      {
        enabled: bool('Must be false.', off('slow query logging')),
        threshold_ms: inert('slow query logging'),
        include_breakdown: inert('slow query logging'),
        log_level: inert('slow query logging'),
      },
      { optional: true },
    ),
  },
  { optional: true },
);

const imageOptimization = obj(
  'Yatagarasu image optimisation: out of scope, only `enabled: false` is accepted.',
  {
    enabled: bool('Must be false.', {
      default: false,
      reject: { value: true, message: 'image optimisation is out of scope for Karasu' },
    }),
    max_width: inert('image optimisation'),
    max_height: inert('image optimisation'),
    default_quality: inert('image optimisation'),
  },
  { optional: true },
);

// ─── the file ────────────────────────────────────────────────────────────────────────────────────────

export const configSchema = obj('Karasu configuration (compatible with Yatagarasu configs).', {
  server,
  buckets: list(bucket, 'Buckets served, each under its own path prefix.', { required: true, minItems: 1 }),
  cache,
  logging,
  metrics,
  jwt: globalJwt,
  audit_log: auditLog,
  admin,
  observability,
  image_optimization: imageOptimization,
  shutdown: obj(
    'Yatagarasu documentation block; `timeout`/`timeout_seconds` are applied as `server.shutdown_timeout_seconds`.',
    {
      timeout_seconds: num('Applied as `server.shutdown_timeout_seconds`.', { minimum: 0 }),
      timeout: num('Applied as `server.shutdown_timeout_seconds`.', { minimum: 0 }),
    },
    { optional: true, otherKeys: 'only `shutdown.timeout_seconds` (or `shutdown.timeout`) is read, as `server.shutdown_timeout_seconds`' },
  ),
  rate_limiting: ignored('Yatagarasu documentation block.', `Yatagarasu never read it and rate limiting ${NOT_AVAILABLE}`),
  limits: ignored('Yatagarasu documentation block.', 'use `server.security_limits` and `server.request_timeout`'),
  circuit_breaker: ignored('Yatagarasu documentation block.', 'circuit breakers are set per bucket in `buckets[].s3.circuit_breaker`'),
});

/** The validated tree, defaults filled in, before cross-key rules and normalisation. */
export type RawConfig = Infer<typeof configSchema>;
export type RawBucket = RawConfig['buckets'][number];
export type RawS3 = RawBucket['s3'];
export type RawReplica = NonNullable<RawS3['replicas']>[number];
export type RawCache = RawConfig['cache'];
