import { describe, it, expect } from 'vitest';
import { TokenTree } from '../src/speculative/tree.ts';
import { SlotAllocator } from '../src/speculative/slots.ts';

const mk = (opts: { slots?: number; eos?: number[]; maxDepth?: number; maxPosition?: number } = {}) => {
  const alloc = new SlotAllocator(opts.slots ?? 64);
  const tree = new TokenTree({ allocator: alloc, eosTokens: opts.eos, maxDepth: opts.maxDepth, maxPosition: opts.maxPosition });
  tree.reset(10, 5);
  return { alloc, tree };
};
const c = (token: number, logprob: number) => ({ token, logprob });

describe('SlotAllocator', () => {
  it('allocates, commits and releases, and reports them as verdicts', () => {
    const a = new SlotAllocator(4);
    const s = [a.alloc(), a.alloc(), a.alloc(), a.alloc()];
    expect(s).toEqual([0, 1, 2, 3]);
    expect(a.alloc()).toBeNull();
    a.commit(1);
    a.release(2);
    expect(() => a.release(1)).toThrow();
    expect(() => a.commit(2)).toThrow();
    expect(a.takeVerdict(3)).toEqual({ epoch: 3, commit: [1], release: [2] });
    expect(a.hasPending).toBe(false);
    expect(a.alloc()).toBe(2);
    expect([a.free, a.held, a.committed]).toEqual([0, 3, 1]);
  });
});

