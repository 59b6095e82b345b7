// Dedicated devices, emulated on one shared machine: a stage's work on a level (or one draft-model
// call) takes at least a modelled time, A ms plus B ms per row. The real compute runs first, then a
// timer pads the rest; a timer costs no CPU, so tabs that share this machine's cores overlap their
// padding like laptops that each run their own GPU. Work whose real compute exceeded its budget is
// an overrun: a figure with many overruns describes this machine, not dedicated devices.
// Pure (a clock can be injected): shared by the stage runner, the draft, the command line and the UI.
import { BadRequestError } from './errors.ts';

/** A modelled cost: `fixedMs` per level (or call) plus `perRowMs` per row it computes. */
export interface CostModel {
  fixedMs: number;
  perRowMs: number;
}

/** Emulated dedicated devices: the modelled cost of a stage's level and of one draft call (null: real time). */
export interface DeviceEmulation {
  /** Each stage's work on a level takes at least this (`--stage-ms A[:B]`). */
  stageMs: CostModel | null;
  /** One forward of the draft model takes at least this (`--draft-ms A[:B]`). */
  draftMs: CostModel | null;
}

/** Levels (or calls) run under a budget, and how many of them overran it. */
export interface OverrunCount {
  levels: number;
  overruns: number;
}

/** A figure with a larger share of overruns does not represent dedicated devices. */
export const MAX_OVERRUN_SHARE = 0.05;

/** Now and a CPU-free wait, in ms (tests inject a virtual one). */
export interface EmulationClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

/** performance.now and setTimeout. */
export const REAL_CLOCK: EmulationClock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/**
 * `A` or `A:B` (ms per level, ms per row) as a cost; '', '0' and '0:0' mean off (null). Throws a
 * BadRequestError naming `what` on anything else.
 */
export function parseCost(text: string, what = 'cost'): CostModel | null {
  const t = text.trim();
  if (t === '') return null;
  const parts = t.split(':');
  const nums = parts.map((p) => Number(p.trim()));
  if (parts.length > 2 || parts.some((p) => p.trim() === '') || nums.some((n) => !Number.isFinite(n) || n < 0 || n > 600_000)) {
    throw new BadRequestError(`${what} must be A or A:B (ms per level, ms per row; numbers >= 0), got "${text}"`);
  }
  const cost = { fixedMs: nums[0], perRowMs: nums[1] ?? 0 };
  return cost.fixedMs === 0 && cost.perRowMs === 0 ? null : cost;
}

/** `A` or `A:B`, as parseCost reads it ('0' when off). */
export function costText(c: CostModel | null): string {
  if (!c) return '0';
  return c.perRowMs ? `${c.fixedMs}:${c.perRowMs}` : String(c.fixedMs);
}

/** The emulation in words, for the conditions printed next to every result. */
export function emulationText(e: DeviceEmulation | null | undefined): string {
  if (!e || (!e.stageMs && !e.draftMs)) return 'no emulation (real compute on this machine)';
  const words = (c: CostModel | null, unit: string): string => (c ? `${c.fixedMs} ms/${unit}${c.perRowMs ? ` + ${c.perRowMs} ms/row` : ''}` : 'real');
  return `emulated dedicated devices: stage ${words(e.stageMs, 'level')}, draft ${words(e.draftMs, 'call')}`;
}

/** True when the emulation models anything. */
export function emulating(e: DeviceEmulation | null | undefined): e is DeviceEmulation {
  return !!e && (!!e.stageMs || !!e.draftMs);
}

/** The budget of a level of `rows` rows. */
export function budgetMs(c: CostModel, rows: number): number {
  return c.fixedMs + c.perRowMs * rows;
}

/** Overruns over levels (null when nothing ran under a budget). */
export function overrunShare(counts: readonly OverrunCount[]): number | null {
  const levels = counts.reduce((a, c) => a + c.levels, 0);
  return levels > 0 ? counts.reduce((a, c) => a + c.overruns, 0) / levels : null;
}

/**
 * Runs `work` (which computes `rows` rows) as a device of cost `cost` would: the real compute, then
 * a wait up to the budget. Counts the level in `count`, as an overrun when the compute alone took
 * longer than the budget. Without a cost it just runs `work` (and counts it). `stop` ends the wait
 * early: the device drops a level whose every row died meanwhile, as a stage that checks for
 * cancellation between layers would.
 */
export async function onEmulatedDevice<T>(cost: CostModel | null, rows: number, count: OverrunCount, work: () => Promise<T>, clock: EmulationClock = REAL_CLOCK, stop?: AbortSignal): Promise<T> {
  count.levels++;
  if (!cost) return work();
  const deadline = clock.now() + budgetMs(cost, rows);
  const out = await work();
  if (clock.now() > deadline) count.overruns++;
  const stopped = stop ? new Promise<void>((resolve) => stop.addEventListener('abort', () => resolve(), { once: true })) : null;
  // A timer may fire a little early by performance.now(): wait again until the budget is spent.
  for (let rest = deadline - clock.now(); rest > 0 && !stop?.aborted; rest = deadline - clock.now()) {
    await (stopped ? Promise.race([clock.sleep(rest), stopped]) : clock.sleep(rest));
  }
  return out;
}
