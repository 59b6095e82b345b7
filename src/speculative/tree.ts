// The leader's speculative token tree. The root is the newest token whose target output is not yet
// known (its token is committed text; its slot is not committed until its output is). Every other
// node is a guess. Nodes never move: a node keeps its id, position and KV slot until it dies or its
// slot is committed.

import type { SlotAllocator } from './slots.ts';

export interface TreeNode {
  /** Unique for the whole generation (never reused, across epochs). */
  readonly id: number;
  readonly token: number;
  /** Parent id; null for the root of an epoch (a node whose parent was committed keeps its id). */
  readonly parent: number | null;
  /** Distance from the first root of the generation (= position - root position of the prompt). */
  readonly depth: number;
  /** Absolute position: parent position + 1 (siblings share a position). */
  readonly position: number;
  /** Cumulative draft log-probability from the root of its epoch (root: 0). */
  readonly logprob: number;
  /** KV slot its row writes on every stage; held until the node dies (released) or is committed. */
  readonly slot: number;
  readonly epoch: number;
  alive: boolean;
  /** Its row has been sent into the pipeline. */
  injected: boolean;
  /** The source was asked for its children (each node is asked at most once). */
  expanded: boolean;
  /**
   * The source's candidates not yet made children (best first): a leaf keeps them, so a node that
   * lost the budget to better-scored nodes in one step can still get children in a later one.
   */
  pending: Candidate[];
  readonly children: number[];
}

/** A candidate child proposed by a speculative source. */
export interface Candidate {
  token: number;
  /** log q(token | path), <= 0. */
  logprob: number;
}

export interface TreeOptions {
  allocator: SlotAllocator;
  /** Tokens that end generation: such nodes get no children. */
  eosTokens?: readonly number[];
  /** Largest depth below the current root a node may have. Default: unlimited. */
  maxDepth?: number;
  /** Largest position a node may have (nothing is created past it). Default: unlimited. */
  maxPosition?: number;
  /** First node id (ids below it are free for the caller, e.g. prompt rows). Default 0. */
  idBase?: number;
}

export interface CommitOutcome {
  /** The target's token, now committed text at `position`. */
  token: number;
  position: number;
  /** An alive child of the old root carried `token`: it became the root. */
  hit: boolean;
  /** The slot of the old root, committed now. */
  committedSlot: number;
  /** Slots of the nodes that died (released). */
  releasedSlots: number[];
  /** Ids of the nodes that died. */
  deadNodes: number[];
  /** The new root: the hit child, or a fresh node holding `token` (not yet injected) after a miss. */
  root: TreeNode;
  epoch: number;
}

export class TokenTree {
  private readonly nodes = new Map<number, TreeNode>();
  private nextId = 0;
  private rootId = -1;
  private epochCounter = 0;
  readonly allocator: SlotAllocator;
  readonly eos: ReadonlySet<number>;
  maxDepth: number;
  maxPosition: number;

  constructor(opts: TreeOptions) {
    this.allocator = opts.allocator;
    this.eos = new Set(opts.eosTokens ?? []);
    this.maxDepth = opts.maxDepth ?? Infinity;
    this.maxPosition = opts.maxPosition ?? Infinity;
    this.nextId = opts.idBase ?? 0;
  }

  /** Starts a tree whose root is `token` at `position` (e.g. the last prompt token). */
  reset(token: number, position: number, slot?: number): TreeNode {
    for (const n of this.nodes.values()) this.killOne(n, null);
    this.nodes.clear();
    const s = slot ?? this.allocSlot();
    const root = this.make(token, null, 0, position, 0, s);
    this.rootId = root.id;
    return root;
  }

  get root(): TreeNode {
    const r = this.nodes.get(this.rootId);
    if (!r) throw new Error('TokenTree: no root (call reset first)');
    return r;
  }

  get epoch(): number {
    return this.epochCounter;
  }

  /** Alive nodes, including the root. */
  get size(): number {
    return this.nodes.size;
  }

  get(id: number): TreeNode | undefined {
    return this.nodes.get(id);
  }

