import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseDocument, isMap, isSeq, isScalar, type Node as YamlNode } from 'yaml';
import { jsonSchemaText } from '../../src/config/json-schema.js';
import { ConfigError, formatIssue, loadConfigFile, loadConfigText } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import type { Spec } from '../../src/config/schema-dsl.js';
import type { ConfigIssue, LoadedConfig } from '../../src/config/types.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const AWS_ENV = { AWS_ACCESS_KEY: 'AKIDEXAMPLE', AWS_SECRET_KEY: 'secret' };

/**
 * Strips the template's common indentation (before interpolating, so interpolated multi-line text is
 * kept as is) so that line and column numbers in assertions are easy to check by eye.
 */
function y(strings: TemplateStringsArray, ...values: unknown[]): string {
  const HOLE = '\u0000';
  const text = strings.raw.join(HOLE).replace(/^\n/, '');
  const lines = text.split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => /^ */.exec(l)![0].length));
  let i = 0;
  return lines
    .map((l) => l.slice(indent))
    .join('\n')
    .replaceAll("\u0000", () => String(values[i++]));
}

/** A valid bucket list, appended after the part under test so that its lines come first. */
const BUCKETS = 'buckets:\n  - name: a\n    path_prefix: /a\n    s3: {bucket: a}\n';

function load(text: string, env: NodeJS.ProcessEnv = {}): LoadedConfig {
  return loadConfigText(text, 'test.yaml', env);
}

function issues(text: string, env: NodeJS.ProcessEnv = {}): ConfigIssue[] {
  try {
    load(text, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.issues;
  }
  assert.fail('expected the config to be rejected');
}

type Expected = { path: string; line: number; column: number; message: RegExp };

/** Exactly these errors, in file order. */
function assertErrors(text: string, expected: Expected[], env: NodeJS.ProcessEnv = {}): void {
  const found = issues(text, env);
  assert.deepEqual(
    found.map((i) => ({ path: i.path, line: i.line, column: i.column })),
    expected.map(({ path, line, column }) => ({ path, line, column })),
    found.map(formatIssue).join('\n'),
  );
  found.forEach((issue, i) => assert.match(issue.message, expected[i].message, formatIssue(issue)));
}

function assertError(text: string, expected: Expected, env: NodeJS.ProcessEnv = {}): void {
  assertErrors(text, [expected], env);
}

function warningsOf(text: string, env: NodeJS.ProcessEnv = {}): ConfigIssue[] {
  return load(text, env).warnings;
}

describe('Yatagarasu example configs', () => {
  it('loads the simple example unchanged', async () => {
    const { config, warnings } = await loadConfigFile(join(root, 'config/examples/yatagarasu-simple.yaml'), AWS_ENV);
    assert.deepEqual(warnings, []);
    assert.equal(config.source, join(root, 'config/examples/yatagarasu-simple.yaml'));
    assert.deepEqual(config.server.address, '0.0.0.0');
    assert.equal(config.server.port, 8080);
    const [bucket] = config.buckets;
    assert.equal(bucket.name, 'public-assets');
    assert.equal(bucket.path_prefix, '/public');
    assert.deepEqual(bucket.s3.replicas, [
      {
        name: 'default',
        bucket: 'public-assets',
        region: 'us-east-1',
        endpoint: 'http://minio:9000',
        access_key: 'AKIDEXAMPLE',
        secret_key: 'secret',
        priority: 1,
        timeout: 20,
      },
    ]);
    assert.deepEqual(config.logging, { level: 'info', format: 'json' });
    assert.deepEqual(config.metrics, { enabled: true, port: 9090, address: '0.0.0.0' });
    assert.equal(config.cache.enabled, false);
  });

  it('loads the HA example with memory and redis tiers', async () => {
    const { config, warnings } = await loadConfigFile(join(root, 'config/examples/yatagarasu-ha-redis.yaml'), AWS_ENV);
    assert.deepEqual(warnings, []);
    assert.equal(config.cache.enabled, true);
    assert.deepEqual(config.cache.cache_layers, ['memory', 'redis']);
    assert.deepEqual(config.cache.memory, { max_item_size_mb: 10, max_cache_size_mb: 100, default_ttl_seconds: 300 });
    assert.equal(config.cache.redis.enabled, true);
    assert.equal(config.cache.redis.redis_url, 'redis://redis:6379');
    assert.equal(config.cache.redis.redis_ttl_seconds, 3600);
  });

  it('names the unset variable and its position', async () => {
    const file = join(root, 'config/examples/yatagarasu-simple.yaml');
    const text = await readFile(file, 'utf8');
    const lines = text.split('\n');
    const line = lines.findIndex((l) => l.includes('${AWS_ACCESS_KEY}')) + 1;
    const column = lines[line - 1].indexOf('${AWS_ACCESS_KEY}') + 1;
    await assert.rejects(loadConfigFile(file, { AWS_SECRET_KEY: 'x' }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.issues.length, 1);
      assert.equal(
        err.message,
        `${file}:${line}:${column}: buckets[0].s3.access_key: environment variable AWS_ACCESS_KEY is not set (write \${AWS_ACCESS_KEY:-default} to give a default)`,
      );
      return true;
    });
  });
});

