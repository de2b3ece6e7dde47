// Validates the YAML tree against the declarative schema and produces plain values with defaults filled
// in. Every problem is reported (the walk never stops early); an invalid value is replaced by a harmless
// fallback so the semantic pass can still run and find the problems elsewhere in the file.
import { isAlias, isMap, isScalar, isSeq, type Document, type Node as YamlNode, type Pair } from 'yaml';
import { childPath, type Issues, type SourceMap } from './issues.js';
import type {
  AliasSpec,
  ArraySpec,
  BooleanSpec,
  NumberSpec,
  ObjectSpec,
  Spec,
  StringSpec,
} from './schema-dsl.js';
import { didYouMean } from './suggest.js';

type Value = YamlNode | null | undefined;

export function walkDocument(doc: Document, root: Spec, issues: Issues, source: SourceMap): unknown {
  const walker = new Walker(doc, issues, source);
  if (doc.contents === null) {
    issues.error('', 'the file is empty; at least `buckets` is required');
    return walker.fallback(root);
  }
  source.record('', 0, 0);
  return walker.walk(root, doc.contents, '');
}

class Walker {
  constructor(
    private readonly doc: Document,
    private readonly issues: Issues,
    private readonly source: SourceMap,
  ) {}

  walk(spec: Spec, raw: Value, path: string): unknown {
    const node = this.deref(raw);
    if (this.isAbsent(spec, node)) return this.absent(spec, path);
    switch (spec.kind) {
      case 'string':
        return this.string(spec, node!, path);
      case 'integer':
      case 'number':
        return this.number(spec, node!, path);
      case 'boolean':
        return this.boolean(spec, node!, path);
      case 'array':
        return this.array(spec, node!, path);
      case 'object':
        return this.object(spec, node!, path);
      case 'any':
        return node!.toJS(this.doc);
      default:
        // Compatibility kinds are handled by their parent object, which knows their siblings.
        throw new Error(`unexpected ${spec.kind} spec at ${path}`);
    }
  }

  /** A value that cannot be used: the default, or a zero value of the right shape. Reports nothing. */
  fallback(spec: Spec): unknown {
    if ('default' in spec && spec.default !== undefined) return structuredClone(spec.default);
    switch (spec.kind) {
      case 'string':
        return spec.enum?.[0] ?? '';
      case 'integer':
      case 'number':
        return spec.minimum ?? (spec.exclusiveMinimum !== undefined ? spec.exclusiveMinimum + 1 : 0);
      case 'boolean':
        return false;
      case 'array':
        return [];
      case 'object': {
        const out: Record<string, unknown> = {};
        for (const [name, field] of Object.entries(spec.fields)) {
          if (isStored(field) && (isRequired(field) || hasDefault(field) || isMaterialised(field))) {
            out[name] = this.fallback(field);
          }
        }
        return out;
      }
      default:
        return undefined;
    }
  }

  private deref(node: Value): Value {
    return isAlias(node) ? (node.resolve(this.doc) as YamlNode | undefined) : node;
  }

  private isAbsent(spec: Spec, node: Value): boolean {
    if (node === null || node === undefined) return true;
    if (!isScalar(node)) return false;
    if (node.value === null) return true;
    return spec.kind === 'string' && spec.emptyIsAbsent === true && node.value === '';
  }

  private absent(spec: Spec, path: string): unknown {
    if (spec.kind === 'object' && !spec.required && !spec.optional) return this.object(spec, undefined, path);
    if (isRequired(spec)) {
      const message = this.source.written(path) ? 'must not be empty' : `missing required key \`${lastSegment(path)}\``;
      this.issues.error(path, message);
      return this.fallback(spec);
    }
    if ('default' in spec && spec.default !== undefined) return structuredClone(spec.default);
    return undefined;
  }

  private string(spec: StringSpec, node: YamlNode, path: string): string {
    const written = asString(node);
    if (written === undefined) return this.mismatch(spec, node, path, 'a string');
    let value = written;
    const alias = spec.valueAliases?.[value];
    if (alias !== undefined) {
      this.issues.warn(path, `\`${value}\` is not Karasu's name for this value; applied as \`${alias}\``, 'value');
      value = alias;
    }
    if (spec.enum && !spec.enum.includes(value)) {
      const choices = spec.enum.map((v) => `\`${v}\``).join(', ');
      return this.invalid(spec, path, `must be one of ${choices} (got \`${value}\`)${didYouMean(value, spec.enum)}`);
    }
    if (spec.minLength !== undefined && value.length < spec.minLength) {
      return this.invalid(spec, path, `must be at least ${spec.minLength} characters long`);
    }
    return this.finish(spec, value, path) as string;
  }

