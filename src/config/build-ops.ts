// The semantic pass for the operations blocks: `audit_log` (which outputs are written, each with its
// block) and `admin` (its own listener must not collide with the others). Called from build.ts.
import type { Issues, SourceMap } from './issues.js';
import type { RawConfig } from './schema.js';
import type { AdminConfig, AuditConfig, AuditOutput, BucketConfig, MetricsConfig, ServerConfig } from './types.js';

const BLOCK: Record<AuditOutput, 'file' | 'syslog' | 's3_export'> = { file: 'file', syslog: 'syslog', s3: 's3_export' };

export function buildAudit(raw: RawConfig['audit_log'], issues: Issues, source: SourceMap): AuditConfig {
  const level = raw.log_level === 'trace' || raw.log_level === 'debug' ? 'info' : raw.log_level;
  const off: AuditConfig = { enabled: false, outputs: [], log_level: level, file: null, syslog: null, s3_export: null };
  if (!raw.enabled) {
    const given = ['outputs', 'file', 'syslog', 's3_export'].filter((k) => source.given(`audit_log.${k}`));
    if (given.length > 0) issues.warn(`audit_log.${given[0]}`, 'has no effect: `audit_log.enabled` is false');
    return off;
  }

  let outputs: AuditOutput[];
  if (raw.outputs !== undefined) {
    outputs = [];
    raw.outputs.forEach((output, i) => {
      const path = `audit_log.outputs[${i}]`;
      if (outputs.includes(output)) issues.error(path, `\`${output}\` is listed twice`, 'value');
      else if (raw[BLOCK[output]] === undefined) {
        issues.error(path, `\`${output}\` is listed but \`audit_log.${BLOCK[output]}\` is not set`, 'value');
      } else outputs.push(output);
    });
    for (const output of ['file', 'syslog', 's3'] as const) {
      if (raw[BLOCK[output]] !== undefined && !raw.outputs.includes(output)) {
        issues.warn(`audit_log.${BLOCK[output]}`, `not written: \`${output}\` is not listed in \`audit_log.outputs\``);
      }
    }
  } else {
    outputs = (['file', 'syslog', 's3'] as const).filter((o) => raw[BLOCK[o]] !== undefined);
  }
  if (outputs.length === 0 && !issues.hasErrorUnder('audit_log')) {
    issues.error('audit_log.enabled', 'is true but no output is configured: add `audit_log.file`, `audit_log.syslog` or `audit_log.s3_export`');
  }

  const s3 = raw.s3_export;
  if (s3 && (s3.access_key === null) !== (s3.secret_key === null)) {
    const [set, unset] = s3.access_key === null ? ['secret_key', 'access_key'] : ['access_key', 'secret_key'];
    issues.error(`audit_log.s3_export.${set}`, `is set but \`${unset}\` is empty; set both, or neither to use the default AWS credential chain`);
  }
  const syslog = raw.syslog;
  return {
    enabled: true,
    outputs,
    log_level: level,
    file: outputs.includes('file') && raw.file ? { ...raw.file } : null,
    syslog: outputs.includes('syslog') && syslog ? { ...splitAddress(syslog.address), protocol: syslog.protocol, facility: syslog.facility } : null,
    s3_export: outputs.includes('s3') && s3 ? { ...s3, path_prefix: s3.path_prefix.replace(/^\/+/, '') } : null,
  };
}

export function buildAdmin(
  raw: RawConfig['admin'],
  server: ServerConfig,
  metrics: MetricsConfig,
  buckets: readonly BucketConfig[],
  issues: Issues,
  source: SourceMap,
): AdminConfig {
  if (raw.port === null) {
    // On the proxy listener the admin API owns /admin: a bucket there would never be reached.
    buckets.forEach((bucket, i) => {
      if (bucket.path_prefix === '/admin' || bucket.path_prefix.startsWith('/admin/')) {
        issues.error(
          `buckets[${i}].path_prefix`,
          '`/admin` is the admin API on the proxy listener; choose another prefix, or move the admin API to its own listener (`admin.port`)',
          'value',
        );
      }
    });
  }
  if (raw.port !== null) {
    if (raw.port === server.port && overlaps(raw.address, server.address)) {
      issues.error('admin.port', 'is also the proxy port (`server.port`); pick another, or null to serve the admin API on the proxy port', 'value');
    } else if (metrics.enabled && raw.port === metrics.port && overlaps(raw.address, metrics.address)) {
      issues.error('admin.port', 'is also the metrics port (`metrics.port`); pick another', 'value');
    }
  } else if (source.given('admin.address')) {
    issues.warn('admin.address', 'has no effect without `admin.port`');
  }
  return { token: raw.token, port: raw.port, address: raw.address };
}

function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) };
}

function overlaps(a: string, b: string): boolean {
  const wildcard = (x: string) => x === '0.0.0.0' || x === '::' || x === '[::]';
  return a === b || wildcard(a) || wildcard(b);
}