describe('shipped Karasu configs', () => {
  it('config/karasu.yaml loads without warnings, endpoint from S3_ENDPOINT or its default', async () => {
    const file = join(root, 'config/karasu.yaml');
    const plain = await loadConfigFile(file, {});
    assert.deepEqual(plain.warnings, []);
    assert.equal(plain.config.buckets[0].path_prefix, '/public');
    assert.equal(plain.config.buckets[0].s3.replicas[0].bucket, 'public');
    assert.equal(plain.config.buckets[0].s3.replicas[0].endpoint, 'http://127.0.0.1:9000');
    assert.deepEqual(plain.config.cache.cache_layers, ['memory']);
    assert.equal(plain.config.cache.enabled, true);
    const custom = await loadConfigFile(file, { S3_ENDPOINT: 'https://s3.example.com', KARASU_PORT: '9000' });
    assert.equal(custom.config.buckets[0].s3.replicas[0].endpoint, 'https://s3.example.com');
    assert.equal(custom.config.server.port, 9000);
  });

  it('config/examples/full.yaml loads without warnings and applies its values', async () => {
    const { config, warnings } = await loadConfigFile(join(root, 'config/examples/full.yaml'), {});
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.server.trusted_proxies, ['10.0.0.0/8', '192.168.1.10', 'fd00::/8']);
    assert.deepEqual(config.server.coalescing, { enabled: true });
    const [assets, products] = config.buckets;
    assert.equal(assets.s3.connect_timeout, 3);
    assert.equal(assets.s3.idle_timeout, 30);
    assert.equal(assets.s3.replicas[0].timeout, 30);
    assert.deepEqual(assets.cache, { enabled: true, ttl_seconds: 86400, max_item_size_mb: 50 });
    assert.equal(assets.cors?.allow_credentials, true);
    assert.deepEqual(
      products.s3.replicas.map((r) => [r.name, r.priority, r.timeout]),
      [
        ['primary', 1, 5],
        ['backup', 2, 10],
      ],
    );
    assert.equal(products.s3.connect_timeout, 5);
    assert.deepEqual(config.cache.cache_layers, ['memory', 'disk', 'redis']);
    assert.equal(config.cache.redis.redis_password, null);
    assert.equal(config.cache.redis.timeout_ms, 250);
    assert.deepEqual(config.metrics, { enabled: true, port: 9090, address: '127.0.0.1' });
  });

  it('config/examples/full.yaml covers every key Karasu applies', async () => {
    const text = await readFile(join(root, 'config/examples/full.yaml'), 'utf8');
    const written = new Set<string>();
    collectKeys(parseDocument(text).contents as YamlNode, '', written);
    // A JWT block is one description wherever it is written: the top-level `jwt` and the buckets'
    // `auth.jwt` cover each other (a block's single-key forms exclude one another).
    const jwtBlock = (key: string) => key.replace(/^buckets\.auth\.jwt\./, 'jwt.');
    const coverage = new Set([...written].map(jwtBlock));
    const missing = appliedKeys(configSchema, '').filter((key) => !coverage.has(jwtBlock(key)));
    assert.deepEqual(missing, []);
  });

  it('docs/configuration.md documents every key of the schema', async () => {
    const doc = await readFile(join(root, 'docs/configuration.md'), 'utf8');
    const undocumented = allKeys(configSchema, '').filter((key) => !doc.includes(`\`${key}\``));
    assert.deepEqual(undocumented, []);
  });

  it('every alias in the schema points at a sibling key that Karasu applies', () => {
    const broken: string[] = [];
    const visit = (spec: Spec, path: string): void => {
      if (spec.kind === 'array') return visit(spec.items, `${path}[]`);
      if (spec.kind !== 'object') return;
      for (const [name, field] of Object.entries(spec.fields)) {
        const target = field.kind === 'alias' ? spec.fields[field.target] : undefined;
        if (field.kind === 'alias' && (!target || ['alias', 'ignored', 'unavailable', 'any'].includes(target.kind))) {
          broken.push(`${path}.${name}`);
        }
        visit(field, path ? `${path}.${name}` : name);
      }
    };
    visit(configSchema, '');
    assert.deepEqual(broken, []);
  });

  it('config/karasu.schema.json is what scripts/gen-schema.ts generates', async () => {
    const committed = await readFile(join(root, 'config/karasu.schema.json'), 'utf8');
    assert.equal(committed, jsonSchemaText(), 'run `npx tsx scripts/gen-schema.ts`');
  });
});

/** Blocks of features Karasu does not have: accepted only while off, so full.yaml leaves them out. */
const DISABLED_FEATURES = new Set([
  'server.rate_limit',
  'buckets.ip_filter',
  'buckets.watermark',
  'observability',
  'image_optimization',
  'shutdown',
]);

