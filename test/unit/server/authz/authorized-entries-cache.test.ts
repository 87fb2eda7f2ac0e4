import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../src/common/clock.js';
import { AuthorizedEntryCache } from '../../../../src/server/authz/authorized-entries-cache.js';
import type { RegistrationEntry, Selector } from '../../../../src/server/datastore/types.js';

const TD = 'example.org';
const SERVER = 'spiffe://example.org/spire/server';
const AGENT = 'spiffe://example.org/spire/agent/x509pop/a1';
const T0 = Date.UTC(2026, 0, 1);
const NOW_S = T0 / 1000;

function entry(
  id: string,
  spiffeId: string,
  parentId: string,
  selectors: Selector[] = [{ type: 'unix', value: 'uid:0' }],
  extra: Partial<RegistrationEntry> = {},
): RegistrationEntry {
  return {
    id,
    spiffeId,
    parentId,
    selectors,
    x509SvidTtl: 0,
    jwtSvidTtl: 0,
    dnsNames: [],
    federatesWith: [],
    admin: false,
    downstream: false,
    hint: '',
    storeSvid: false,
    entryExpiry: 0,
    revisionNumber: 0,
    createdAt: NOW_S,
    ...extra,
  };
}

const sel = (value: string): Selector => ({ type: 'x509pop', value });
const ids = (list: RegistrationEntry[]) => list.map((e) => e.id).sort();

function newCache(clock = new ManualClock(T0)) {
  return { cache: new AuthorizedEntryCache({ trustDomain: TD, clock }), clock };
}

