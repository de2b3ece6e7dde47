// Problems found while loading, each positioned in the file, and the error that carries them.
import type { LineCounter } from 'yaml';
import type { ConfigIssue } from './types.js';

/** `file:line:column: key.path: message`. No position when there is none (an unreadable file). */
export function formatIssue(issue: ConfigIssue): string {
  const where = issue.line > 0 ? `${issue.file}:${issue.line}:${issue.column}` : issue.file;
  return issue.path === '' ? `${where}: ${issue.message}` : `${where}: ${issue.path}: ${issue.message}`;
}

export class ConfigError extends Error {
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export function childPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  return parent === '' ? key : `${parent}.${key}`;
}

function parentPath(path: string): string | undefined {
  if (path === '') return undefined;
  const match = /(\.[^.[\]]+|\[\d+\])$/.exec(path);
  return match ? path.slice(0, match.index) : '';
}

interface Offsets {
  key: number;
  value: number;
}

/**
 * Where each key path sits in the source, and which keys were actually given (a default is not "given":
 * the cross-key rules need to know, e.g. legacy `region` next to `replicas`).
 */
export class SourceMap {
  private readonly offsets = new Map<string, Offsets>();
  private readonly present = new Set<string>();

  constructor(private readonly lineCounter: LineCounter) {}

  record(path: string, key: number, value: number): void {
    this.offsets.set(path, { key, value });
  }

  /** The key appears in the file, whatever its value. */
  written(path: string): boolean {
    return this.offsets.has(path);
  }

  markGiven(path: string): void {
    this.present.add(path);
  }

  givenPaths(): string[] {
    return [...this.present];
  }

  /** The key was written with a value (null, or "" where that means unset, does not count). */
  given(path: string): boolean {
    return this.present.has(path);
  }

  /** Position of a key (or, with `value`, of its value); a missing key falls back to its nearest parent. */
  position(path: string, part: 'key' | 'value' = 'key'): { line: number; column: number } {
    let current: string | undefined = path;
    let wanted = part;
    while (current !== undefined) {
      const found = this.offsets.get(current);
      if (found) return this.lineColumn(found[wanted]);
      current = parentPath(current);
      wanted = 'key';
    }
    return { line: 1, column: 1 };
  }

  lineColumn(offset: number): { line: number; column: number } {
    const { line, col } = this.lineCounter.linePos(offset);
    return { line, column: col };
  }
}

/**
 * Collects errors and warnings. One error per key path, and none below a key that already has one: those
 * are consequences of the first (a missing `s3` block has no `bucket` either).
 */
export class Issues {
  readonly errors: ConfigIssue[] = [];
  readonly warnings: ConfigIssue[] = [];
  private readonly failed = new Set<string>();

  constructor(
    readonly file: string,
    readonly source: SourceMap,
  ) {}

  error(path: string, message: string, part: 'key' | 'value' = 'key'): void {
    if (this.failedAtOrAbove(path)) return;
    this.failed.add(path);
    this.errors.push(this.issue(path, message, part));
  }

  /** An error at an exact offset (YAML syntax, an unset environment variable). */
  errorAt(path: string, message: string, offset: number): void {
    this.failed.add(path);
    this.errors.push({ path, message, file: this.file, ...this.source.lineColumn(offset) });
  }

  warn(path: string, message: string, part: 'key' | 'value' = 'key'): void {
    this.warnings.push(this.issue(path, message, part));
  }

  warnAt(path: string, message: string, offset: number): void {
    this.warnings.push({ path, message, file: this.file, ...this.source.lineColumn(offset) });
  }

  private failedAtOrAbove(path: string): boolean {
    for (let p: string | undefined = path; p !== undefined; p = parentPath(p)) {
      if (this.failed.has(p)) return true;
    }
    return false;
  }

  /** True when this path or anything under it already has an error. */
  hasErrorUnder(path: string): boolean {
    for (const failed of this.failed) {
      if (failed === path || failed.startsWith(`${path}.`) || failed.startsWith(`${path}[`)) return true;
    }
    return false;
  }

  private issue(path: string, message: string, part: 'key' | 'value'): ConfigIssue {
    return { path, message, file: this.file, ...this.source.position(path, part) };
  }
}