function appliedKeys(spec: Spec, path: string): string[] {
  if (spec.kind === 'array') return appliedKeys(spec.items, path);
  if (spec.kind !== 'object') return [];
  return Object.entries(spec.fields).flatMap(([name, field]) => {
    const child = path ? `${path}.${name}` : name;
    if (DISABLED_FEATURES.has(child) || ['alias', 'ignored', 'unavailable', 'any'].includes(field.kind)) return [];
    return [child, ...appliedKeys(field, child)];
  });
}

/** Every key path, `[]` marking list items; the inert contents of switched-off blocks are left out. */
function allKeys(spec: Spec, path: string): string[] {
  if (spec.kind === 'array') return allKeys(spec.items, `${path}[]`);
  if (spec.kind !== 'object') return [];
  return Object.entries(spec.fields).flatMap(([name, field]) => {
    const child = path ? `${path}.${name}` : name;
    return field.kind === 'any' ? [] : [child, ...allKeys(field, child)];
  });
}

function collectKeys(node: YamlNode, path: string, out: Set<string>): void {
  if (isSeq(node)) for (const item of node.items) collectKeys(item as YamlNode, path, out);
  if (!isMap(node)) return;
  for (const pair of node.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : '';
    const child = path ? `${path}.${key}` : key;
    out.add(child);
    collectKeys(pair.value as YamlNode, child, out);
  }
}

describe('errors are positioned and collected', () => {
  it('reports YAML syntax errors with their position', () => {
    assertError(y`
      server:
        port: [8080
      ${BUCKETS}`, { path: '', line: 3, column: 1, message: /^invalid YAML: / });
  });

  it('reports duplicate keys as YAML errors', () => {
    assertError(y`
      server:
        port: 1
        port: 2
      ${BUCKETS}`, { path: '', line: 3, column: 3, message: /unique/ });
  });

  it('collects every problem into one error, formatted one per line', () => {
    const text = y`
      server:
        port: -1
        adress: x
      buckets: []
    `;
    try {
      load(text);
      assert.fail('expected an error');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.equal(
        err.message,
        [
          'test.yaml:2:9: server.port: must be at least 0 (got -1)',
          'test.yaml:3:3: server.adress: unknown key `adress`; did you mean `address`?',
          'test.yaml:4:10: buckets: must list at least 1 item',
        ].join('\n'),
      );
    }
  });

  it('requires buckets', () => {
    assertError('server: {port: 80}\n', { path: 'buckets', line: 1, column: 1, message: /missing required key `buckets`/ });
    assertError('', { path: '', line: 1, column: 1, message: /empty/ });
  });

  it('rejects a top level that is not a mapping', () => {
    assertError('- a\n- b\n', { path: '', line: 1, column: 1, message: /expected a mapping, got a list/ });
  });

  it('suggests the closest key for an unknown one', () => {
    assertErrors(y`
      bukets: []
      ${BUCKETS}
      cache:
        memroy: {}
        frobnicate: 1
    `, [
      { path: 'bukets', line: 1, column: 1, message: /^unknown key `bukets`; did you mean `buckets`\?$/ },
      { path: 'cache.memroy', line: 8, column: 3, message: /did you mean `memory`\?/ },
      { path: 'cache.frobnicate', line: 9, column: 3, message: /^unknown key `frobnicate`$/ },
    ]);
  });

  it('explains a quoted number', () => {
    assertError(y`
      server:
        port: "8080"
      ${BUCKETS}`, { path: 'server.port', line: 2, column: 9, message: /expected an integer, got the string "8080" \(remove the quotes\)/ });
  });

  it('explains YAML 1.1 booleans', () => {
    assertError(y`
      cache:
        enabled: yes
      ${BUCKETS}`, { path: 'cache.enabled', line: 2, column: 12, message: /YAML 1.2 reads it as a string/ });
  });

  it('suggests the closest enum value', () => {
    assertError(y`
      logging:
        level: warning
      ${BUCKETS}`, { path: 'logging.level', line: 2, column: 10, message: /got `warning`\); did you mean `warn`\?/ });
  });

  it('loadConfigFile reports an unreadable file as a ConfigError', async () => {
    await assert.rejects(loadConfigFile('/nonexistent/karasu.yaml'), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /^\/nonexistent\/karasu\.yaml: cannot read the config file: ENOENT/);
      return true;
    });
  });

  it('formatIssue leaves out an empty path', () => {
    assert.equal(formatIssue({ file: 'f', line: 2, column: 3, path: '', message: 'm' }), 'f:2:3: m');
    assert.equal(formatIssue({ file: 'f', line: 2, column: 3, path: 'a.b', message: 'm' }), 'f:2:3: a.b: m');
  });

  it('resolves anchors, aliases and merge keys', () => {
    const merged = load(y`
      buckets:
        - name: a
          path_prefix: /a
          s3: &base {bucket: a, region: eu-west-1}
        - name: b
          path_prefix: /b
          s3:
            <<: *base
            bucket: b
    `).config;
    assert.deepEqual(
      merged.buckets.map((b) => [b.s3.replicas[0].bucket, b.s3.replicas[0].region]),
      [
        ['a', 'eu-west-1'],
        ['b', 'eu-west-1'],
      ],
    );
  });
});

