// The operations blocks of the config: `audit_log`, `admin`, `cache.warming` — applied, or refused at load
// with the key path and position.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfigText } from '../../src/config/load.js';
import type { ConfigIssue, LoadedConfig } from '../../src/config/types.js';

const BUCKETS = 'buckets:\n  - name: a\n    path_prefix: /a\n    s3: {bucket: a}\n';

function load(text: string): LoadedConfig {
  return loadConfigText(text, 'k.yaml', {});
}

function errors(text: string): ConfigIssue[] {
  try {
    load(text);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.issues;
  }
  assert.fail('expected the config to be refused');
}

describe('audit_log', () => {
  it('is off by default', () => {
    const { audit_log } = load(BUCKETS).config;
    assert.deepEqual(audit_log, { enabled: false, outputs: [], log_level: 'info', file: null, syslog: null, s3_export: null });
  });

  it('applies Yatagarasu keys and defaults; outputs default to the blocks given', () => {
    const { config, warnings } = load(
      `audit_log:\n  enabled: true\n  file: {path: /tmp/a.jsonl}\n  syslog: {address: "127.0.0.1:514"}\n${BUCKETS}`,
    );
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.audit_log.outputs, ['file', 'syslog']);
    assert.deepEqual(config.audit_log.file, { path: '/tmp/a.jsonl', max_file_size_mb: 50, max_backup_files: 5, rotation_policy: 'size', buffer_size: 1048576 });
    assert.deepEqual(config.audit_log.syslog, { host: '127.0.0.1', port: 514, protocol: 'udp', facility: 'local0' });
    assert.equal(config.audit_log.s3_export, null);
  });

  it('writes only the listed outputs and warns about a block that is not listed', () => {
    const { config, warnings } = load(
      `audit_log:\n  enabled: true\n  outputs: [s3]\n  file: {path: /tmp/a}\n  s3_export: {bucket: logs, path_prefix: /audit/, export_interval_seconds: 5, batch_size: 10}\n  log_level: debug\n${BUCKETS}`,
    );
    assert.deepEqual(config.audit_log.outputs, ['s3']);
    assert.equal(config.audit_log.file, null);
    assert.equal(config.audit_log.log_level, 'info', 'debug records everything, like info');
    assert.deepEqual(config.audit_log.s3_export, {
      bucket: 'logs',
      region: 'us-east-1',
      path_prefix: 'audit/',
      export_interval_seconds: 5,
      endpoint: null,
      access_key: null,
      secret_key: null,
      batch_size: 10,
    });
    assert.deepEqual(
      warnings.map((w) => [w.path, w.line, w.message]),
      [['audit_log.file', 4, 'not written: `file` is not listed in `audit_log.outputs`']],
    );
  });

  it('refuses an output without its block, an enabled log without outputs, bad addresses and half credentials', () => {
    assert.deepEqual(
      errors(`audit_log:\n  enabled: true\n  outputs: [file, syslog]\n  syslog: {address: "localhost", protocol: tcp, facility: local9}\n${BUCKETS}`).map((e) => [
        e.path,
        e.line,
        e.column,
      ]),
      [
        ['audit_log.outputs[0]', 3, 13],
        ['audit_log.syslog.address', 4, 21],
        ['audit_log.syslog.facility', 4, 59],
      ],
    );
    const [none] = errors(`audit_log: {enabled: true}\n${BUCKETS}`);
    assert.equal(none.path, 'audit_log.enabled');
    assert.match(none.message, /no output is configured/);
    const [creds] = errors(`audit_log:\n  enabled: true\n  s3_export: {bucket: b, access_key: AK}\n${BUCKETS}`);
    assert.equal(creds.path, 'audit_log.s3_export.access_key');
    const [rotation] = errors(`audit_log:\n  enabled: true\n  file: {path: /tmp/a, rotation_policy: hourly}\n${BUCKETS}`);
    assert.equal(rotation.path, 'audit_log.file.rotation_policy');
  });

  it('warns that the blocks do nothing while the audit log is disabled', () => {
    const { config, warnings } = load(`audit_log: {enabled: false, file: {path: /tmp/a}}\n${BUCKETS}`);
    assert.equal(config.audit_log.enabled, false);
    assert.deepEqual(
      warnings.map((w) => [w.path, w.message]),
      [['audit_log.file', 'has no effect: `audit_log.enabled` is false']],
    );
  });
});

describe('admin', () => {
  it('defaults: no token, admin API on the proxy listener', () => {
    assert.deepEqual(load(BUCKETS).config.admin, { token: null, port: null, address: '127.0.0.1' });
  });

  it('applies a token and a separate listener', () => {
    const { config } = load(`admin: {token: "0123456789abcdef", port: 9091, address: 0.0.0.0}\n${BUCKETS}`);
    assert.deepEqual(config.admin, { token: '0123456789abcdef', port: 9091, address: '0.0.0.0' });
  });

  it('refuses a short token without echoing it, and a port taken by another listener', () => {
    const [short] = errors(`admin: {token: "hunter2"}\n${BUCKETS}`);
    assert.equal(short.path, 'admin.token');
    assert.match(short.message, /at least 16/);
    assert.ok(!short.message.includes('hunter2'));
    const [proxy] = errors(`server: {port: 8080}\nadmin: {port: 8080}\n${BUCKETS}`);
    assert.equal(proxy.path, 'admin.port');
    assert.match(proxy.message, /proxy port/);
    const [metrics] = errors(`metrics: {port: 9090}\nadmin: {port: 9090}\n${BUCKETS}`);
    assert.match(metrics.message, /metrics port/);
  });

  it('refuses a bucket under /admin while the admin API is on the proxy listener', () => {
    const text = 'buckets:\n  - name: a\n    path_prefix: /admin/files\n    s3: {bucket: a}\n';
    const [shadowed] = errors(text);
    assert.deepEqual([shadowed.path, shadowed.line, shadowed.column], ['buckets[0].path_prefix', 3, 18]);
    assert.match(shadowed.message, /admin API/);
    assert.equal(load(`admin: {port: 9091}\n${text}`).config.buckets[0].path_prefix, '/admin/files');
    assert.equal(load('buckets:\n  - name: a\n    path_prefix: /administration\n    s3: {bucket: a}\n').config.buckets.length, 1);
  });

  it('warns that admin.address does nothing without admin.port', () => {
    const { warnings } = load(`admin: {address: 0.0.0.0}\n${BUCKETS}`);
    assert.deepEqual(
      warnings.map((w) => [w.path, w.message]),
      [['admin.address', 'has no effect without `admin.port`']],
    );
  });
});
