import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import path from 'node:path';
import { ConfigError, formatIssue, loadConfigFile, loadConfigText } from './config/load.js';
import type { KarasuConfig, LoadedConfig } from './config/types.js';
import { createLogger, type Logger } from './observability/logger.js';
import { startKarasu, type RunningKarasu } from './server/index.js';
import { keepFreedHeapMapped } from './runtime/malloc.js';
import { VERSION } from './version.js';
import { checkKeyFiles } from './auth/runtime.js';

const USAGE = `karasu ${VERSION} — caching reverse proxy for S3-compatible object stores

Usage:
  karasu serve [-c FILE] [--no-watch]   run the proxy (default config: config/karasu.yaml); reloads on
                                        SIGHUP and when FILE changes (not with --no-watch)
  karasu check -c FILE                  validate a config file; exits non-zero on errors
  karasu warm -c FILE BUCKET [PREFIX]   fill the cache with every object under PREFIX of BUCKET (a bucket
                                        name from FILE), in this process, into the cache FILE configures
  karasu warm --url URL BUCKET [PREFIX] the same, done by the running instance at URL (its admin API;
                                        token: --token or KARASU_ADMIN_TOKEN)
      warm options: --max-files N  --max-depth N  --no-recursive
  karasu demo [--port N]                a local S3-compatible server with sample objects, Karasu in front
  karasu --version
`;

const DEFAULT_CONFIG = 'config/karasu.yaml';

