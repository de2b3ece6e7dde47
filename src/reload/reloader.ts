// One reload path for every trigger (SIGHUP, the config file watch, POST /admin/reload): read the file,
// parse and validate it in full, build the new snapshot, swap it in. Anything wrong → the running
// configuration stays, the error (file:line:column) is logged, counted and returned.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ConfigError, formatIssue, loadConfigText } from '../config/load.js';
import type { ConfigIssue, KarasuConfig } from '../config/types.js';
import type { Karasu } from '../server/app.js';

export type ReloadTrigger = 'signal' | 'watch' | 'admin';

export type ReloadOutcome =
  | { ok: true; generation: number; needsRestart: string[]; warnings: string[] }
  /** `unchanged`: a watch event for a file whose content is what was last loaded (nothing done). */
  | { ok: true; unchanged: true; generation: number; needsRestart: string[]; warnings: string[] }
  | { ok: false; error: string; issues: ConfigIssue[] };

export class Reloader {
  private chain: Promise<unknown> = Promise.resolve();
  /** Hash of the text last loaded (or tried): a watch event with the same content does nothing. */
  private lastHash: string | null = null;

  constructor(
    private readonly karasu: Karasu,
    readonly file: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  /** Remembers the text the process started with, so the first watch event of an untouched file is ignored. */
  async prime(): Promise<void> {
    this.lastHash = await readFile(this.file, 'utf8').then(hash, () => null);
  }

  /** Reloads run one after another, in the order they were asked for. */
  reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    const run = this.chain.then(() => this.run(trigger));
    this.chain = run.catch(() => {});
    return run;
  }

  private async run(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    const { karasu } = this;
    const log = karasu.log.child({ component: 'reload', trigger });
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      return this.failed(log, [{ path: '', message: `cannot read the config file: ${(err as Error).message}`, file: this.file, line: 0, column: 0 }]);
    }
    const digest = hash(text);
    if (trigger === 'watch' && digest === this.lastHash) {
      return { ok: true, unchanged: true, generation: karasu.current().generation, needsRestart: [], warnings: [] };
    }
    this.lastHash = digest;
    let config: KarasuConfig;
    let warnings: ConfigIssue[];
    try {
      ({ config, warnings } = loadConfigText(text, this.file, this.env));
    } catch (err) {
      if (err instanceof ConfigError) return this.failed(log, err.issues);
      throw err;
    }
    const previous = karasu.current().config;
    let needsRestart: string[];
    try {
      ({ needsRestart } = await karasu.reload(config));
    } catch (err) {
      // The snapshot could not be built (a key file, …): nothing was swapped.
      return this.failed(log, [{ path: '', message: (err as Error).message, file: this.file, line: 0, column: 0 }]);
    }
    needsRestart = [...needsRestart, ...listenerChanges(previous, config)];
    karasu.metrics.reloads.inc({ result: 'success' });
    const formatted = warnings.map(formatIssue);
    for (const warning of formatted) log.warn(warning);
    const generation = karasu.current().generation;
    if (needsRestart.length > 0) {
      log.warn({ generation, needs_restart: needsRestart }, 'configuration reloaded; these changes take effect only after a restart');
    } else {
      log.info({ generation }, 'configuration reloaded');
    }
    return { ok: true, generation, needsRestart, warnings: formatted };
  }

  private failed(log: Karasu['log'], issues: ConfigIssue[]): ReloadOutcome {
    this.karasu.metrics.reloads.inc({ result: 'failure' });
    const error = issues.map(formatIssue).join('\n');
    log.error({ errors: issues.map(formatIssue) }, 'reload failed; keeping the running configuration');
    return { ok: false, error, issues };
  }
}

/** Listeners and outputs opened at start: a change to them is reported, not applied. */
function listenerChanges(before: KarasuConfig, after: KarasuConfig): string[] {
  const changed: string[] = [];
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const m0 = before.metrics;
  const m1 = after.metrics;
  if (m0.port !== m1.port || (m1.port !== null && (m0.address !== m1.address || m0.enabled !== m1.enabled))) {
    changed.push('metrics.port/metrics.address (the separate metrics listener)');
  }
  if (before.admin.port !== after.admin.port || before.admin.address !== after.admin.address) changed.push('admin.port/admin.address');
  if (!same(before.logging, after.logging)) changed.push('logging');
  return changed;
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