describe('environment substitution', () => {
  it('substitutes values, with defaults, re-resolving unquoted scalars', () => {
    const { config } = load(
      y`
        server:
          port: ${'${PORT}'}
          address: "${'${HOST:-127.0.0.1}'}"
        metrics:
          enabled: ${'${METRICS:-false}'}
        ${BUCKETS}`,
      { PORT: '9000' },
    );
    assert.equal(config.server.port, 9000);
    assert.equal(config.server.address, '127.0.0.1');
    assert.equal(config.metrics.enabled, false);
  });

  it('keeps a quoted substitution a string', () => {
    assertError(
      y`
        server:
          port: "${'${PORT}'}"
        ${BUCKETS}`,
      { path: 'server.port', line: 2, column: 9, message: /got the string "9000" \(remove the quotes\)/ },
      { PORT: '9000' },
    );
  });

  it('uses the default for a variable that is set but empty, as the shell does', () => {
    const { config } = load(`server:\n  address: \${HOST:-0.0.0.0}\n${BUCKETS}`, { HOST: '' });
    assert.equal(config.server.address, '0.0.0.0');
  });

  it('reports each unset variable at its own column', () => {
    assertErrors(
      y`
        server:
          address: "${'${A}'}:${'${B}'}"
        ${BUCKETS}`,
      [
        { path: 'server.address', line: 2, column: 13, message: /variable A is not set/ },
        { path: 'server.address', line: 2, column: 18, message: /variable B is not set/ },
      ],
    );
  });

  it('rejects malformed references', () => {
    assertError(`server:\n  address: \${HOST:0.0.0.0}\n${BUCKETS}`, {
      path: 'server.address',
      line: 2,
      column: 12,
      message: /invalid reference `\$\{HOST:0\.0\.0\.0\}`/,
    });
  });

  it('never touches comments or keys, and writes $${ as a literal ${', () => {
    const { config } = load(`# \${NOT_SET} in a comment\nserver:\n  address: "$\${x}" # \${ALSO_NOT_SET}\n${BUCKETS}`);
    assert.equal(config.server.address, '${x}');
    assertError(`\${KEY}: 1\n${BUCKETS}`, { path: '${KEY}', line: 1, column: 1, message: /unknown key `\$\{KEY\}`/ }, { KEY: 'server' });
  });
});

describe('server', () => {
  it('fills defaults', () => {
    const { config, warnings } = load(BUCKETS);
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.server, {
      address: '0.0.0.0',
      port: 8080,
      request_timeout: 30,
      max_concurrent_requests: 1000,
      security_limits: { max_body_size: 10485760, max_header_size: 65536, max_uri_length: 8192 },
      trusted_proxies: [],
      shutdown_timeout_seconds: 30,
      coalescing: { enabled: true },
    });
    assert.equal(config.source, null);
  });

  it('accepts "host:port" in address when port is absent', () => {
    assert.deepEqual(
      [load(`server: {address: "127.0.0.1:9000"}\n${BUCKETS}`).config.server].map((s) => [s.address, s.port]),
      [['127.0.0.1', 9000]],
    );
    assert.equal(load(`server: {address: "[::1]:9001"}\n${BUCKETS}`).config.server.address, '::1');
    assert.equal(load(`server: {address: "::"}\n${BUCKETS}`).config.server.port, 8080);
    assertError(`server:\n  address: "0.0.0.0:9000"\n  port: 8080\n${BUCKETS}`, {
      path: 'server.address',
      line: 2,
      column: 12,
      message: /includes a port \(9000\) and `server.port` is also set/,
    });
  });

  it('validates trusted_proxies', () => {
    assertErrors(`server:\n  trusted_proxies: [10.0.0.0/8, 10.0.0.0/33, nope, "::1"]\n${BUCKETS}`, [
      { path: 'server.trusted_proxies[1]', line: 2, column: 33, message: /invalid prefix length/ },
      { path: 'server.trusted_proxies[2]', line: 2, column: 46, message: /not an IP address or CIDR range/ },
    ]);
  });

  it('warns that threads has no effect', () => {
    const [warning] = warningsOf(`server:\n  threads: 8\n${BUCKETS}`);
    assert.deepEqual(warning, {
      file: 'test.yaml',
      line: 2,
      column: 3,
      path: 'server.threads',
      message: 'has no effect: Karasu runs one event loop per process',
    });
  });

  it('rejects enabled rate limiting, accepts it disabled', () => {
    assertError(`server:\n  rate_limit:\n    enabled: true\n${BUCKETS}`, {
      path: 'server.rate_limit.enabled',
      line: 3,
      column: 14,
      message: /^rate limiting is not available in this version of Karasu$/,
    });
    assert.deepEqual(warningsOf(`server:\n  rate_limit: {enabled: false, global: {requests_per_second: 5}}\n${BUCKETS}`), []);
  });

  it('warns that the coalescing strategy has no effect, and validates ranges', () => {
    const warnings = warningsOf(`server:\n  coalescing: {strategy: wait_for_complete}\n${BUCKETS}`);
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0].path, 'server.coalescing.strategy');
    assert.match(warnings[0].message, /always streams/);
    assertErrors(`server:\n  request_timeout: 0\n${BUCKETS}`, [
      { path: 'server.request_timeout', line: 2, column: 20, message: /must be greater than 0/ },
    ]);
  });
});

