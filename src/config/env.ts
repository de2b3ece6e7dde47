// `${VAR}` / `${VAR:-default}` substitution. It runs on the parsed document, scalar values only, so
// comments and keys are never touched and a value cannot inject YAML structure. `$${` writes a literal `${`.
import { isScalar, visit, type Document, type Scalar, type ScalarTag } from 'yaml';
import { childPath, type Issues } from './issues.js';

const REFERENCE = /\$\$\{|\$\{([^}]*)(\}?)/g;
const BODY = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s;

interface SubstitutionError {
  message: string;
  /** The reference as written, to find its column in the source. */
  token: string;
}

export function substitute(
  text: string,
  env: NodeJS.ProcessEnv,
): { value: string; errors: SubstitutionError[] } {
  const errors: SubstitutionError[] = [];
  const value = text.replace(REFERENCE, (token: string, body: string | undefined, close: string) => {
    if (token === '$${') return '${';
    if (close === '') {
      errors.push({ token, message: `unterminated \`${token}\`: expected \${NAME} or \${NAME:-default}` });
      return token;
    }
    const match = BODY.exec(body ?? '');
    if (!match || match[2]?.includes('${')) {
      errors.push({ token, message: `invalid reference \`${token}\`: expected \${NAME} or \${NAME:-default}` });
      return token;
    }
    const [, name, fallback] = match;
    const set = env[name];
    // As in the shell: `:-` also replaces a variable that is set but empty.
    if (fallback !== undefined) return set === undefined || set === '' ? fallback : set;
    if (set === undefined) {
      errors.push({ token, message: `environment variable ${name} is not set (write \${${name}:-default} to give a default)` });
      return token;
    }
    return set;
  });
  return { value, errors };
}

/** Substitutes every scalar value of `doc` in place, reporting errors with the reference's position. */
export function substituteDocument(doc: Document, text: string, env: NodeJS.ProcessEnv, issues: Issues): void {
  const paths = new Map<unknown, string>();
  visit(doc, {
    Pair(_, pair, ancestors) {
      if (isScalar(pair.key)) paths.set(pair.value, childPath(pathOf(ancestors, paths), String(pair.key.value)));
    },
    Seq(_, seq, ancestors) {
      const base = pathOf([...ancestors, seq], paths);
      seq.items.forEach((item, i) => paths.set(item, childPath(base, i)));
    },
    Scalar(key, scalar) {
      if (key === 'key' || typeof scalar.value !== 'string' || !scalar.value.includes('$')) return;
      const { value, errors } = substitute(scalar.value, env);
      const path = paths.get(scalar) ?? '';
      for (const error of errors) issues.errorAt(path, error.message, offsetOf(error.token, scalar, text));
      if (errors.length === 0 && value !== scalar.value) assign(doc, scalar, value);
    },
  });
}

/** Path of the innermost ancestor whose path is known (pairs and sequences record their children). */
function pathOf(ancestors: readonly unknown[], paths: Map<unknown, string>): string {
  for (let i = ancestors.length - 1; i >= 0; i--) {
    const path = paths.get(ancestors[i]);
    if (path !== undefined) return path;
  }
  return '';
}

/** A plain scalar is re-resolved as YAML would have read the substituted text; a quoted one stays a string. */
function assign(doc: Document, scalar: Scalar, value: string): void {
  scalar.source = value;
  if (scalar.type !== 'PLAIN' || scalar.tag !== undefined) {
    scalar.value = value;
    return;
  }
  const tag = doc.schema.tags.find(
    (t): t is ScalarTag => t.default === true && !('collection' in t && t.collection) && !!t.test?.test(value),
  );
  // Some core tags (bool) resolve to a Scalar node rather than a bare value.
  const resolved: unknown = tag ? tag.resolve(value, () => undefined, {}) : value;
  scalar.value = isScalar(resolved) ? resolved.value : resolved;
}

function offsetOf(token: string, scalar: Scalar, text: string): number {
  const [start, end] = scalar.range ?? [0, 0];
  const found = text.slice(start, end).indexOf(token);
  return found === -1 ? start : start + found;
}
