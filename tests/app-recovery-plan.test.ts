// Partial recovery's plan: stages left keep their layers; a lost stage's layers go whole to a spare
// tab, else join a neighbour's range; the ring still covers every layer once, in order.
import { describe, expect, it } from 'vitest';
import { planRecovery, type PlacedStage } from '../src/app/recovery-plan.ts';
import type { StageRole } from '../src/model/types.ts';

const role = (start: number, end: number, embed = false, head = false): StageRole => ({ layers: { start, end }, embed, head });
const ring: PlacedStage[] = [
  { id: 'a', role: role(0, 2, true) },
  { id: 'b', role: role(2, 4) },
  { id: 'c', role: role(4, 6) },
  { id: 'd', role: role(6, 8, false, true) },
];

/** Every layer exactly once, in ring order; embedding at the front and head at the back. */
function covers(roles: StageRole[], numLayers: number): void {
  let next = 0;
  for (const r of roles) {
    expect(r.layers.start).toBe(next);
    expect(r.layers.end).toBeGreaterThan(r.layers.start);
    next = r.layers.end;
  }
  expect(next).toBe(numLayers);
  expect(roles.map((r) => r.embed)).toEqual(roles.map((_, i) => i === 0));
  expect(roles.map((r) => r.head)).toEqual(roles.map((_, i) => i === roles.length - 1));
}

describe('planRecovery', () => {
  it('a spare takes a lost stage\'s layers in place; no other stage changes', () => {
    const p = planRecovery(ring, new Set(['c']), ['x', 'y'])!;
    expect(p.ids).toEqual(['a', 'b', 'x', 'd']);
    expect(p.roles).toEqual(ring.map((s) => s.role));
    expect(p.changed).toEqual(['x']);
    expect(p.moves).toEqual(['layers 4-5 -> spare tab x']);
  });

  it('without a spare the lost layers join the previous stage (the next one for stage 1)', () => {
    const mid = planRecovery(ring, new Set(['c']), [])!;
    expect(mid.ids).toEqual(['a', 'b', 'd']);
    expect(mid.roles[1]).toEqual(role(2, 6));
    expect(mid.changed).toEqual(['b']);
    covers(mid.roles, 8);
    const first = planRecovery(ring, new Set(['a']), [])!;
    expect(first.ids).toEqual(['b', 'c', 'd']);
    expect(first.roles[0]).toEqual(role(0, 4, true));
    covers(first.roles, 8);
  });

  it('several losses at once: spares first, the rest merged; every layer still covered once', () => {
    for (const lost of [['a', 'b'], ['b', 'c'], ['c', 'd'], ['a', 'd'], ['a', 'b', 'c'], ['b', 'c', 'd']]) {
      for (const spares of [[], ['x']]) {
        const p = planRecovery(ring, new Set(lost), spares)!;
        covers(p.roles, 8);
        expect(p.ids.length).toBe(4 - lost.length + spares.length);
        // Stages neither lost nor merged into keep their exact layers.
        for (const s of ring) if (!lost.includes(s.id) && !p.changed.includes(s.id)) expect(p.roles[p.ids.indexOf(s.id)]).toEqual(s.role);
      }
    }
    expect(planRecovery(ring, new Set(['a', 'b', 'c', 'd']), [])).toBeNull();
  });
});
