// Partial recovery: which layers move when stage tabs are lost. Stages that are still there keep
// their layers (and so their weights and their KV of the committed text); a lost stage's layers go
// to a spare tab whole, or, when no spare is left, join a neighbour's range. Only the tabs whose
// layers changed load and prefill anything.
import type { StageRole } from '../model/types.ts';
import { describeRole } from '../pipeline/layers.ts';

/** A stage of the ring as it was: its tab and its layers. */
export interface PlacedStage {
  id: string;
  role: StageRole;
}

/** The re-formed ring: stage tabs in order with their layers, and what moved where, in words. */
export interface RecoveryPlan {
  ids: string[];
  roles: StageRole[];
  /** Tabs whose layers changed (they load and prefill); every other tab keeps its layers and KV. */
  changed: string[];
  /** e.g. 'layers 2-3 -> spare tab c', 'layers 4-5 + head -> joined b's layers 2-3'. */
  moves: string[];
}

/**
 * The ring after losing `lost`: each lost stage's layers go to the next of `spares` (in place), else
 * join the previous stage left (the first one left, for lost stages at the front). Null when no stage is left.
 */
export function planRecovery(ring: readonly PlacedStage[], lost: ReadonlySet<string>, spares: readonly string[], nameOf: (id: string) => string = (id) => id): RecoveryPlan | null {
  const free = [...spares];
  const out: { id: string; role: StageRole; changed: boolean }[] = [];
  const orphans: { at: number; role: StageRole }[] = [];
  const moves: string[] = [];
  for (const s of ring) {
    if (!lost.has(s.id)) out.push({ ...s, changed: false });
    else {
      const spare = free.shift();
      if (spare !== undefined) {
        out.push({ id: spare, role: s.role, changed: true });
        moves.push(`${describeRole(s.role)} -> spare tab ${nameOf(spare)}`);
      } else orphans.push({ at: out.length, role: s.role });
    }
  }
  if (!out.length) return null;
  // Into the previous stage in ring order; lost stages at the front go to the first one left, nearest first.
  const front = orphans.filter((o) => o.at === 0).reverse();
  for (const o of [...orphans.filter((o) => o.at > 0), ...front]) {
    const into = Math.max(0, o.at - 1);
    const host = out[into];
    moves.push(`${describeRole(o.role)} -> joined ${nameOf(host.id)}'s ${describeRole(host.role)}`);
    out[into] = { id: host.id, role: joinRoles(host.role, o.role), changed: true };
  }
  return { ids: out.map((s) => s.id), roles: out.map((s) => s.role), changed: out.filter((s) => s.changed).map((s) => s.id), moves };
}

/** Two adjacent layer ranges as one stage's (either order). */
function joinRoles(a: StageRole, b: StageRole): StageRole {
  const [lo, hi] = a.layers.start <= b.layers.start ? [a, b] : [b, a];
  if (lo.layers.end !== hi.layers.start) throw new Error(`${describeRole(lo)} and ${describeRole(hi)} are not adjacent`);
  return { layers: { start: lo.layers.start, end: hi.layers.end }, embed: lo.embed, head: hi.head };
}
