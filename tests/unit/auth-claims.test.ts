// Claim rules are pure functions: every operator, dot-paths, registered claims, missing claims, and the
// value checks the config loader relies on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkRuleValue, claimValue, compileRule, compileRules, firstFailingRule, type ClaimRule } from '../../src/auth/claims.js';

const claims = {
  sub: 'alice',
  iss: 'https://idp.example',
  exp: 2_000_000_000,
  role: 'editor',
  level: 7,
  level_text: '7',
  verified: true,
  scope: 'read:files write:files',
  groups: ['staff', 'eng'],
  realm_access: { roles: ['reader', 'uploader'], tier: { name: 'gold' } },
  'https://example.com/roles': ['admin'],
  empty: null,
};

const passes = (rule: ClaimRule) => compileRule(rule).test(claims);

describe('claimValue', () => {
  it('reads top-level, registered and dot-path claims; own dotted names first', () => {
    assert.equal(claimValue(claims, 'sub'), 'alice');
    assert.equal(claimValue(claims, 'exp'), 2_000_000_000);
    assert.deepEqual(claimValue(claims, 'realm_access.roles'), ['reader', 'uploader']);
    assert.equal(claimValue(claims, 'realm_access.tier.name'), 'gold');
    assert.deepEqual(claimValue(claims, 'https://example.com/roles'), ['admin']);
    assert.equal(claimValue(claims, 'realm_access.nope'), undefined);
    assert.equal(claimValue(claims, 'groups.0'), undefined, 'no indexing into lists');
    assert.equal(claimValue(claims, 'role.length'), undefined, 'no properties of strings');
    assert.equal(claimValue(claims, 'constructor'), undefined, 'no prototype properties');
    assert.equal(claimValue(claims, '__proto__.x'), undefined);
  });
});

describe('operators', () => {
  it('equals / not_equals, scalars by value and string form, structures structurally', () => {
    assert.ok(passes({ claim: 'role', operator: 'equals', value: 'editor' }));
    assert.ok(!passes({ claim: 'role', operator: 'equals', value: 'Editor' }));
    assert.ok(passes({ claim: 'sub', operator: 'equals', value: 'alice' }), 'registered claim');
    assert.ok(passes({ claim: 'iss', operator: 'equals', value: 'https://idp.example' }));
    assert.ok(passes({ claim: 'level', operator: 'equals', value: 7 }));
    assert.ok(passes({ claim: 'level', operator: 'equals', value: '7' }), 'number equals its string form');
    assert.ok(passes({ claim: 'level_text', operator: 'equals', value: 7 }));
    assert.ok(passes({ claim: 'verified', operator: 'equals', value: 'true' }));
    assert.ok(passes({ claim: 'groups', operator: 'equals', value: ['staff', 'eng'] }));
    assert.ok(!passes({ claim: 'groups', operator: 'equals', value: ['eng', 'staff'] }));
    assert.ok(passes({ claim: 'realm_access.tier', operator: 'equals', value: { name: 'gold' } }));
    assert.ok(!passes({ claim: 'groups', operator: 'equals', value: 'staff' }), 'a list never equals a scalar');
    assert.ok(passes({ claim: 'role', operator: 'not_equals', value: 'admin' }));
    assert.ok(!passes({ claim: 'role', operator: 'not_equals', value: 'editor' }));
  });

  it('in: scalar claim in the list; list claim sharing any member', () => {
    assert.ok(passes({ claim: 'role', operator: 'in', value: ['admin', 'editor'] }));
    assert.ok(!passes({ claim: 'role', operator: 'in', value: ['admin', 'viewer'] }));
    assert.ok(passes({ claim: 'level', operator: 'in', value: [6, 7] }));
    assert.ok(passes({ claim: 'realm_access.roles', operator: 'in', value: ['uploader', 'root'] }));
    assert.ok(!passes({ claim: 'realm_access.roles', operator: 'in', value: ['root'] }));
  });

  it('contains: substring of a string claim, member of a list claim', () => {
    assert.ok(passes({ claim: 'scope', operator: 'contains', value: 'write:files' }));
    assert.ok(!passes({ claim: 'scope', operator: 'contains', value: 'delete:files' }));
    assert.ok(passes({ claim: 'realm_access.roles', operator: 'contains', value: 'reader' }));
    assert.ok(!passes({ claim: 'realm_access.roles', operator: 'contains', value: 'read' }), 'list members match whole');
    assert.ok(passes({ claim: 'https://example.com/roles', operator: 'contains', value: 'admin' }));
    assert.ok(!passes({ claim: 'level', operator: 'contains', value: 7 }), 'numbers contain nothing');
  });

  it('gt / gte / lt / lte on numbers and numeric strings', () => {
    assert.ok(passes({ claim: 'level', operator: 'gt', value: 6 }));
    assert.ok(!passes({ claim: 'level', operator: 'gt', value: 7 }));
    assert.ok(passes({ claim: 'level', operator: 'gte', value: 7 }));
    assert.ok(passes({ claim: 'level', operator: 'lt', value: 8 }));
    assert.ok(!passes({ claim: 'level', operator: 'lt', value: 7 }));
    assert.ok(passes({ claim: 'level', operator: 'lte', value: 7 }));
    assert.ok(passes({ claim: 'level_text', operator: 'gte', value: 7 }), 'numeric string');
    assert.ok(passes({ claim: 'exp', operator: 'gt', value: 1_700_000_000 }), 'registered claim');
    assert.ok(!passes({ claim: 'role', operator: 'gt', value: 0 }), 'a word is not a number');
    assert.ok(!passes({ claim: 'groups', operator: 'lt', value: 100 }));
  });

  it('exists: present (also with value true), absent with value false; null counts as absent', () => {
    assert.ok(passes({ claim: 'role', operator: 'exists' }));
    assert.ok(passes({ claim: 'realm_access.tier.name', operator: 'exists', value: true }));
    assert.ok(!passes({ claim: 'nope', operator: 'exists' }));
    assert.ok(passes({ claim: 'nope', operator: 'exists', value: false }));
    assert.ok(!passes({ claim: 'role', operator: 'exists', value: false }));
    assert.ok(!passes({ claim: 'empty', operator: 'exists' }));
    assert.ok(passes({ claim: 'empty', operator: 'exists', value: false }));
  });

  it('regex: unanchored unless the pattern anchors; list claims match any member', () => {
    assert.ok(passes({ claim: 'iss', operator: 'regex', value: '^https://idp\\.example$' }));
    assert.ok(!passes({ claim: 'iss', operator: 'regex', value: '^http://' }));
    assert.ok(passes({ claim: 'role', operator: 'regex', value: 'dit' }));
    assert.ok(passes({ claim: 'groups', operator: 'regex', value: '^e' }));
    assert.ok(passes({ claim: 'level', operator: 'regex', value: '^[0-9]$' }));
    assert.ok(!passes({ claim: 'realm_access', operator: 'regex', value: '.*' }), 'objects never match');
  });

  it('a missing claim fails every operator but `exists: false` (fail closed)', () => {
    for (const rule of [
      { operator: 'equals', value: 'x' },
      { operator: 'not_equals', value: 'x' },
      { operator: 'in', value: ['x'] },
      { operator: 'contains', value: 'x' },
      { operator: 'gt', value: 0 },
      { operator: 'gte', value: 0 },
      { operator: 'lt', value: 0 },
      { operator: 'lte', value: 0 },
      { operator: 'exists' },
      { operator: 'regex', value: '.*' },
    ] as const) {
      assert.ok(!passes({ claim: 'missing.claim', ...rule }), rule.operator);
    }
  });
});

