// A small vocabulary for describing the config file as data. One description drives three things: the
// loader's validation (walk.ts), the JSON Schema editors use (json-schema.ts) and the TypeScript type
// of the validated tree (Infer), so the three cannot drift apart.

/** Extra validation for a scalar beyond type and range: returns an error message, or undefined if fine. */
export type Check<T> = (value: T) => string | undefined;

interface Common<T> {
  readonly description: string;
  readonly required?: boolean;
  /** Applied when the key is absent (or null). `null` means "absent has a meaning of its own". */
  readonly default?: T | null;
  /**
   * A value that is well-formed but asks for something Karasu refuses to do (a feature it does not have):
   * loading fails with `message` instead of silently serving without it.
   */
  readonly reject?: { readonly value: T; readonly message: string };
  check?(value: T): string | undefined;
}

export interface StringSpec extends Common<string> {
  readonly kind: 'string';
  readonly enum?: readonly string[];
  /** Other spellings accepted for an enum value, e.g. Yatagarasu's `text` for `pretty`. Warned about. */
  readonly valueAliases?: Readonly<Record<string, string>>;
  readonly minLength?: number;
  /** Yatagarasu writes "" for "not set" (serde defaults); treat it as absent. */
  readonly emptyIsAbsent?: boolean;
}

export interface NumberSpec extends Common<number> {
  readonly kind: 'integer' | 'number';
  readonly minimum?: number;
  readonly exclusiveMinimum?: number;
  readonly maximum?: number;
}

export interface BooleanSpec extends Common<boolean> {
  readonly kind: 'boolean';
}

export interface ArraySpec extends Common<unknown[]> {
  readonly kind: 'array';
  readonly items: Spec;
  readonly minItems?: number;
}

export interface ObjectSpec extends Common<Record<string, unknown>> {
  readonly kind: 'object';
  readonly fields: Readonly<Record<string, Spec>>;
  /** Absent → undefined instead of an object filled with defaults. */
  readonly optional?: boolean;
  /** Keys not listed are accepted with this "has no effect" reason instead of being an error. */
  readonly otherKeys?: string;
}

/** Accepted as-is, unvalidated: the inside of a block whose feature is switched off. */
export interface AnySpec extends Common<unknown> {
  readonly kind: 'any';
}

/**
 * Another name for a sibling key (Yatagarasu's website and load-test spellings). The value is validated
 * like the target (or by `spec`), converted if needed, and applied to the target with a warning.
 */
export interface AliasSpec {
  readonly kind: 'alias';
  readonly description: string;
  readonly target: string;
  readonly spec?: Spec;
  readonly convert?: (value: number) => number;
  /** Said in the warning when a conversion happens, e.g. "bytes converted to MB". */
  readonly conversion?: string;
}

/** Accepted for compatibility, does nothing, and says so with a load warning. */
export interface IgnoredSpec {
  readonly kind: 'ignored';
  readonly description: string;
  readonly reason: string;
}

/** Its presence asks for a feature Karasu does not have: loading fails with `message`. */
export interface UnavailableSpec {
  readonly kind: 'unavailable';
  readonly description: string;
  readonly message: string;
}

export type Spec =
  | StringSpec
  | NumberSpec
  | BooleanSpec
  | ArraySpec
  | ObjectSpec
  | AnySpec
  | AliasSpec
  | IgnoredSpec
  | UnavailableSpec;

/** A spec plus a phantom type: what the walker produces for it. */
export type Node<T> = Spec & { readonly __out?: () => T };

export type Infer<N> = N extends { readonly __out?: () => infer T } ? T : never;

type Fields = Record<string, Node<unknown>>;

/** Compatibility-only keys (alias, ignored, unavailable) never reach the typed output. */
export type ObjectOf<F extends Fields> = {
  -readonly [K in keyof F as [Infer<F[K]>] extends [never] ? never : K]: Infer<F[K]>;
};

interface Presence<T> {
  required?: boolean;
  default?: T | null;
}

/** The output type given the presence options: required or defaulted → T, default null → T | null. */
type Out<T, O> = O extends { required: true }
  ? T
  : O extends { default: null }
    ? T | null
    : O extends { default: unknown }
      ? T
      : T | undefined;

type Opts<S extends Spec, T> = Presence<T> & Omit<S, 'kind' | 'description' | 'required' | 'default' | 'items'>;

function make<T>(spec: Spec): Node<T> {
  return spec as Node<T>;
}

export function str<O extends Opts<StringSpec, string> = Record<never, never>>(
  description: string,
  opts?: O,
): Node<Out<string, O>> {
  return make({ kind: 'string', description, ...opts } as StringSpec);
}

export function oneOf<const V extends string, O extends Opts<StringSpec, V> = Record<never, never>>(
  values: readonly V[],
  description: string,
  opts?: O,
): Node<Out<V, O>> {
  return make({ kind: 'string', description, enum: values, ...opts } as StringSpec);
}

export function int<O extends Opts<NumberSpec, number> = Record<never, never>>(
  description: string,
  opts?: O,
): Node<Out<number, O>> {
  return make({ kind: 'integer', description, ...opts } as NumberSpec);
}

export function num<O extends Opts<NumberSpec, number> = Record<never, never>>(
  description: string,
  opts?: O,
): Node<Out<number, O>> {
  return make({ kind: 'number', description, ...opts } as NumberSpec);
}

export function bool<O extends Opts<BooleanSpec, boolean> = Record<never, never>>(
  description: string,
  opts?: O,
): Node<Out<boolean, O>> {
  return make({ kind: 'boolean', description, ...opts } as BooleanSpec);
}

/** List items are always present, so an item spec's own optionality does not leak into the element type. */
type Item<I> = Exclude<Infer<I>, undefined>;

// Overloads rather than a generic options type: an array default such as `['memory']` then gets the
// element type as context instead of being widened to string[].
type ListOpts<T> = Opts<ArraySpec, T[]>;
export function list<I extends Node<unknown>>(
  items: I,
  description: string,
  opts: ListOpts<Item<I>> & ({ required: true } | { default: Item<I>[] }),
): Node<Item<I>[]>;
export function list<I extends Node<unknown>>(
  items: I,
  description: string,
  opts?: ListOpts<Item<I>>,
): Node<Item<I>[] | undefined>;
export function list(items: Spec, description: string, opts?: ListOpts<unknown>): Node<unknown> {
  return make({ kind: 'array', description, items, ...opts } as ArraySpec);
}

interface ObjectOpts {
  required?: boolean;
  optional?: boolean;
  otherKeys?: string;
}

export function obj<F extends Fields, O extends ObjectOpts = Record<never, never>>(
  description: string,
  fields: F,
  opts?: O,
): Node<O extends { optional: true } ? ObjectOf<F> | undefined : ObjectOf<F>> {
  return make({ kind: 'object', description, fields, ...opts } as ObjectSpec);
}

export function anything(description: string): Node<unknown> {
  return make({ kind: 'any', description });
}

export function alias(
  target: string,
  description: string,
  opts?: { spec?: Spec; convert?: (value: number) => number; conversion?: string },
): Node<never> {
  return make({ kind: 'alias', target, description, ...opts });
}

export function ignored(description: string, reason: string): Node<never> {
  return make({ kind: 'ignored', description, reason });
}

export function unavailable(description: string, message: string): Node<never> {
  return make({ kind: 'unavailable', description, message });
}