describe('buckets', () => {
  it('normalises path_prefix and checks uniqueness after normalising', () => {
    const { config } = load(y`
      buckets:
        - {name: a, path_prefix: /a/, s3: {bucket: a}}
        - {name: root, path_prefix: /, s3: {bucket: r}}
    `);
    assert.deepEqual(config.buckets.map((b) => b.path_prefix), ['/a', '/']);
    assertErrors(y`
      buckets:
        - {name: a, path_prefix: /a, s3: {bucket: a}}
        - {name: a, path_prefix: /a/, s3: {bucket: b}}
        - {name: c, path_prefix: c, s3: {bucket: c}}
    `, [
      { path: 'buckets[1].name', line: 3, column: 12, message: /duplicate bucket name \(also `buckets\[0\].name`\)/ },
      { path: 'buckets[1].path_prefix', line: 3, column: 28, message: /routes the same prefix as `buckets\[0\].path_prefix`/ },
      { path: 'buckets[2].path_prefix', line: 4, column: 28, message: /must start with '\/'/ },
    ]);
  });

  it('requires name, path_prefix and s3', () => {
    assertErrors('buckets:\n  - name: a\n', [
      { path: 'buckets[0].path_prefix', line: 2, column: 5, message: /missing required key `path_prefix`/ },
      { path: 'buckets[0].s3', line: 2, column: 5, message: /missing required key `s3`/ },
    ]);
  });

  it('refuses auth.enabled without JWT settings, naming the bucket (more in config-jwt.test.ts)', () => {
    assertError(`buckets:\n  - name: private\n    path_prefix: /p\n    s3: {bucket: p}\n    auth:\n      enabled: true\n`, {
      path: 'buckets[0].auth.enabled',
      line: 6,
      column: 7,
      message: /^is true but no JWT settings apply: .*refusing to serve bucket `private` without the authentication its config asks for$/,
    });
  });

  it('refuses authorization, non-empty IP filters and watermarks', () => {
    assertErrors(`${BUCKETS}    authorization: {type: opa}\n    ip_filter: {allowlist: [], blocklist: [1.2.3.4]}\n    watermark: {enabled: true}\n`, [
      { path: 'buckets[0].authorization', line: 5, column: 5, message: /^OPA\/OpenFGA authorization is not available.*bucket `a`/ },
      { path: 'buckets[0].ip_filter.blocklist', line: 6, column: 32, message: /^IP filtering is not available.*bucket `a`/ },
      { path: 'buckets[0].watermark.enabled', line: 7, column: 26, message: /^image watermarking is out of scope for Karasu$/ },
    ]);
    assert.deepEqual(warningsOf(`${BUCKETS}    ip_filter: {allowlist: [], blocklist: []}\n    watermark: {enabled: false}\n`), []);
  });

  it('maps per-bucket cache overrides, null when absent', () => {
    const { config } = load(`cache: {enabled: true}\n${BUCKETS}    cache: {ttl_seconds: 60}\n`);
    assert.deepEqual(config.buckets[0].cache, { enabled: null, ttl_seconds: 60, max_item_size_mb: null });
  });

  it('warns when a bucket cache block cannot apply because caching is off', () => {
    const [warning] = warningsOf(`${BUCKETS}    cache: {enabled: true}\n`);
    assert.equal(warning.path, 'buckets[0].cache');
    assert.match(warning.message, /caching is off/);
  });

  it('builds CORS with defaults and rejects "*" with credentials', () => {
    const { config } = load(`${BUCKETS}    cors: {allowed_origins: ["*"]}\n`);
    assert.deepEqual(config.buckets[0].cors, {
      allowed_origins: ['*'],
      allowed_headers: [],
      expose_headers: [],
      max_age_seconds: 600,
      allow_credentials: false,
    });
    assert.equal(load(BUCKETS).config.buckets[0].cors, null);
    assertErrors(`${BUCKETS}    cors:\n      allowed_origins: ["*", "https://A.example/"]\n      allow_credentials: true\n`, [
      { path: 'buckets[0].cors.allowed_origins[1]', line: 6, column: 30, message: /did you mean `https:\/\/a.example`\?/ },
      { path: 'buckets[0].cors.allow_credentials', line: 7, column: 26, message: /cannot be true while `allowed_origins` contains "\*"/ },
    ]);
    assertError(`${BUCKETS}    cors: {max_age_seconds: 5}\n`, {
      path: 'buckets[0].cors.allowed_origins',
      line: 5,
      column: 5,
      message: /missing required key `allowed_origins`/,
    });
  });
});