describe('AuthorizedEntryCache', () => {
  it('returns entries parented directly by the agent', () => {
    const { cache } = newCache();
    cache.updateEntry(entry('w1', 'spiffe://example.org/web', AGENT));
    cache.updateEntry(entry('w2', 'spiffe://example.org/db', AGENT));
    cache.updateEntry(
      entry('other', 'spiffe://example.org/x', 'spiffe://example.org/spire/agent/b'),
    );
    expect(ids(cache.getAuthorizedEntries(AGENT))).toEqual(['w1', 'w2']);
    // an agent the cache has no node record for still gets its direct children
    expect(cache.stats().agents).toBe(0);
  });

  it('resolves node aliases whose selectors are a subset of the agent selectors', () => {
    const { cache } = newCache();
    cache.updateEntry(
      entry('alias-eu', 'spiffe://example.org/node/eu', SERVER, [sel('subject:cn:eu')]),
    );
    cache.updateEntry(
      entry('alias-eu-gw', 'spiffe://example.org/node/eu-gw', SERVER, [
        sel('subject:cn:eu'),
        sel('san:role:gateway'),
      ]),
    );
    cache.updateEntry(
      entry('alias-us', 'spiffe://example.org/node/us', SERVER, [sel('subject:cn:us')]),
    );
    cache.updateEntry(entry('w-eu', 'spiffe://example.org/eu/app', 'spiffe://example.org/node/eu'));
    cache.updateEntry(
      entry('w-gw', 'spiffe://example.org/eu/gw', 'spiffe://example.org/node/eu-gw'),
    );
    cache.updateEntry(entry('w-us', 'spiffe://example.org/us/app', 'spiffe://example.org/node/us'));

    cache.updateAgent(AGENT, NOW_S + 3600, [sel('subject:cn:eu'), sel('serialnumber:01')]);
    // the alias entries themselves are not returned; the gateway alias needs san:role too
    expect(ids(cache.getAuthorizedEntries(AGENT))).toEqual(['w-eu']);

    cache.updateAgent(AGENT, NOW_S + 3600, [sel('subject:cn:eu'), sel('san:role:gateway')]);
    expect(ids(cache.getAuthorizedEntries(AGENT))).toEqual(['w-eu', 'w-gw']);
  });

  it('descends recursively, once per parent, and survives cycles', () => {
    const { cache } = newCache();
    cache.updateEntry(entry('alias', 'spiffe://example.org/node/all', SERVER, [sel('a')]));
    cache.updateEntry(entry('l1', 'spiffe://example.org/l1', 'spiffe://example.org/node/all'));
    cache.updateEntry(entry('l2', 'spiffe://example.org/l2', 'spiffe://example.org/l1'));
    cache.updateEntry(entry('l3', 'spiffe://example.org/l3', 'spiffe://example.org/l2'));
    // two entries with the same SPIFFE ID under the agent: their children appear once
    cache.updateEntry(entry('d1', 'spiffe://example.org/dup', AGENT));
    cache.updateEntry(entry('d2', 'spiffe://example.org/dup', AGENT, [sel('other')]));
    cache.updateEntry(entry('dc', 'spiffe://example.org/dup-child', 'spiffe://example.org/dup'));
    // a cycle: c1 → c2 → c1
    cache.updateEntry(entry('c1', 'spiffe://example.org/c1', 'spiffe://example.org/c2'));
    cache.updateEntry(entry('c2', 'spiffe://example.org/c2', 'spiffe://example.org/c1'));
    cache.updateEntry(entry('into-cycle', 'spiffe://example.org/c1', AGENT, [sel('z')]));
    cache.updateAgent(AGENT, 0, [sel('a')]);
    const got = cache.getAuthorizedEntries(AGENT).map((e) => e.id);
    expect(got.sort()).toEqual(['c1', 'c2', 'd1', 'd2', 'dc', 'into-cycle', 'l1', 'l2', 'l3']);
    expect(new Set(got).size).toBe(got.length);
  });

  it('leaves out expired entries and does not descend through them', () => {
    const { cache, clock } = newCache();
    cache.updateEntry(
      entry('soon', 'spiffe://example.org/soon', AGENT, undefined, { entryExpiry: NOW_S + 60 }),
    );
    cache.updateEntry(entry('child', 'spiffe://example.org/child', 'spiffe://example.org/soon'));
    cache.updateEntry(
      entry('alias', 'spiffe://example.org/node/a', SERVER, [sel('a')], {
        entryExpiry: NOW_S + 60,
      }),
    );
    cache.updateEntry(entry('via-alias', 'spiffe://example.org/va', 'spiffe://example.org/node/a'));
    cache.updateAgent(AGENT, NOW_S + 3600, [sel('a')]);
    expect(ids(cache.getAuthorizedEntries(AGENT))).toEqual(['child', 'soon', 'via-alias']);
    clock.advance(60_000);
    expect(cache.getAuthorizedEntries(AGENT)).toEqual([]);
  });

  it('ignores the node selectors of an agent whose SVID has expired', () => {
    const { cache, clock } = newCache();
    cache.updateEntry(entry('alias', 'spiffe://example.org/node/a', SERVER, [sel('a')]));
    cache.updateEntry(entry('va', 'spiffe://example.org/va', 'spiffe://example.org/node/a'));
    cache.updateEntry(entry('direct', 'spiffe://example.org/d', AGENT));
    cache.updateAgent(AGENT, NOW_S + 10, [sel('a')]);
    expect(ids(cache.getAuthorizedEntries(AGENT))).toEqual(['direct', 'va']);
    clock.advance(10_000);
    expect(ids(cache.getAuthorizedEntries(AGENT))).toEqual(['direct']);
    expect(cache.pruneExpiredAgents()).toBe(1);
    expect(cache.stats().agents).toBe(0);
  });

  it('applies entry updates, moves, removals and agent selector changes', () => {
    const { cache } = newCache();
    const AGENT_B = 'spiffe://example.org/spire/agent/join_token/b';
    cache.updateEntry(entry('alias', 'spiffe://example.org/node/a', SERVER, [sel('a')]));
    cache.updateEntry(entry('w', 'spiffe://example.org/w', AGENT));
    cache.updateAgent(AGENT, 0, [sel('a')]);
    expect(ids(cache.getAuthorizedEntries(AGENT))).toEqual(['w']);
    expect(ids(cache.getAuthorizedEntries(AGENT_B))).toEqual([]);

    // move w from agent A to agent B
    cache.updateEntry(
      entry('w', 'spiffe://example.org/w', AGENT_B, undefined, { revisionNumber: 1 }),
    );
    expect(ids(cache.getAuthorizedEntries(AGENT))).toEqual([]);
    expect(cache.getAuthorizedEntries(AGENT_B).map((e) => e.revisionNumber)).toEqual([1]);

    // re-parent under the alias: A gets it through its selectors
    cache.updateEntry(entry('w', 'spiffe://example.org/w', 'spiffe://example.org/node/a'));
    expect(ids(cache.getAuthorizedEntries(AGENT))).toEqual(['w']);
    // the agent loses the selector
    cache.updateAgent(AGENT, 0, [sel('b')]);
    expect(ids(cache.getAuthorizedEntries(AGENT))).toEqual([]);
    cache.updateAgent(AGENT, 0, [sel('a'), sel('b')]);
    expect(ids(cache.getAuthorizedEntries(AGENT))).toEqual(['w']);
    // an alias turned into a normal entry (parent changed) stops aliasing
    cache.updateEntry(entry('alias', 'spiffe://example.org/node/a', AGENT_B, [sel('a')]));
    expect(ids(cache.getAuthorizedEntries(AGENT))).toEqual([]);
    expect(cache.stats()).toMatchObject({ aliases: 0, aliasSelectors: 0, entries: 2 });
    expect(ids(cache.getAuthorizedEntries(AGENT_B))).toEqual(['alias', 'w']);
    cache.removeEntry('w');
    cache.removeEntry('alias');
    cache.removeEntry('missing');
    expect(cache.size).toBe(0);
    cache.removeAgent(AGENT);
    expect(cache.stats().agents).toBe(0);
  });

  it('ignores entries outside the trust domain', () => {
    const { cache } = newCache();
    cache.updateEntry(
      entry('foreign-parent', 'spiffe://example.org/w', 'spiffe://other.org/agent'),
    );
    cache.updateEntry(entry('foreign-id', 'spiffe://other.org/w', AGENT));
    cache.updateEntry(entry('ok', 'spiffe://example.org/w', AGENT));
    expect(ids(cache.getAuthorizedEntries(AGENT))).toEqual(['ok']);
    expect(cache.size).toBe(1);
    // an entry that moves out of the trust domain is removed
    cache.updateEntry(entry('ok', 'spiffe://example.org/w', 'spiffe://other.org/agent'));
    expect(cache.size).toBe(0);
  });

  it('looks up only the requested and authorized entries', () => {
    const { cache } = newCache();
    cache.updateEntry(entry('a', 'spiffe://example.org/a', AGENT));
    cache.updateEntry(entry('b', 'spiffe://example.org/b', 'spiffe://example.org/a'));
    cache.updateEntry(
      entry('c', 'spiffe://example.org/c', 'spiffe://example.org/spire/agent/other'),
    );
    const found = cache.lookupAuthorizedEntries(AGENT, new Set(['b', 'c', 'nope']));
    expect([...found.keys()]).toEqual(['b']);
    expect(cache.lookupAuthorizedEntries(AGENT, new Set()).size).toBe(0);
  });

  it('agrees with a naive reference on random entry graphs', () => {
    const selectorArb = fc.constantFrom('s1', 's2', 's3', 's4');
    const idArb = fc.constantFrom('p0', 'p1', 'p2', 'p3', 'p4', 'p5');
    const parentArb = fc.oneof(
      fc.constant(AGENT),
      fc.constant(SERVER),
      idArb.map((p) => `spiffe://example.org/${p}`),
    );
    const entryArb = fc.record({
      spiffe: idArb,
      parent: parentArb,
      selectors: fc.uniqueArray(selectorArb, { minLength: 1, maxLength: 3 }),
      expired: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(entryArb, { maxLength: 14 }),
        fc.uniqueArray(selectorArb, { maxLength: 4 }),
        (specs, agentSelectors) => {
          const { cache } = newCache();
          const all = specs.map((s, i) =>
            entry(`e${i}`, `spiffe://example.org/${s.spiffe}`, s.parent, s.selectors.map(sel), {
              entryExpiry: s.expired ? NOW_S - 1 : 0,
            }),
          );
          for (const e of all) cache.updateEntry(e);
          cache.updateAgent(AGENT, 0, agentSelectors.map(sel));
          // reference: fixed point over parents
          const have = new Set(agentSelectors.map((s) => `x509pop:${s}`));
          const live = all.filter((e) => e.entryExpiry === 0);
          const parents = new Set<string>([AGENT]);
          for (const a of live) {
            if (
              a.parentId === SERVER &&
              a.selectors.every((s) => have.has(`${s.type}:${s.value}`))
            ) {
              parents.add(a.spiffeId);
            }
          }
          const out = new Set<string>();
          let grew = true;
          while (grew) {
            grew = false;
            for (const e of live) {
              if (e.parentId === SERVER || out.has(e.id) || !parents.has(e.parentId)) continue;
              out.add(e.id);
              parents.add(e.spiffeId);
              grew = true;
            }
          }
          expect(ids(cache.getAuthorizedEntries(AGENT))).toEqual([...out].sort());
        },
      ),
      { numRuns: 300 },
    );
  });
});