  private number(spec: NumberSpec, node: YamlNode, path: string): number {
    const what = spec.kind === 'integer' ? 'an integer' : 'a number';
    const value = isScalar(node) ? node.value : undefined;
    if (typeof value !== 'number') return this.mismatch(spec, node, path, what);
    if (!Number.isFinite(value)) return this.invalid(spec, path, `must be a finite number (got ${value})`);
    if (spec.kind === 'integer' && !Number.isInteger(value)) {
      return this.invalid(spec, path, `must be an integer (got ${value})`);
    }
    if (spec.minimum !== undefined && value < spec.minimum) {
      return this.invalid(spec, path, `must be at least ${spec.minimum} (got ${value})`);
    }
    if (spec.exclusiveMinimum !== undefined && value <= spec.exclusiveMinimum) {
      return this.invalid(spec, path, `must be greater than ${spec.exclusiveMinimum} (got ${value})`);
    }
    if (spec.maximum !== undefined && value > spec.maximum) {
      return this.invalid(spec, path, `must be at most ${spec.maximum} (got ${value})`);
    }
    return this.finish(spec, value, path) as number;
  }

  private boolean(spec: BooleanSpec, node: YamlNode, path: string): boolean {
    const value = isScalar(node) ? node.value : undefined;
    if (typeof value !== 'boolean') return this.mismatch(spec, node, path, '`true` or `false`');
    return this.finish(spec, value, path) as boolean;
  }

  /** The checks every scalar shares once its type is right: the custom check and the refused value. */
  private finish(spec: StringSpec | NumberSpec | BooleanSpec, value: string | number | boolean, path: string): unknown {
    const problem = spec.check?.(value as never);
    if (problem !== undefined) return this.invalid(spec, path, problem);
    if (spec.reject && spec.reject.value === value) return this.invalid(spec, path, spec.reject.message);
    return value;
  }

  private array(spec: ArraySpec, node: YamlNode, path: string): unknown[] {
    if (!isSeq(node)) return this.mismatch(spec, node, path, 'a list');
    const out = node.items.map((item, i) => {
      const itemPath = childPath(path, i);
      const start = rangeStart(item) ?? rangeStart(node) ?? 0;
      this.source.record(itemPath, start, start);
      const value = this.deref(item as Value);
      if (this.isAbsent(spec.items, value)) {
        this.issues.error(itemPath, 'empty list item', 'value');
        return this.fallback(spec.items);
      }
      this.source.markGiven(itemPath);
      return this.walk(spec.items, value, itemPath);
    });
    if (spec.minItems !== undefined && out.length < spec.minItems) {
      return this.invalid(spec, path, `must list at least ${spec.minItems} item${spec.minItems === 1 ? '' : 's'}`);
    }
    return out;
  }

  private object(spec: ObjectSpec, node: YamlNode | undefined, path: string): Record<string, unknown> {
    if (node !== undefined && !isMap(node)) return this.mismatch(spec, node, path, 'a mapping');
    const out: Record<string, unknown> = {};
    const aliases: Array<{ name: string; spec: AliasSpec; node: Value }> = [];
    const seen = new Set<string>();
    for (const pair of node ? this.pairs(node.items as Pair[]) : []) {
      const name = this.keyName(pair, path);
      if (name === undefined) continue;
      const fieldPath = childPath(path, name);
      const value = pair.value as Value;
      const keyStart = rangeStart(pair.key) ?? 0;
      this.source.record(fieldPath, keyStart, rangeStart(value) ?? keyStart);
      seen.add(name);
      const field = Object.hasOwn(spec.fields, name) ? spec.fields[name] : undefined;
      if (field === undefined) {
        this.unknownKey(spec, name, fieldPath);
        continue;
      }
      const absent = this.isAbsent(field, this.deref(value));
      if (!absent) this.source.markGiven(fieldPath);
      switch (field.kind) {
        case 'ignored':
          this.issues.warn(fieldPath, `has no effect: ${field.reason}`);
          break;
        case 'unavailable':
          if (!absent) this.issues.error(fieldPath, field.message);
          break;
        case 'alias':
          if (!absent) aliases.push({ name, spec: field, node: value });
          break;
        default:
          out[name] = this.walk(field, value, fieldPath);
      }
    }
    for (const [name, field] of Object.entries(spec.fields)) {
      if (!seen.has(name) && isStored(field)) {
        const value = this.absent(field, childPath(path, name));
        if (value !== undefined) out[name] = value;
      }
    }
    for (const alias of aliases) this.applyAlias(spec, alias, path, out);
    return out;
  }