describe('rule lists', () => {
  it('are ANDed; the first failing rule is reported; empty passes', () => {
    const rules = compileRules([
      { claim: 'role', operator: 'in', value: ['editor', 'admin'] },
      { claim: 'realm_access.roles', operator: 'contains', value: 'uploader' },
      { claim: 'sub', operator: 'not_equals', value: 'bob' },
    ]);
    assert.equal(firstFailingRule(claims, rules), null);
    assert.equal(firstFailingRule({ ...claims, sub: 'bob' }, rules), rules[2]);
    assert.equal(firstFailingRule({ ...claims, role: 'viewer', sub: 'bob' }, rules), rules[0]);
    assert.equal(firstFailingRule(claims, []), null);
  });
});

describe('checkRuleValue', () => {
  it('accepts values that fit the operator and explains the others', () => {
    assert.equal(checkRuleValue('equals', 'x'), undefined);
    assert.equal(checkRuleValue('equals', ['a']), undefined);
    assert.match(checkRuleValue('equals', undefined)!, /needs a `value`/);
    assert.equal(checkRuleValue('in', ['a', 1]), undefined);
    assert.match(checkRuleValue('in', 'a')!, /non-empty list/);
    assert.match(checkRuleValue('in', [])!, /non-empty list/);
    assert.equal(checkRuleValue('contains', 3), undefined);
    assert.match(checkRuleValue('contains', ['a'])!, /string, number or boolean/);
    assert.equal(checkRuleValue('gt', 1.5), undefined);
    assert.match(checkRuleValue('lte', '5')!, /needs a number/);
    assert.equal(checkRuleValue('exists', undefined), undefined);
    assert.equal(checkRuleValue('exists', false), undefined);
    assert.match(checkRuleValue('exists', 'yes')!, /true`\/`false/);
    assert.equal(checkRuleValue('regex', '^a+$'), undefined);
    assert.match(checkRuleValue('regex', '(')!, /not a valid regular expression/);
    assert.throws(() => compileRule({ claim: 'x', operator: 'regex', value: '[' }), /not a valid regular expression/);
  });
});