  isAlive(id: number): boolean {
    return this.nodes.has(id);
  }

  aliveNodes(): TreeNode[] {
    return [...this.nodes.values()];
  }

  /** Root-to-node path, both included. */
  path(node: TreeNode): TreeNode[] {
    const out: TreeNode[] = [];
    let n: TreeNode | undefined = node;
    while (n) {
      out.push(n);
      if (n.id === this.rootId) break;
      n = n.parent === null ? undefined : this.nodes.get(n.parent);
    }
    if (out[out.length - 1].id !== this.rootId) throw new Error(`node ${node.id} is not under the root`);
    return out.reverse();
  }

  /** KV slots of the node's uncommitted ancestors (root first), i.e. its path without itself. */
  ancestorSlots(node: TreeNode): number[] {
    const p = this.path(node);
    p.pop();
    return p.map((n) => n.slot);
  }

  /** Whether a node may still get children (alive, not EOS, within depth and length limits). */
  canExpand(n: TreeNode): boolean {
    return (
      n.alive &&
      !this.eos.has(n.token) &&
      n.depth - this.root.depth < this.maxDepth &&
      n.position + 1 <= this.maxPosition
    );
  }

  /** Alive nodes the source has not been asked about yet that may get children, in id order. */
  frontier(): TreeNode[] {
    const out: TreeNode[] = [];
    for (const n of this.nodes.values()) if (!n.expanded && this.canExpand(n)) out.push(n);
    return out;
  }

  /** Whether expand() could add a node now: some node awaits the source or holds candidates. */
  canGrow(): boolean {
    for (const n of this.nodes.values()) if (this.canExpand(n) && (!n.expanded || (n.pending.length > 0 && this.isLeaf(n)))) return true;
    return false;
  }

  /**
   * Records the source's candidates for `frontier` (`candidates[i]` for `frontier[i]`: the best
   * `topK` distinct tokens of each), then adds the best `budget` children overall among the
   * candidates of every leaf that may grow, scored parent logprob + log q (ties: older node, then
   * better-ranked candidate). Leaves only: the tree grows its most probable paths; a leaf that got
   * no child keeps its candidates for the next call (with W = 1 this is a chain). `minRatio` makes
   * the width dynamic: beyond the best child, a child is added only if its path probability is at
   * least minRatio times the best's. Children get slots from the allocator; expansion stops early
   * when it runs out. Returns the new nodes (the new level) in creation order.
   */
  expand(frontier: readonly TreeNode[], candidates: readonly (readonly Candidate[])[], budget: number, topK = budget, minRatio = 0): TreeNode[] {
    if (candidates.length !== frontier.length) throw new Error('expand: one candidate list per frontier node');
    frontier.forEach((parent, fi) => {
      if (!this.nodes.has(parent.id)) throw new Error(`expand: node ${parent.id} is not alive`);
      parent.expanded = true;
      const seen = new Set<number>();
      parent.pending = [];
      const ranked = [...candidates[fi]]
        .filter((c) => Number.isFinite(c.logprob) && Number.isInteger(c.token) && c.token >= 0)
        .sort((a, b) => b.logprob - a.logprob);
      for (const c of ranked) {
        if (parent.pending.length >= topK) break;
        if (seen.has(c.token)) continue;
        seen.add(c.token);
        parent.pending.push(c);
      }
    });
    interface Scored { parent: TreeNode; ci: number; score: number }
    const all: Scored[] = [];
    for (const parent of this.nodes.values()) {
      if (!parent.pending.length || !this.canExpand(parent) || !this.isLeaf(parent)) continue;
      parent.pending.forEach((c, ci) => all.push({ parent, ci, score: parent.logprob + c.logprob }));
    }
    all.sort((a, b) => b.score - a.score || a.parent.id - b.parent.id || a.ci - b.ci);
    const taken: Scored[] = [];
    const level: TreeNode[] = [];
    const floor = all.length && minRatio > 0 ? all[0].score + Math.log(minRatio) : -Infinity;
    for (const c of all.slice(0, Math.max(0, budget))) {
      if (c.score < floor) break;
      const slot = this.allocator.alloc();
      if (slot === null) break;
      const child = this.make(c.parent.pending[c.ci].token, c.parent.id, c.parent.depth + 1, c.parent.position + 1, c.score, slot);
      c.parent.children.push(child.id);
      level.push(child);
      taken.push(c);
    }
    // A parent that got a child is no leaf any more; its other candidates are dropped.
    for (const c of taken) c.parent.pending = [];
    return level;
  }