describe('buckets[].s3', () => {
  const bucket = (s3: string) => `buckets:\n  - name: b\n    path_prefix: /b\n    s3:\n${s3}`;

  it('turns the legacy single backend into one replica named "default"', () => {
    const { config } = load(bucket('      bucket: data\n      region: ""\n      access_key: ""\n      secret_key: ""\n'));
    assert.deepEqual(config.buckets[0].s3, {
      replicas: [
        { name: 'default', bucket: 'data', region: 'us-east-1', endpoint: null, access_key: null, secret_key: null, priority: 1, timeout: 20 },
      ],
      connect_timeout: 5,
      idle_timeout: 20,
      connection_pool_size: 50,
      retry: { max_attempts: 3, initial_backoff_ms: 100, max_backoff_ms: 1000 },
      circuit_breaker: { failure_threshold: 5, success_threshold: 2, timeout_seconds: 60, half_open_max_requests: 3 },
    });
  });

  it('sorts replicas by priority, defaulting priority to position + 1 and timeout to s3.timeout', () => {
    const { config, warnings } = load(
      bucket(y`
        replicas:
          - {name: slow, bucket: s, priority: 3}
          - {name: fast, bucket: f, timeout_seconds: 2}
          - {name: first, bucket: x, priority: 1, timeout: 4}
        timeout: 7
        connect_timeout_seconds: 2
      `.replace(/^/gm, '      ')),
    );
    assert.deepEqual(
      config.buckets[0].s3.replicas.map((r) => [r.name, r.priority, r.timeout]),
      [
        ['first', 1, 4],
        ['fast', 2, 2],
        ['slow', 3, 7],
      ],
    );
    assert.equal(config.buckets[0].s3.connect_timeout, 2);
    assert.equal(config.buckets[0].s3.idle_timeout, 7);
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0].path, 'buckets[0].s3.replicas[1].timeout_seconds');
    assert.match(warnings[0].message, /applied as `timeout`/);
  });

  it('defaults connect_timeout to min(timeout, 5)', () => {
    assert.equal(load(bucket('      bucket: x\n      timeout: 2\n')).config.buckets[0].s3.connect_timeout, 2);
  });

  it('rejects legacy keys next to replicas', () => {
    assertError(bucket('      bucket: x\n      region: eu-west-1\n      replicas:\n        - {name: r, bucket: y}\n'), {
      path: 'buckets[0].s3.bucket',
      line: 5,
      column: 7,
      message: /cannot be combined with `replicas` \(legacy single-backend keys here: `bucket`, `region`\)/,
    });
  });

  it('requires a bucket without replicas', () => {
    assertError(bucket('      region: eu-west-1\n'), {
      path: 'buckets[0].s3.bucket',
      line: 4,
      column: 5,
      message: /missing required key `bucket` \(or list the backends under `replicas`\)/,
    });
  });

  it('checks replica names, priorities and required keys', () => {
    assertErrors(
      bucket(y`
        replicas:
          - {name: a, bucket: x}
          - {name: a, bucket: y, priority: 1}
          - {name: c}
      `.replace(/^/gm, '      ')),
      [
        { path: 'buckets[0].s3.replicas[1].name', line: 7, column: 18, message: /duplicate replica name/ },
        { path: 'buckets[0].s3.replicas[1].priority', line: 7, column: 42, message: /priority 1 is also used by `buckets\[0\].s3.replicas\[0\]`/ },
        { path: 'buckets[0].s3.replicas[2].bucket', line: 8, column: 11, message: /missing required key `bucket`/ },
      ],
    );
  });

  it('validates endpoints and credential pairs', () => {
    assertErrors(bucket('      bucket: x\n      endpoint: minio:9000\n      access_key: AK\n'), [
      { path: 'buckets[0].s3.endpoint', line: 6, column: 17, message: /is not an http:\/\/ or https:\/\/ URL/ },
      { path: 'buckets[0].s3.access_key', line: 7, column: 7, message: /is set but `secret_key` is empty/ },
    ]);
  });

  it('checks retry backoffs and refuses s3.rate_limit', () => {
    assertErrors(bucket('      bucket: x\n      retry: {initial_backoff_ms: 500, max_backoff_ms: 100}\n      rate_limit: {requests_per_second: 5}\n'), [
      { path: 'buckets[0].s3.retry.max_backoff_ms', line: 6, column: 56, message: /must be at least `initial_backoff_ms`/ },
      { path: 'buckets[0].s3.rate_limit', line: 7, column: 7, message: /^per-bucket rate limiting is not available in this version of Karasu$/ },
    ]);
  });

  it('applies the website circuit-breaker alias and warns about path_style', () => {
    const { config, warnings } = load(bucket('      bucket: x\n      path_style: true\n      circuit_breaker: {half_open_requests: 1}\n'));
    assert.equal(config.buckets[0].s3.circuit_breaker.half_open_max_requests, 1);
    assert.deepEqual(warnings.map((w) => w.path), ['buckets[0].s3.path_style', 'buckets[0].s3.circuit_breaker.half_open_requests']);
  });

  it('reads a numeric access key as written', () => {
    const { config } = load(bucket('      bucket: x\n      access_key: 0123\n      secret_key: s\n'));
    assert.equal(config.buckets[0].s3.replicas[0].access_key, '0123');
  });
});

