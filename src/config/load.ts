// Loading a config file: parse (positions kept) → substitute ${VAR} → validate against the schema →
// cross-key rules. Every problem is collected and reported at once in one ConfigError.
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, type YAMLError } from 'yaml';
import { buildConfig } from './build.js';
import { substituteDocument } from './env.js';
import { ConfigError, formatIssue, Issues, SourceMap } from './issues.js';
import { configSchema, type RawConfig } from './schema.js';
import type { ConfigIssue, LoadedConfig } from './types.js';
import { walkDocument } from './walk.js';

export { ConfigError, formatIssue };

export async function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  const file = resolve(path);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ConfigError([{ path: '', message: `cannot read the config file: ${reason}`, file, line: 0, column: 0 }]);
  }
  return loadConfigText(text, file, env);
}

/** `file` names the text in messages; it becomes `config.source` when it is an absolute path. */
export function loadConfigText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const source = new SourceMap(lineCounter);
  const issues = new Issues(file, source);

  for (const error of doc.errors) issues.errorAt('', yamlMessage(error), error.pos[0]);
  for (const warning of doc.warnings) issues.warnAt('', yamlMessage(warning), warning.pos[0]);
  // A document that did not parse has no reliable structure to validate: report the syntax alone.
  if (issues.errors.length > 0) throw new ConfigError(byPosition(issues.errors));

  substituteDocument(doc, text, env, issues);
  const raw = walkDocument(doc, configSchema, issues, source) as RawConfig;
  const config = buildConfig(raw, issues, source);
  if (issues.errors.length > 0) throw new ConfigError(byPosition(issues.errors));
  return {
    config: { source: isAbsolute(file) ? file : null, ...config },
    warnings: byPosition(issues.warnings),
  };
}

function yamlMessage(error: YAMLError): string {
  return `invalid YAML: ${error.message}`;
}

function byPosition(issues: ConfigIssue[]): ConfigIssue[] {
  return [...issues].sort((a, b) => a.line - b.line || a.column - b.column);
}
