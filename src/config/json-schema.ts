// Renders the declarative schema as JSON Schema (draft 2020-12) for editors (yaml-language-server,
// VS Code, IntelliJ). It mirrors what the loader accepts as closely as JSON Schema can; cross-key rules
// (legacy S3 keys vs replicas, tiers listed vs enabled, ...) are only described.
import { configSchema } from './schema.js';
import type { ObjectSpec, Spec } from './schema-dsl.js';

type Json = Record<string, unknown>;

/** `${VAR}` / `${VAR:-default}` written where a number or boolean goes: only known after substitution. */
const ENV_REFERENCE = {
  type: 'string',
  pattern: '^\\$\\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\\}$',
  description: 'An environment variable reference, substituted when the file is loaded.',
};

export function generateJsonSchema(): Json {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'Karasu configuration',
    ...render(configSchema),
    $defs: { env: ENV_REFERENCE },
  };
}

function render(spec: Spec): Json {
  switch (spec.kind) {
    case 'string':
      return scalar(spec, 'string', {
        enum: spec.enum ? [...spec.enum, ...Object.keys(spec.valueAliases ?? {})] : undefined,
        minLength: spec.minLength,
      });
    case 'integer':
    case 'number':
      return scalar(spec, spec.kind, {
        minimum: spec.minimum,
        exclusiveMinimum: spec.exclusiveMinimum,
        maximum: spec.maximum,
      });
    case 'boolean':
      return scalar(spec, 'boolean', {});
    case 'array':
      return scalar(spec, 'array', { items: render(spec.items), minItems: spec.minItems });
    case 'object':
      return object(spec);
    case 'any':
      return { description: spec.description };
    case 'alias':
      return {
        description: `${spec.description} Applied as \`${spec.target}\` with a warning.`,
        deprecated: true,
      };
    case 'ignored':
      return { description: `${spec.description} Accepted with a warning: has no effect (${spec.reason}).`, deprecated: true };
    case 'unavailable':
      return { description: `${spec.description} Rejected: ${spec.message}.`, not: {} };
  }
}

function scalar(
  spec: Exclude<Spec, { kind: 'object' | 'any' | 'alias' | 'ignored' | 'unavailable' }>,
  type: string,
  extra: Json,
): Json {
  // null is accepted wherever a key may be absent, but only advertised where it is the default.
  const nullable = spec.default === null;
  const typed = compact({ type: nullable ? [type, 'null'] : type, ...extra });
  const common = compact({
    description: spec.description,
    default: spec.default,
    not: spec.reject ? { const: spec.reject.value } : undefined,
  });
  // An unquoted `${PORT}` is a string to an editor but a number once loaded: let editors accept it.
  const substitutable = type === 'integer' || type === 'number' || type === 'boolean';
  return substitutable ? { ...common, anyOf: [typed, { $ref: '#/$defs/env' }] } : { ...typed, ...common };
}

function object(spec: ObjectSpec): Json {
  const properties: Json = {};
  for (const [name, field] of Object.entries(spec.fields)) properties[name] = render(field);
  const required = Object.entries(spec.fields)
    .filter(([, field]) => 'required' in field && field.required)
    .map(([name]) => name);
  return compact({
    type: 'object',
    description: spec.description,
    properties,
    required: required.length > 0 ? required : undefined,
    additionalProperties: spec.otherKeys === undefined ? false : { description: `Accepted with a warning: ${spec.otherKeys}.` },
  });
}

function compact(json: Json): Json {
  return Object.fromEntries(Object.entries(json).filter(([, v]) => v !== undefined));
}

/** The committed file's exact text (scripts/gen-schema.ts writes it; a unit test compares it). */
export function jsonSchemaText(): string {
  return `${JSON.stringify(generateJsonSchema(), null, 2)}\n`;
}
