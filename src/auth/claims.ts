// Claim rules `{claim, operator, value}`: pure functions, compiled once when a snapshot is built and
// evaluated on every request (cheap: no allocation beyond the path walk). All rules of a list are ANDed.
//
// Semantics (docs/authentication.md has the table):
// - `claim` names any claim, registered ones included (`sub`, `iss`, `exp`), or a dot-path into objects
//   (`realm_access.roles`). A claim whose own name contains dots (`https://example.com/roles`) is found
//   by that name first.
// - A missing claim fails every operator except `exists: false` (fail closed: `not_equals` on a claim the
//   token does not have does not grant access).
// - Scalars compare by value; a number or boolean claim also equals its string form (`"42"` = 42), since
//   YAML and token issuers disagree on quoting. Lists and objects compare structurally.

export const CLAIM_OPERATORS = ['equals', 'not_equals', 'in', 'contains', 'gt', 'gte', 'lt', 'lte', 'exists', 'regex'] as const;

export type ClaimOperator = (typeof CLAIM_OPERATORS)[number];

/** A rule as written in the config (value validated by `checkRuleValue`). */
export interface ClaimRule {
  claim: string;
  operator: ClaimOperator;
  /** Absent only for `exists` (then: the claim must exist). */
  value?: unknown;
}

export interface CompiledRule {
  readonly rule: ClaimRule;
  test(claims: Readonly<Record<string, unknown>>): boolean;
}

type Claims = Readonly<Record<string, unknown>>;

/** Why this value cannot be used with this operator, or undefined when it can. */
export function checkRuleValue(operator: ClaimOperator, value: unknown): string | undefined {
  const absent = value === undefined || value === null;
  switch (operator) {
    case 'exists':
      return absent || typeof value === 'boolean' ? undefined : '`exists` takes no value, or `true`/`false` (must the claim be present?)';
    case 'equals':
    case 'not_equals':
      return absent ? `\`${operator}\` needs a \`value\`` : undefined;
    case 'in':
      return Array.isArray(value) && value.length > 0 ? undefined : '`in` needs a non-empty list as `value`';
    case 'contains':
      return isScalar(value) ? undefined : '`contains` needs a string, number or boolean `value`';
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte':
      return typeof value === 'number' && Number.isFinite(value) ? undefined : `\`${operator}\` needs a number as \`value\``;
    case 'regex': {
      if (typeof value !== 'string') return '`regex` needs a regular expression (a string) as `value`';
      try {
        new RegExp(value);
        return undefined;
      } catch (err) {
        return `\`value\` is not a valid regular expression: ${(err as Error).message}`;
      }
    }
  }
}

/** The value of a claim by name or dot-path; undefined when the token does not have it. */
export function claimValue(claims: Claims, name: string): unknown {
  if (Object.hasOwn(claims, name)) return claims[name];
  if (!name.includes('.')) return undefined;
  let current: unknown = claims;
  for (const segment of name.split('.')) {
    if (current === null || typeof current !== 'object' || Array.isArray(current)) return undefined;
    if (!Object.hasOwn(current, segment)) return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}

export function compileRule(rule: ClaimRule): CompiledRule {
  const problem = checkRuleValue(rule.operator, rule.value);
  if (problem) throw new Error(`claim rule on \`${rule.claim}\`: ${problem}`);
  const predicate = predicateFor(rule);
  return {
    rule,
    test: (claims) => {
      const value = claimValue(claims, rule.claim);
      if (value === undefined) return rule.operator === 'exists' && rule.value === false;
      return predicate(value);
    },
  };
}

export function compileRules(rules: readonly ClaimRule[]): CompiledRule[] {
  return rules.map(compileRule);
}

/** The first rule the claims fail, or null when all pass (an empty list passes). */
export function firstFailingRule(claims: Claims, rules: readonly CompiledRule[]): CompiledRule | null {
  for (const rule of rules) if (!rule.test(claims)) return rule;
  return null;
}

function predicateFor(rule: ClaimRule): (claim: unknown) => boolean {
  const { value } = rule;
  switch (rule.operator) {
    case 'equals':
      return (claim) => same(claim, value);
    case 'not_equals':
      return (claim) => !same(claim, value);
    case 'in': {
      const allowed = value as unknown[];
      const member = (c: unknown) => allowed.some((v) => same(c, v));
      return (claim) => (Array.isArray(claim) ? claim.some(member) : member(claim));
    }
    case 'contains':
      return (claim) => {
        if (typeof claim === 'string') return claim.includes(String(value));
        if (Array.isArray(claim)) return claim.some((c) => same(c, value));
        return false;
      };
    case 'gt':
      return (claim) => toNumber(claim) > (value as number);
    case 'gte':
      return (claim) => toNumber(claim) >= (value as number);
    case 'lt':
      return (claim) => toNumber(claim) < (value as number);
    case 'lte':
      return (claim) => toNumber(claim) <= (value as number);
    case 'exists': {
      const wanted = value !== false;
      return (claim) => (claim !== null) === wanted;
    }
    case 'regex': {
      const re = new RegExp(value as string);
      const matches = (c: unknown) => isScalar(c) && re.test(String(c));
      return (claim) => (Array.isArray(claim) ? claim.some(matches) : matches(claim));
    }
  }
}

function isScalar(v: unknown): v is string | number | boolean {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

const NUMERIC = /^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/** Numbers, and strings that are written numbers; anything else is NaN (every comparison false). */
function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && NUMERIC.test(v.trim())) return Number(v);
  return Number.NaN;
}

function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (isScalar(a) && isScalar(b)) {
    if (typeof a === 'string' && typeof b !== 'string') return a === String(b);
    if (typeof b === 'string' && typeof a !== 'string') return b === String(a);
    return false;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]));
  }
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return (
      ka.length === kb.length &&
      ka.every((k) => Object.hasOwn(b, k) && same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
    );
  }
  return false;
}