export async function main(argv: string[]): Promise<number | undefined> {
  // The SDK's notice about future Node versions says nothing an operator can act on per request.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'check':
      return check(rest);
    case 'demo':
      return demo(rest);
    case 'warm': {
      const { warm } = await import('./warm.js');
      return warm(rest);
    }
    case '--version':
    case '-v':
    case 'version':
      console.log(VERSION);
      return 0;
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`karasu: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

function configPath(args: string[]): string {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } }, allowPositionals: false });
  return path.resolve(values.config ?? DEFAULT_CONFIG);
}

function serveArgs(args: string[]): { file: string; watch: boolean } {
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string', short: 'c' }, 'no-watch': { type: 'boolean', default: false } },
    allowPositionals: false,
  });
  return { file: path.resolve(values.config ?? DEFAULT_CONFIG), watch: !values['no-watch'] };
}

async function check(args: string[]): Promise<number> {
  const file = configPath(args);
  try {
    const { config, warnings } = await loadConfigFile(file);
    for (const warning of warnings) console.warn(`warning: ${formatIssue(warning)}`);
    await checkKeyFiles(config); // JWT key files are read as `serve` would (JWKS URLs are not fetched)
    console.log(`${file}: OK (${config.buckets.length} bucket${config.buckets.length === 1 ? '' : 's'})`);
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 1;
    }
    throw err;
  }
}

async function serve(args: string[]): Promise<number | undefined> {
  const { file, watch } = serveArgs(args);
  let loaded: LoadedConfig;
  try {
    loaded = await loadConfigFile(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 1;
    }
    throw err;
  }
  const logger = createLogger(loaded.config.logging);
  logWarnings(logger, loaded);
  keepFreedHeapMapped();
  const signals = handleSignals(logger);
  let running: RunningKarasu;
  try {
    running = await startKarasu(loaded.config, { logger, watch });
  } catch (err) {
    if (!isOperatorError(err)) throw err;
    logger.fatal({ code: err.code }, `cannot start: ${err.message}`);
    return 1;
  }
  logger.info(
    { url: running.url, admin_port: running.adminPort, config: file, version: VERSION, buckets: loaded.config.buckets.length, watch },
    'karasu listening',
  );
  signals.attach(running);
  return undefined;
}

/** Start-up failures the operator fixes (a taken port or cache_dir, a permission): a message, not a stack. */
const OPERATOR_ERRORS = new Set(['KARASU_CACHE_DIR_IN_USE', 'EADDRINUSE', 'EADDRNOTAVAIL', 'EACCES', 'EPERM']);
function isOperatorError(err: unknown): err is Error & { code: string } {
  return err instanceof Error && OPERATOR_ERRORS.has((err as NodeJS.ErrnoException).code ?? '');
}

function logWarnings(logger: Logger, loaded: LoadedConfig): void {
  for (const warning of loaded.warnings) logger.warn({ key: warning.path }, formatIssue(warning));
}

/**
 * SIGHUP reloads (through the same path as the file watch and POST /admin/reload); SIGTERM/SIGINT stop
 * accepting, let in-flight requests finish (up to `server.shutdown_timeout_seconds`), flush the audit
 * log, close Redis and exit 0; a second SIGTERM/SIGINT exits at once (1).
 * Installed before the listeners open, so no signal finds Node's default (an exit without draining):
 * a stop requested while Karasu starts is carried out as soon as `attach` hands over the instance.
 * `reloadText`: for a config that is not a file (the demo), what SIGHUP reloads from.
 */
function handleSignals(logger: Logger, reloadText?: () => LoadedConfig): { attach(running: RunningKarasu): void } {
  let running: RunningKarasu | null = null;
  let stopping: string | null = null;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      logger.flush?.();
      process.exit(1);
    }
    stopping = signal;
    if (running) drain(running, signal);
    else logger.info({ signal }, 'stop requested while starting: stopping once started');
  };
  const drain = (running: RunningKarasu, signal: string) => {
    logger.info({ signal, timeout_seconds: running.karasu.current().config.server.shutdown_timeout_seconds, inflight: running.karasu.inflight }, 'draining: finishing in-flight requests');
    running.close().then(
      () => {
        logger.info('stopped');
        process.exitCode = 0;
        // Every listener, client and connection is closed; should anything still hold the event loop
        // (a socket of a third-party library), it does not hold the exit.
        setTimeout(() => {
          logger.warn('shutdown complete, but open handles still hold the process: exiting');
          logger.flush(() => process.exit(0));
        }, 1000).unref();
      },
      (err) => {
        logger.error({ err }, 'shutdown failed');
        logger.flush?.();
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    if (!running) return; // during start-up: ignored (the file was read moments ago)
    const { karasu } = running;
    if (karasu.reloader) {
      void karasu.reloader.reload('signal');
      return;
    }
    if (!reloadText) return;
    void (async () => {
      try {
        const loaded = reloadText();
        logWarnings(logger, loaded);
        const { needsRestart } = await karasu.reload(loaded.config);
        karasu.metrics.reloads.inc({ result: 'success' });
        logger.info({ generation: karasu.current().generation, needs_restart: needsRestart }, 'configuration reloaded');
      } catch (err) {
        karasu.metrics.reloads.inc({ result: 'failure' });
        logger.error({ err: err instanceof ConfigError ? err.message : err }, 'reload failed; keeping the running configuration');
      }
    })();
  });
  return {
    attach(started) {
      running = started;
      if (stopping) drain(started, stopping);
    },
  };
}

async function demo(args: string[]): Promise<number | undefined> {
  const { values } = parseArgs({
    args,
    options: { port: { type: 'string', default: '8080' }, data: { type: 'string', default: '.karasu/demo' } },
  });
  const { startDemoS3 } = await import('./demo/s3.js');
  const s3 = await startDemoS3({ dataDir: path.resolve(values.data!), address: '127.0.0.1' });
  const yaml = demoConfig(s3.endpoint, s3.bucket, Number(values.port), path.resolve(values.data!, '..', 'cache'));
  const { config }: { config: KarasuConfig } = loadConfigText(yaml, '<demo>', {});
  const logger = createLogger(config.logging);
  keepFreedHeapMapped();
  const signals = handleSignals(logger, () => loadConfigText(yaml, '<demo>', {}));
  const running = await startKarasu(config, { logger });
  const base = running.url;
  const lines = [
    '',
    `Karasu ${VERSION} demo`,
    `  S3-compatible server (s3rver): ${s3.endpoint}  data in ${path.resolve(values.data!)}`,
    `  Karasu:                        ${base}  (/demo → bucket "${s3.bucket}")`,
    '',
    'Objects:',
    ...s3.objects.map((o) => `  ${base}/demo/${o.key}  (${o.contentType}, ${o.size} bytes)`),
    '',
    'Try:',
    `  curl -i ${base}/demo/hello.txt`,
    `  open ${base}/demo/index.html in a browser`,
    `  curl -s -o /dev/null -D - -H 'Range: bytes=0-1048575' ${base}/demo/video.bin`,
    `  curl -i -H 'If-None-Match: <etag from above>' ${base}/demo/hello.txt`,
    `  curl -s -o /dev/null -D - ${base}/demo/video.bin   # twice: X-Cache MISS, then HIT from disk`,
    `  curl -s ${base}/ready; curl -s ${base}/metrics | head`,
    '',
    'Ctrl-C stops both.',
    '',
  ];
  process.stdout.write(lines.join('\n'));
  signals.attach({ ...running, close: async (timeoutMs?: number) => { await running.close(timeoutMs); await s3.close(); } });
  return undefined;
}

function demoConfig(endpoint: string, bucket: string, port: number, cacheDir: string): string {
  return `
server:
  address: 127.0.0.1
  port: ${port}
buckets:
  - name: demo
    path_prefix: /demo
    s3:
      bucket: ${bucket}
      region: us-east-1
      endpoint: ${endpoint}
      access_key: S3RVER
      secret_key: S3RVER
    cors:
      allowed_origins: ["*"]
cache:
  enabled: true
  cache_layers: [memory, disk]
  memory: { max_cache_size_mb: 64, max_item_size_mb: 8, default_ttl_seconds: 300 }
  disk: { enabled: true, cache_dir: ${JSON.stringify(cacheDir)}, max_disk_cache_size_mb: 512, max_item_size_mb: 128 }
  stale_while_revalidate_seconds: 60
  stale_if_error_seconds: 3600
logging:
  level: info
  format: auto
`;
}

// `node src/cli.ts …` (tests, via tsx) runs the CLI directly; bin/karasu.js imports main() instead.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => {
      if (typeof code === 'number') process.exitCode = code;
    },
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