  private isLeaf(n: TreeNode): boolean {
    return n.children.every((id) => !this.nodes.has(id));
  }

  /**
   * The target's token `x` for the root is known: commit it. Hit: an alive child of the root has
   * token x: it becomes the root and every node outside its subtree dies. Miss: the whole tree dies,
   * the epoch increments and a fresh root holding x (at root position + 1, with a new slot) starts
   * the next epoch. Either way the old root's slot is committed.
   */
  commit(x: number): CommitOutcome {
    const old = this.root;
    const released: number[] = [];
    const dead: number[] = [];
    const hitChild = old.children.map((id) => this.nodes.get(id)).find((c) => c !== undefined && c.token === x);
    this.allocator.commit(old.slot);
    this.nodes.delete(old.id);
    old.alive = false;
    let root: TreeNode;
    if (hitChild) {
      for (const id of old.children) {
        const c = this.nodes.get(id);
        if (c && c !== hitChild) this.killSubtree(c, released, dead);
      }
      root = hitChild;
    } else {
      for (const id of old.children) {
        const c = this.nodes.get(id);
        if (c) this.killSubtree(c, released, dead);
      }
      this.epochCounter++;
      root = this.make(x, null, old.depth + 1, old.position + 1, 0, this.allocSlot());
    }
    this.rootId = root.id;
    return { token: x, position: old.position + 1, hit: !!hitChild, committedSlot: old.slot, releasedSlots: released, deadNodes: dead, root, epoch: this.epochCounter };
  }

  /**
   * Ends the tree: the root's slot is committed when its row was injected (its token is committed
   * text and its K/V are being written), released otherwise; every other node dies.
   */
  finish(): { committedSlot: number | null; releasedSlots: number[] } {
    const released: number[] = [];
    const dead: number[] = [];
    const root = this.nodes.get(this.rootId);
    let committedSlot: number | null = null;
    if (root) {
      for (const id of root.children) {
        const c = this.nodes.get(id);
        if (c) this.killSubtree(c, released, dead);
      }
      this.nodes.delete(root.id);
      root.alive = false;
      if (root.injected) {
        this.allocator.commit(root.slot);
        committedSlot = root.slot;
      } else {
        this.allocator.release(root.slot);
        released.push(root.slot);
      }
    }
    for (const n of [...this.nodes.values()]) this.killOne(n, released);
    this.nodes.clear();
    this.rootId = -1;
    return { committedSlot, releasedSlots: released };
  }

  private allocSlot(): number {
    const s = this.allocator.alloc();
    if (s === null) throw new Error('TokenTree: out of KV slots for a root (reserve slots beyond the context)');
    return s;
  }

  private make(token: number, parent: number | null, depth: number, position: number, logprob: number, slot: number): TreeNode {
    const n: TreeNode = { id: this.nextId++, token, parent, depth, position, logprob, slot, epoch: this.epochCounter, alive: true, injected: false, expanded: false, pending: [], children: [] };
    this.nodes.set(n.id, n);
    return n;
  }

  private killSubtree(n: TreeNode, released: number[], dead: number[]): void {
    const stack = [n];
    while (stack.length) {
      const m = stack.pop()!;
      if (!this.nodes.has(m.id)) continue;
      for (const id of m.children) {
        const c = this.nodes.get(id);
        if (c) stack.push(c);
      }
      dead.push(m.id);
      this.killOne(m, released);
    }
  }

  private killOne(n: TreeNode, released: number[] | null): void {
    if (!n.alive) return;
    n.alive = false;
    this.nodes.delete(n.id);
    this.allocator.release(n.slot);
    released?.push(n.slot);
  }
}