  /** Explicit keys first, then keys pulled in by YAML merge keys (`<<: *anchor`) that they do not override. */
  private pairs(items: Pair[]): Pair[] {
    const explicit = items.filter((p) => !(isScalar(p.key) && p.key.value === '<<'));
    const names = new Set(explicit.map((p) => (isScalar(p.key) ? String(p.key.value) : '')));
    const merged: Pair[] = [];
    for (const merge of items.filter((p) => isScalar(p.key) && p.key.value === '<<')) {
      const value = this.deref(merge.value as Value);
      const sources = isSeq(value) ? value.items.map((v) => this.deref(v as Value)) : [value];
      for (const map of sources) {
        if (!isMap(map)) continue;
        for (const pair of this.pairs(map.items as Pair[])) {
          const name = isScalar(pair.key) ? String(pair.key.value) : '';
          if (!names.has(name)) {
            names.add(name);
            merged.push(pair);
          }
        }
      }
    }
    return [...explicit, ...merged];
  }

  private keyName(pair: Pair, path: string): string | undefined {
    if (isScalar(pair.key) && pair.key.value !== null && typeof pair.key.value !== 'object') {
      return String(pair.key.value);
    }
    const offset = rangeStart(pair.key) ?? 0;
    this.issues.errorAt(path, 'keys must be plain strings', offset);
    return undefined;
  }

  private unknownKey(spec: ObjectSpec, name: string, path: string): void {
    if (spec.otherKeys !== undefined) {
      this.issues.warn(path, `has no effect: ${spec.otherKeys}`);
      return;
    }
    this.issues.error(path, `unknown key \`${name}\`${didYouMean(name, Object.keys(spec.fields))}`);
  }

  /** Applies another spelling of a sibling key, converted if needed, and says which key it became. */
  private applyAlias(
    parent: ObjectSpec,
    alias: { name: string; spec: AliasSpec; node: Value },
    path: string,
    out: Record<string, unknown>,
  ): void {
    const aliasPath = childPath(path, alias.name);
    const targetPath = childPath(path, alias.spec.target);
    if (this.source.given(targetPath)) {
      this.issues.error(aliasPath, `sets the same thing as \`${alias.spec.target}\`; remove one of them`);
      return;
    }
    const targetSpec = parent.fields[alias.spec.target];
    const value = this.walk(alias.spec.spec ?? targetSpec, alias.node, aliasPath);
    if (this.issues.hasErrorUnder(aliasPath)) return;
    const applied = alias.spec.convert && typeof value === 'number' ? alias.spec.convert(value) : value;
    out[alias.spec.target] = applied;
    this.source.markGiven(targetPath);
    const converted = alias.spec.conversion ? ` = ${JSON.stringify(applied)} (${alias.spec.conversion})` : '';
    this.issues.warn(
      aliasPath,
      `\`${alias.name}\` is not Karasu's name for this setting; applied as \`${alias.spec.target}\`${converted} — rename it to silence this warning`,
    );
  }

  /** Wrong YAML type: says what was found, with a hint when quoting is the likely cause. */
  private mismatch<T>(spec: Spec, node: YamlNode, path: string, expected: string): T {
    const found = describe(node);
    let hint = '';
    if (isScalar(node) && typeof node.value === 'string') {
      if (expected !== 'a string' && node.type !== 'PLAIN') hint = ' (remove the quotes)';
      if (/^(yes|no|on|off)$/i.test(node.value) && expected.includes('true')) hint = ' (YAML 1.2 reads it as a string)';
    }
    return this.invalid(spec, path, `expected ${expected}, got ${found}${hint}`);
  }

  private invalid<T>(spec: Spec, path: string, message: string): T {
    this.issues.error(path, message, 'value');
    return this.fallback(spec) as T;
  }
}

/** Keys that produce a value in the output (compatibility keys are consumed by the walk itself). */
function isStored(spec: Spec): boolean {
  return spec.kind !== 'alias' && spec.kind !== 'ignored' && spec.kind !== 'unavailable';
}

function isRequired(spec: Spec): boolean {
  return 'required' in spec && spec.required === true;
}

function hasDefault(spec: Spec): boolean {
  return 'default' in spec && spec.default !== undefined;
}

/** Objects that exist (filled with defaults) even when not written. */
function isMaterialised(spec: Spec): boolean {
  return spec.kind === 'object' && !spec.optional;
}

/** A number where a string is expected (a numeric access key, say) is read exactly as written. */
function asString(node: YamlNode): string | undefined {
  if (!isScalar(node)) return undefined;
  if (typeof node.value === 'string') return node.value;
  if (typeof node.value === 'number') return node.source ?? String(node.value);
  return undefined;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
  return range?.[0];
}

function lastSegment(path: string): string {
  const match = /([^.[\]]+)\]?$/.exec(path);
  return match ? match[1] : path;
}

function describe(node: YamlNode): string {
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (!isScalar(node)) return 'an unsupported value';
  const value = node.value;
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (typeof value === 'number') return `the number ${value}`;
  if (typeof value === 'boolean') return `\`${value}\``;
  return 'an unsupported value';
}
