// Host-side bookkeeping of a stage's KV slot pool. No GPU work: a slot's K/V stay where the row
// wrote them; committing appends the slot to the attend prefix, releasing forgets it.
import { BadRequestError } from '../common/errors.ts';

export class KvSlots {
  private committedList: number[] = [];
  private committedSet = new Set<number>();

  constructor(readonly numSlots: number) {}

  /** Committed slots in commit order: every row attends to these first. */
  get committed(): readonly number[] {
    return this.committedList;
  }

  /** Appends slots (in this order) to the committed prefix. */
  commit(slots: Iterable<number>): void {
    for (const s of slots) {
      this.check(s);
      if (this.committedSet.has(s)) throw new BadRequestError(`KV slot ${s} is already committed`);
      this.committedSet.add(s);
      this.committedList.push(s);
    }
  }

  /** Forgets slots (committed or not); their contents are simply overwritten by a later row. */
  release(slots: Iterable<number>): void {
    const drop = new Set<number>();
    for (const s of slots) if (this.committedSet.delete(s)) drop.add(s);
    if (drop.size) this.committedList = this.committedList.filter((s) => !drop.has(s));
  }

  /** Forgets everything (a new sequence). */
  reset(): void {
    this.committedList = [];
    this.committedSet.clear();
  }

  isCommitted(slot: number): boolean {
    return this.committedSet.has(slot);
  }

  check(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.numSlots) throw new BadRequestError(`KV slot ${slot} out of range [0, ${this.numSlots})`);
  }
}
