// The validated, normalised configuration. Names mirror the YAML keys (snake_case) so that every field
// can be traced back to the key an operator wrote. Defaults are filled in by the loader; nothing here
// is optional unless "absent" has a meaning of its own.
import type { BucketAuthConfig, JwtConfig } from './types-auth.js';

export type * from './types-auth.js';

export interface KarasuConfig {
  /** Absolute path of the file this was loaded from (null when built in code, e.g. the demo). */
  source: string | null;
  server: ServerConfig;
  buckets: BucketConfig[];
  cache: CacheConfig;
  logging: LoggingConfig;
  metrics: MetricsConfig;
  /** Top-level `jwt` (null: absent or `enabled: false`). See types-auth.ts. */
  jwt: JwtConfig | null;
  audit_log: AuditConfig;
  admin: AdminConfig;
}

export interface ServerConfig {
  address: string;
  port: number;
  /** Seconds an upstream request may take until response headers arrive (→ 504). Yatagarasu: `request_timeout`. */
  request_timeout: number;
  max_concurrent_requests: number;
  security_limits: SecurityLimits;
  /** CIDRs whose X-Forwarded-For is believed (ours). */
  trusted_proxies: string[];
  /** Seconds in-flight requests get to finish on SIGTERM (ours). */
  shutdown_timeout_seconds: number;
  /** Concurrent misses for one object share one upstream request. */
  coalescing: { enabled: boolean };
}

export interface SecurityLimits {
  max_body_size: number;
  max_header_size: number;
  max_uri_length: number;
}

export interface BucketConfig {
  name: string;
  /** Normalised: starts with '/', no trailing '/' (except the root prefix '/'). */
  path_prefix: string;
  s3: S3Config;
  cors: CorsConfig | null;
  /** Null: public (no `auth`, or `auth.enabled: false`). */
  auth: BucketAuthConfig | null;
  cache: BucketCacheOverrides;
}

export interface S3Config {
  /** Always at least one; legacy single-backend configs become one replica named "default". Sorted by priority. */
  replicas: ReplicaConfig[];
  /** Seconds, connect timeout per attempt (ours: s3.connect_timeout_seconds, default min(timeout, 5)). */
  connect_timeout: number;
  /** Seconds without a byte from S3 once the body streams (Yatagarasu `s3.timeout`, default 20). */
  idle_timeout: number;
  /** Sockets kept per replica (Yatagarasu `s3.connection_pool_size`, default 50). */
  connection_pool_size: number;
  retry: RetryConfig;
  circuit_breaker: CircuitBreakerConfig;
}

export interface ReplicaConfig {
  name: string;
  bucket: string;
  region: string;
  endpoint: string | null;
  /** Both null → the default AWS credential chain. */
  access_key: string | null;
  secret_key: string | null;
  priority: number;
  /** Seconds (replica `timeout`, default 20): per-attempt time until response headers. */
  timeout: number;
}

export interface RetryConfig {
  max_attempts: number;
  initial_backoff_ms: number;
  max_backoff_ms: number;
}

export interface CircuitBreakerConfig {
  failure_threshold: number;
  success_threshold: number;
  timeout_seconds: number;
  half_open_max_requests: number;
}

export interface CorsConfig {
  allowed_origins: string[];
  allowed_headers: string[];
  expose_headers: string[];
  max_age_seconds: number;
  allow_credentials: boolean;
}

export interface BucketCacheOverrides {
  enabled: boolean | null;
  ttl_seconds: number | null;
  max_item_size_mb: number | null;
}

export type CacheLayer = 'memory' | 'disk' | 'redis';

export interface CacheConfig {
  enabled: boolean;
  cache_layers: CacheLayer[];
  memory: { max_item_size_mb: number; max_cache_size_mb: number; default_ttl_seconds: number };
  disk: { enabled: boolean; cache_dir: string; max_disk_cache_size_mb: number; max_item_size_mb: number };
  redis: {
    enabled: boolean;
    redis_url: string | null;
    redis_password: string | null;
    redis_db: number;
    redis_key_prefix: string;
    redis_ttl_seconds: number;
    max_item_size_mb: number;
    timeout_ms: number;
  };
  stale_while_revalidate_seconds: number;
  stale_if_error_seconds: number;
  /** Prewarm tasks (admin API, `karasu warm`). */
  warming: { concurrency: number; rate_limit: number };
}

export interface LoggingConfig {
  level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  /** `auto`: pretty when stdout is a terminal, JSON otherwise. */
  format: 'json' | 'pretty' | 'auto';
}

export interface MetricsConfig {
  enabled: boolean;
  /** null → served on the main listener at /metrics only. */
  port: number | null;
  address: string;
}

export type AuditOutput = 'file' | 'syslog' | 's3';

export interface AuditConfig {
  enabled: boolean;
  /** The outputs written; empty when disabled. Each listed output has its block below. */
  outputs: AuditOutput[];
  /** Lowest severity recorded: info (every request), warn (status ≥ 400), error (status ≥ 500). */
  log_level: 'info' | 'warn' | 'error';
  file: AuditFileConfig | null;
  syslog: AuditSyslogConfig | null;
  s3_export: AuditS3Config | null;
}

export interface AuditFileConfig {
  path: string;
  max_file_size_mb: number;
  max_backup_files: number;
  rotation_policy: 'size' | 'daily';
  buffer_size: number;
}

export interface AuditSyslogConfig {
  host: string;
  port: number;
  protocol: 'udp' | 'tcp';
  facility: 'local0' | 'local1' | 'local2' | 'local3' | 'local4' | 'local5' | 'local6' | 'local7';
}

export interface AuditS3Config {
  bucket: string;
  region: string;
  path_prefix: string;
  export_interval_seconds: number;
  endpoint: string | null;
  access_key: string | null;
  secret_key: string | null;
  batch_size: number;
}

/** The admin API (ours). */
export interface AdminConfig {
  /** Static bearer token (null: none). */
  token: string | null;
  /** A separate admin listener (null: admin routes on the proxy listener). */
  port: number | null;
  address: string;
}

/** One problem found while loading a config, positioned in the source file. */
export interface ConfigIssue {
  /** Dotted key path, e.g. `buckets[0].s3.region`. */
  path: string;
  message: string;
  file: string;
  line: number;
  column: number;
}

export interface LoadedConfig {
  config: KarasuConfig;
  warnings: ConfigIssue[];
}
