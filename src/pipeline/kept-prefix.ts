// What a stage keeps of the committed text from one request to the next, so that a request resumed
// after the ring re-formed (partial recovery) skips the positions this stage already holds. Like
// Petals replaying cached inputs to a replacement server, but the other way round: each stage keeps,
// per committed position, the KV slot its K/V sit in and the hidden state it passed on. A replacement
// for the next stage is fed those kept hidden states instead of the earlier stages computing again.
//
// The leader numbers a resumed request's slots afresh, so this stage translates request slots to the
// physical slots of its KV: a kept position's row maps to the slot that already holds it (and is
// served, not computed); every other row gets a free physical slot (its own number when free).
// Kept slots stay committed in the KV across the resume, in position order, so a computed row drops
// them from its ancestors (it attends to them as committed slots already).
import type { RowMeta } from './contract.ts';
import { BadRequestError } from '../common/errors.ts';

/** The KV bookkeeping a stage's compute exposes (src/gpu's KvSlots satisfies it). */
export interface KeptKv {
  commit(slots: Iterable<number>): void;
  release(slots: Iterable<number>): void;
  /** Forgets every committed slot (a new sequence). */
  reset(): void;
}

/** A resumed request's prefill on this stage: positions served from the kept prefix, positions computed again. */
export interface ResumeStats {
  /** Positions the leader said were committed before the resume. */
  keep: number;
  /** Of those, positions this stage served from what it kept (no compute). */
  kept: number;
  /** Of those, positions this stage computed again (its layers moved here, or it had not seen their commit). */
  prefilled: number;
}

interface Written {
  position: number;
  /** The hidden state this stage passed on (null on the last stage, which passes tokens). */
  hidden: Float32Array | null;
}

export class KeptPrefix {
  /** By position: the physical slot holding its K/V and what this stage passed on for it. */
  private kept: (Written & { slot: number })[] = [];
  private readonly keptSlots = new Set<number>();
  /** The KV committed a slot that `kept` could not take (a gap): it no longer mirrors the KV. */
  private diverged = false;
  /** Physical slot -> the row that wrote it, until its commit (then it moves to `kept`) or release. */
  private readonly written = new Map<number, Written>();
  /** Request slot -> physical slot, for the current request. */
  private readonly toPhysical = new Map<number, number>();
  /** Physical slots in use (kept or mapped). */
  private readonly used = new Set<number>();
  private resume: ResumeStats | null = null;
  private reported = false;

  constructor(private readonly kv: KeptKv) {}

  /** Committed positions this stage holds now. */
  get keptPositions(): number {
    return this.kept.length;
  }

  /**
   * A request begins. `keep` > 0: its first `keep` positions are the text committed before (a resumed
   * request); this stage keeps what it holds of them. 0: a new text, everything is forgotten.
   */
  begin(keep: number): void {
    if (!Number.isInteger(keep) || keep < 0) throw new BadRequestError(`kept prefix: bad position count ${keep}`);
    this.toPhysical.clear();
    this.reported = false;
    if (keep === 0 || this.diverged) {
      this.kv.reset();
      this.kept = [];
      this.keptSlots.clear();
      this.diverged = false;
      this.written.clear();
      this.used.clear();
      this.resume = keep === 0 ? null : { keep, kept: 0, prefilled: 0 };
      return;
    }
    // Rows written but never committed belong to the interrupted request's tree: free them. A
    // request that ended cleanly also committed its last root, which the resumed one computes again.
    const extra = this.kept.splice(keep).reverse();
    for (const k of extra) this.keptSlots.delete(k.slot);
    this.kv.release([...extra.map((k) => k.slot), ...this.written.keys()]);
    this.written.clear();
    this.used.clear();
    for (const k of this.kept) this.used.add(k.slot);
    this.resume = { keep, kept: 0, prefilled: 0 };
  }

  /**
   * What this stage passed on for `row` when its position is kept: the hidden state (null on the last
   * stage); undefined when the row must be computed. Maps the row's slot either way.
   */
  served(row: RowMeta): Float32Array | null | undefined {
    const k = this.resume && row.position < this.resume.keep ? this.kept[row.position] : undefined;
    if (!k) return undefined;
    this.toPhysical.set(row.slot, k.slot);
    this.resume!.kept++;
    return k.hidden;
  }

  /** The physical slot a computed row writes, and its ancestors' (those kept as committed left out). */
  place(row: RowMeta): { slot: number; ancestors: Int32Array } {
    if (this.resume && row.position < this.resume.keep) this.resume.prefilled++;
    let slot = this.toPhysical.get(row.slot);
    if (slot === undefined) {
      slot = this.used.has(row.slot) ? this.freeSlot() : row.slot;
      this.toPhysical.set(row.slot, slot);
      this.used.add(slot);
    }
    const ancestors: number[] = [];
    for (const a of row.ancestors) {
      const p = this.physical(a);
      if (!this.keptSlots.has(p)) ancestors.push(p);
    }
    return { slot, ancestors: Int32Array.from(ancestors) };
  }

  /** Remembers what computed rows passed on (`hidden` [rows * width], absent on the last stage). */
  wrote(rows: readonly RowMeta[], slots: Int32Array, hidden: Float32Array | undefined): void {
    const width = hidden ? hidden.length / rows.length : 0;
    rows.forEach((r, i) => this.written.set(slots[i], { position: r.position, hidden: hidden ? hidden.slice(i * width, (i + 1) * width) : null }));
  }

  /** A verdict's commits, in order: the KV commits them (kept ones are committed already), the prefix grows. */
  commit(slots: readonly number[]): void {
    const fresh: number[] = [];
    for (const s of slots) {
      const p = this.physical(s);
      if (this.keptSlots.has(p)) continue;
      fresh.push(p);
      const w = this.written.get(p);
      this.written.delete(p);
      // Commits come in position order; a gap (a row this stage never computed) ends what it can keep.
      if (w && w.position === this.kept.length) {
        this.kept.push({ ...w, slot: p });
        this.keptSlots.add(p);
      } else this.diverged = true;
    }
    if (fresh.length) this.kv.commit(fresh);
  }

  /** A verdict's releases: the slots are free again. */
  release(slots: readonly number[]): void {
    const phys: number[] = [];
    for (const s of slots) {
      const p = this.toPhysical.get(s);
      if (p === undefined) continue; // never written on this stage (the row died before it)
      this.toPhysical.delete(s);
      this.used.delete(p);
      this.written.delete(p);
      phys.push(p);
    }
    if (phys.length) this.kv.release(phys);
  }

  /** Once per resumed request, after its last kept position went by: what this stage served and computed. */
  resumeDone(lastPosition: number): ResumeStats | null {
    if (!this.resume || this.reported || lastPosition < this.resume.keep) return null;
    this.reported = true;
    return { ...this.resume };
  }

  private physical(slot: number): number {
    const p = this.toPhysical.get(slot);
    if (p === undefined) throw new BadRequestError(`KV slot ${slot} was never written on this stage`);
    return p;
  }

  private freeSlot(): number {
    for (let s = 0; ; s++) if (!this.used.has(s)) return s;
  }
}