describe('TokenTree', () => {
  it('a leaf that lost the budget to better nodes keeps its candidates and grows later', () => {
    const { tree } = mk();
    const [a, b] = tree.expand(tree.frontier(), [[c(1, -0.1), c(2, -0.5)]], 2);
    // b's children outscore a's: both budget places go to b
    const l2 = tree.expand(tree.frontier(), [[c(11, -2.0), c(12, -2.1)], [c(21, -0.1), c(22, -0.2)]], 2);
    expect(l2.map((n) => [n.parent, n.token])).toEqual([[b.id, 21], [b.id, 22]]);
    expect(tree.canGrow()).toBe(true);
    // b's grandchildren are unlikely: a's waiting children win without asking the source again
    const l3 = tree.expand(tree.frontier(), [[c(31, -3)], [c(32, -3)]], 2);
    expect(l3.map((n) => [n.parent, n.token, n.logprob])).toEqual([[a.id, 11, -2.1], [a.id, 12, -2.2]]);
    // a has children now: it is no leaf and offers nothing more
    expect(a.pending).toEqual([]);
    expect(tree.expand([], [], 1).map((n) => n.token)).toEqual([31]);
  });

  it('W=1 builds a chain with positions and cumulative log-probs', () => {
    const { tree } = mk();
    const root = tree.root;
    expect(tree.frontier()).toEqual([root]);
    const l1 = tree.expand(tree.frontier(), [[c(3, -0.5), c(4, -0.1)]], 1);
    expect(l1.map((n) => n.token)).toEqual([4]);
    expect(l1[0]).toMatchObject({ parent: root.id, position: 6, depth: 1, logprob: -0.1 });
    const l2 = tree.expand(tree.frontier(), [[c(7, -1)]], 1);
    expect(l2[0]).toMatchObject({ parent: l1[0].id, position: 7, depth: 2, logprob: -1.1 });
    expect(tree.ancestorSlots(l2[0])).toEqual([root.slot, l1[0].slot]);
    expect(tree.path(l2[0]).map((n) => n.token)).toEqual([10, 4, 7]);
    expect(tree.frontier()).toEqual([l2[0]]);
  });

  it('W>1 keeps the best W children over the top-k of each frontier node; siblings share a position', () => {
    const { tree } = mk();
    const l1 = tree.expand(tree.frontier(), [[c(1, -0.1), c(2, -0.2), c(3, -3)]], 2);
    expect(l1.map((n) => n.token)).toEqual([1, 2]);
    expect(l1.map((n) => n.position)).toEqual([6, 6]);
    // frontier is both; children scored by cumulative log-prob; top-k=2 per node caps each parent
    const f = tree.frontier();
    expect(f).toEqual(l1);
    const l2 = tree.expand(f, [[c(5, -2), c(6, -2.5), c(7, -0.01)], [c(8, -0.05), c(9, -0.3)]], 3, 2);
    // candidates: under 1 (top-2 by q): 7 (-0.11), 5 (-2.1); under 2: 8 (-0.25), 9 (-0.5)
    expect(l2.map((n) => n.token)).toEqual([7, 8, 9]);
    expect(l2.map((n) => tree.get(n.parent!)!.token)).toEqual([1, 2, 2]);
    expect(l2[0].logprob).toBeCloseTo(-0.11);
  });

  it('dedupes candidate tokens and ignores non-finite log-probs', () => {
    const { tree } = mk();
    const l = tree.expand(tree.frontier(), [[c(1, -0.1), c(1, -0.2), c(2, -Infinity), c(3, NaN), c(4, -1)]], 4, 4);
    expect(l.map((n) => n.token)).toEqual([1, 4]);
  });

  it('gives EOS nodes no children', () => {
    const { tree } = mk({ eos: [0] });
    const l1 = tree.expand(tree.frontier(), [[c(0, -0.1), c(5, -0.2)]], 2);
    expect(l1.map((n) => n.token)).toEqual([0, 5]);
    expect(tree.frontier().map((n) => n.token)).toEqual([5]);
    // even if asked explicitly, an EOS node gets nothing
    const l2 = tree.expand([l1[0]], [[c(9, -0.1)]], 2);
    expect(l2).toEqual([]);
  });

  it('creates nothing past the max position and respects the depth limit below the root', () => {
    const { tree } = mk({ maxPosition: 7 });
    tree.expand(tree.frontier(), [[c(1, -0.1)]], 1); // position 6
    const l2 = tree.expand(tree.frontier(), [[c(2, -0.1)]], 1); // position 7
    expect(l2).toHaveLength(1);
    expect(tree.frontier()).toEqual([]);
    expect(tree.expand([l2[0]], [[c(3, -0.1)]], 1)).toEqual([]);

    const d = mk({ maxDepth: 2 }).tree;
    d.expand(d.frontier(), [[c(1, -0.1)]], 1);
    const b = d.expand(d.frontier(), [[c(2, -0.1)]], 1);
    expect(d.frontier()).toEqual([]);
    // after a hit the root moves down, so the limit moves with it
    d.commit(1);
    expect(d.frontier()).toEqual(b);
  });

  it('empty frontier and empty candidate lists expand to nothing', () => {
    const { tree } = mk();
    expect(tree.expand([], [], 4)).toEqual([]);
    expect(tree.expand(tree.frontier(), [[]], 4)).toEqual([]);
    expect(tree.frontier()).toEqual([]); // the root was expanded (with no child)
  });

  it('stops expanding when slots run out', () => {
    const { tree } = mk({ slots: 3 }); // root holds one
    const l = tree.expand(tree.frontier(), [[c(1, -0.1), c(2, -0.2), c(3, -0.3)]], 3);
    expect(l.map((n) => n.token)).toEqual([1, 2]);
  });

  it('hit: the child becomes root, everything outside its subtree dies, the old root slot commits', () => {
    const { tree, alloc } = mk();
    const root = tree.root;
    const [a, b] = tree.expand(tree.frontier(), [[c(1, -0.1), c(2, -0.2)]], 2);
    const [a1, b1] = tree.expand([a, b], [[c(3, -0.1)], [c(4, -0.1)]], 2);
    alloc.takeVerdict(0);
    const out = tree.commit(2);
    expect(out.hit).toBe(true);
    expect(out.root).toBe(b);
    expect(out.position).toBe(6);
    expect(out.committedSlot).toBe(root.slot);
    expect(new Set(out.releasedSlots)).toEqual(new Set([a.slot, a1.slot]));
    expect(new Set(out.deadNodes)).toEqual(new Set([a.id, a1.id]));
    expect(tree.isAlive(a.id) || tree.isAlive(a1.id) || tree.isAlive(root.id)).toBe(false);
    expect(tree.isAlive(b1.id)).toBe(true);
    expect(tree.ancestorSlots(b1)).toEqual([b.slot]);
    expect(out.epoch).toBe(0);
    const v = alloc.takeVerdict(tree.epoch);
    expect(v.commit).toEqual([root.slot]);
    expect(new Set(v.release)).toEqual(new Set([a.slot, a1.slot]));
  });

  it('miss: the whole tree dies, epoch increments, x becomes a fresh root', () => {
    const { tree, alloc } = mk();
    const root = tree.root;
    const l1 = tree.expand(tree.frontier(), [[c(1, -0.1), c(2, -0.2)]], 2);
    const l2 = tree.expand(l1, [[c(3, -0.1)], [c(4, -0.1)]], 2);
    const out = tree.commit(9);
    expect(out.hit).toBe(false);
    expect(out.epoch).toBe(1);
    expect(tree.epoch).toBe(1);
    expect(out.root).toMatchObject({ token: 9, position: 6, parent: null, injected: false, expanded: false });
    expect(tree.size).toBe(1);
    expect(new Set(out.releasedSlots)).toEqual(new Set([...l1, ...l2].map((n) => n.slot)));
    expect(alloc.committed).toBe(1);
    expect(alloc.held).toBe(1); // the new root
    expect(tree.frontier()).toEqual([out.root]);
    expect(out.root.id).toBeGreaterThan(root.id);
  });

  it('finish commits an injected root and releases the rest; nothing leaks', () => {
    const { tree, alloc } = mk({ slots: 16 });
    tree.root.injected = true;
    tree.expand(tree.frontier(), [[c(1, -0.1), c(2, -0.2)]], 2);
    const f = tree.finish();
    expect(f.committedSlot).not.toBeNull();
    expect(f.releasedSlots).toHaveLength(2);
    expect([alloc.free, alloc.held, alloc.committed]).toEqual([15, 0, 1]);

    const t2 = mk({ slots: 16 });
    t2.tree.commit(3); // miss: fresh root, not injected
    t2.tree.finish();
    expect([t2.alloc.free, t2.alloc.held, t2.alloc.committed]).toEqual([15, 0, 1]);
  });
});