describe('cache', () => {
  it('fills defaults', () => {
    assert.deepEqual(load(BUCKETS).config.cache, {
      enabled: false,
      cache_layers: ['memory'],
      memory: { max_item_size_mb: 10, max_cache_size_mb: 1024, default_ttl_seconds: 3600 },
      disk: { enabled: false, cache_dir: '/var/cache/karasu', max_disk_cache_size_mb: 10240, max_item_size_mb: 1024 },
      redis: {
        enabled: false,
        redis_url: null,
        redis_password: null,
        redis_db: 0,
        redis_key_prefix: 'karasu:',
        redis_ttl_seconds: 3600,
        max_item_size_mb: 10,
        timeout_ms: 500,
      },
      stale_while_revalidate_seconds: 0,
      stale_if_error_seconds: 0,
      warming: { concurrency: 10, rate_limit: 100 },
    });
  });

  it('rejects listed tiers that are disabled or duplicated, and redis without a URL', () => {
    assertErrors(y`
      cache:
        enabled: true
        cache_layers: [memory, disk, memory, redis]
        redis: {enabled: true}
      ${BUCKETS}`, [
      { path: 'cache.cache_layers[1]', line: 3, column: 26, message: /`disk` is listed but `cache.disk.enabled` is false/ },
      { path: 'cache.cache_layers[2]', line: 3, column: 32, message: /`memory` is listed twice/ },
      { path: 'cache.redis.redis_url', line: 4, column: 3, message: /is required when `redis` is listed/ },
    ]);
    assertError(`cache:\n  enabled: true\n  memory: {enabled: false}\n${BUCKETS}`, {
      path: 'cache.cache_layers[0]',
      line: 1,
      column: 1,
      message: /`memory` is listed but `cache.memory.enabled` is false/,
    });
  });

  it('validates the redis URL scheme', () => {
    assertError(`cache:\n  redis: {redis_url: "http://r:6379"}\n${BUCKETS}`, {
      path: 'cache.redis.redis_url',
      line: 2,
      column: 22,
      message: /not a redis:\/\/ or rediss:\/\/ URL/,
    });
  });

  it('warns about an enabled tier that is not listed, and about sendfile', () => {
    const warnings = warningsOf(`cache:\n  enabled: true\n  redis: {enabled: true, redis_url: "redis://r"}\n  disk: {sendfile: {enabled: true}}\n${BUCKETS}`);
    assert.deepEqual(
      warnings.map((w) => [w.path, w.line, w.column, w.message]),
      [
        ['cache.redis.enabled', 3, 11, 'tier not used: `redis` is not listed in `cache.cache_layers`'],
        ['cache.disk.sendfile', 4, 10, 'has no effect: Karasu streams disk entries itself; there is no sendfile switch'],
      ],
    );
  });

  it('applies cache.warming (prewarm tasks) with Yatagarasu defaults', () => {
    assert.deepEqual(load(BUCKETS).config.cache.warming, { concurrency: 10, rate_limit: 100 });
    assert.deepEqual(load(`cache:\n  warming: {concurrency: 4, rate_limit: 2.5}\n${BUCKETS}`).config.cache.warming, { concurrency: 4, rate_limit: 2.5 });
    assertError(`cache:\n  warming: {rate_limit: 0}\n${BUCKETS}`, { path: 'cache.warming.rate_limit', line: 2, column: 25, message: /greater than 0|> 0/ });
  });

  it('applies Yatagarasu website and load-test names with a warning naming the canonical key', () => {
    const { config, warnings } = load(y`
      cache:
        enabled: true
        cache_layers: [memory, disk, redis]
        memory: {enabled: true, max_memory_cache_mb: 128, max_entry_size_mb: 5, ttl_seconds: 60}
        disk: {enabled: true, path: /tmp/k, max_capacity: 1073741824, max_file_size: 5242880}
        redis: {enabled: true, url: "redis://r:6379", pool_size: 10, timeout_ms: 100, ttl_seconds: 60}
      ${BUCKETS}`);
    assert.deepEqual(config.cache.memory, { max_item_size_mb: 5, max_cache_size_mb: 128, default_ttl_seconds: 60 });
    assert.deepEqual(config.cache.disk, { enabled: true, cache_dir: '/tmp/k', max_disk_cache_size_mb: 1024, max_item_size_mb: 5 });
    assert.equal(config.cache.redis.redis_url, 'redis://r:6379');
    assert.equal(config.cache.redis.redis_ttl_seconds, 60);
    assert.equal(config.cache.redis.timeout_ms, 100);
    assert.deepEqual(
      warnings.map((w) => [w.path, w.message.match(/applied as `([a-z_]+)`|has no effect/)?.[0]]),
      [
        ['cache.memory.max_memory_cache_mb', 'applied as `max_cache_size_mb`'],
        ['cache.memory.max_entry_size_mb', 'applied as `max_item_size_mb`'],
        ['cache.memory.ttl_seconds', 'applied as `default_ttl_seconds`'],
        ['cache.disk.path', 'applied as `cache_dir`'],
        ['cache.disk.max_capacity', 'applied as `max_disk_cache_size_mb`'],
        ['cache.disk.max_file_size', 'applied as `max_item_size_mb`'],
        ['cache.redis.url', 'applied as `redis_url`'],
        ['cache.redis.pool_size', 'has no effect'],
        ['cache.redis.ttl_seconds', 'applied as `redis_ttl_seconds`'],
      ],
    );
    assert.match(warnings[4].message, /= 1024 \(bytes converted to MB\)/);
  });

  it('rejects an alias next to the key it stands for', () => {
    assertError(`cache:\n  disk: {cache_dir: /a, path: /b}\n${BUCKETS}`, {
      path: 'cache.disk.path',
      line: 2,
      column: 25,
      message: /sets the same thing as `cache_dir`/,
    });
  });

  it('warns that cache settings do nothing while caching is off', () => {
    const [warning] = warningsOf(`cache:\n  memory: {max_cache_size_mb: 10}\n${BUCKETS}`);
    assert.deepEqual([warning.path, warning.line, warning.column], ['cache', 1, 1]);
    assert.match(warning.message, /`cache.enabled` is false/);
  });
});

