// The leader's KV slot allocator. Every stage mirrors it through verdicts: a slot is free, held by a
// tree node (written by that node's row on every stage), or committed (part of the attend prefix).

import type { Verdict } from '../pipeline/contract.ts';

export type SlotState = 'free' | 'held' | 'committed';

export class SlotAllocator {
  private readonly state: Uint8Array; // 0 free, 1 held, 2 committed
  private readonly freeList: number[] = [];
  private pendingCommit: number[] = [];
  private pendingRelease: number[] = [];
  private committedCount = 0;

  constructor(readonly numSlots: number) {
    if (!Number.isInteger(numSlots) || numSlots <= 0) throw new Error(`SlotAllocator: bad numSlots ${numSlots}`);
    this.state = new Uint8Array(numSlots);
    // pop() takes from the end: lowest slot ids are handed out first
    for (let s = numSlots - 1; s >= 0; s--) this.freeList.push(s);
  }

  get free(): number {
    return this.freeList.length;
  }

  get committed(): number {
    return this.committedCount;
  }

  get held(): number {
    return this.numSlots - this.freeList.length - this.committedCount;
  }

  stateOf(slot: number): SlotState {
    const s = this.state[slot];
    return s === 0 ? 'free' : s === 1 ? 'held' : 'committed';
  }

  /** A free slot, now held; null when none is left. */
  alloc(): number | null {
    const s = this.freeList.pop();
    if (s === undefined) return null;
    this.state[s] = 1;
    return s;
  }

  /** Held -> committed; goes out with the next verdict (commit order = call order). */
  commit(slot: number): void {
    if (this.state[slot] !== 1) throw new Error(`commit of slot ${slot} in state ${this.stateOf(slot)}`);
    this.state[slot] = 2;
    this.committedCount++;
    this.pendingCommit.push(slot);
  }

  /**
   * Held -> free; goes out with the next verdict. The slot may be handed out again at once: the
   * level that reuses it carries (or follows) the verdict that frees it, and stages apply a verdict
   * before they compute the rows it travels with.
   */
  release(slot: number): void {
    if (this.state[slot] !== 1) throw new Error(`release of slot ${slot} in state ${this.stateOf(slot)}`);
    this.state[slot] = 0;
    this.freeList.push(slot);
    this.pendingRelease.push(slot);
  }

  /** True when commits or releases wait to be sent. */
  get hasPending(): boolean {
    return this.pendingCommit.length > 0 || this.pendingRelease.length > 0;
  }

  /** The commits and releases since the last call, as a verdict for `epoch`. */
  takeVerdict(epoch: number): Verdict {
    const v: Verdict = { epoch, commit: this.pendingCommit, release: this.pendingRelease };
    this.pendingCommit = [];
    this.pendingRelease = [];
    return v;
  }
}