describe('logging and metrics', () => {
  it('validates and applies logging, mapping Yatagarasu `text` to pretty', () => {
    const loaded = load(`logging: {level: debug, format: text}\n${BUCKETS}`);
    assert.deepEqual(loaded.config.logging, { level: 'debug', format: 'pretty' });
    assert.match(loaded.warnings[0].message, /applied as `pretty`/);
    assert.deepEqual(load(BUCKETS).config.logging, { level: 'info', format: 'auto' });
  });

  it('defaults metrics and rejects a separate port equal to the proxy port', () => {
    assert.deepEqual(load(BUCKETS).config.metrics, { enabled: true, port: null, address: '0.0.0.0' });
    assertError(`metrics: {port: 8080}\n${BUCKETS}`, {
      path: 'metrics.port',
      line: 1,
      column: 17,
      message: /is also the proxy port/,
    });
  });
});

describe('top-level Yatagarasu blocks', () => {
  it('refuses features that are switched on, accepts them switched off', () => {
    assertErrors(y`
      observability:
        tracing: {enabled: true}
        request_logging: {log_requests: true, log_responses: true}
        slow_query: {enabled: true}
      image_optimization: {enabled: true}
      ${BUCKETS}`, [
      { path: 'observability.tracing.enabled', line: 2, column: 22, message: /^tracing is not available/ },
      { path: 'observability.request_logging.log_requests', line: 3, column: 35, message: /^request logging is not available/ },
      { path: 'observability.request_logging.log_responses', line: 3, column: 56, message: /^response logging is not available/ },
      { path: 'observability.slow_query.enabled', line: 4, column: 25, message: /^slow query logging is not available/ },
      { path: 'image_optimization.enabled', line: 5, column: 31, message: /^image optimisation is out of scope for Karasu$/ },
    ]);
    const off = load(y`
      jwt: {enabled: false}
      audit_log: {enabled: false}
      observability: {tracing: {enabled: false}, request_logging: {log_requests: false}, slow_query: {enabled: false}}
      image_optimization: {enabled: false}
      ${BUCKETS}`);
    assert.deepEqual(off.warnings, []);
    assertError(`jwt: {enabled: false, secrett: x}\n${BUCKETS}`, { path: 'jwt.secrett', line: 1, column: 23, message: /did you mean `secret`\?/ });
  });

  it('warns about documentation-only blocks and applies shutdown.timeout_seconds', () => {
    const { config, warnings } = load(y`
      rate_limiting: {enabled: true}
      limits: {max_header_size: 8KB}
      circuit_breaker: {failure_threshold: 5}
      shutdown: {timeout_seconds: 12, drain: true}
      ${BUCKETS}`);
    assert.equal(config.server.shutdown_timeout_seconds, 12);
    assert.deepEqual(
      warnings.map((w) => [w.path, w.line, w.column]),
      [
        ['rate_limiting', 1, 1],
        ['limits', 2, 1],
        ['circuit_breaker', 3, 1],
        ['shutdown.timeout_seconds', 4, 12],
        ['shutdown.drain', 4, 33],
      ],
    );
    assert.match(warnings[0].message, /^has no effect: /);
    assert.match(warnings[3].message, /applied as `server.shutdown_timeout_seconds`/);
    assertError(`server: {shutdown_timeout_seconds: 5}\nshutdown: {timeout: 12}\n${BUCKETS}`, {
      path: 'shutdown.timeout',
      line: 2,
      column: 12,
      message: /sets the same thing as `server.shutdown_timeout_seconds`/,
    });
  });
});

describe('loadConfigFile', () => {
  it('reads the file and records its absolute path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'karasu-config-'));
    try {
      const file = join(dir, 'k.yaml');
      await writeFile(file, BUCKETS);
      const { config } = await loadConfigFile(file, {});
      assert.equal(config.source, file);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
