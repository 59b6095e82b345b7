// The decoding modes and speculative sources a run can ask for, for settings forms and CLI options.
import { reservedSlots, type GenerateOptions, type Mode } from '../speculative/scheduler.ts';
import { BadRequestError } from '../common/errors.ts';
import type { SamplingSettings } from '../speculative/sampling.ts';

/** Where specpipe/tree get their guesses: the draft model, prompt lookup (n-gram), or nowhere. */
export type DraftKind = 'model' | 'ngram' | 'none';

/** Every decoding mode: one stage, plain pipeline, static token tree, SpecPipe. */
export const MODES: readonly Mode[] = ['single', 'pp', 'tree', 'specpipe'];
/** Every speculative source. */
export const DRAFT_KINDS: readonly DraftKind[] = ['model', 'ngram', 'none'];

/**
 * Seeded sampling, the chat page's default: varied text (greedy decoding of a small model loops),
 * still reproducible (same seed, same text) and lossless in every mode.
 */
export const DEFAULT_SAMPLING: SamplingSettings = { temperature: 0.8, topK: 0, topP: 0.95, seed: 1 };

/** Modes that use a speculative source (the others ignore it). */
export function isSpeculative(mode: Mode): boolean {
  return mode === 'specpipe' || mode === 'tree';
}

/**
 * The user's node budget W and depth D as the scheduler's options (specpipe: width and depth
 * limit; tree: the static tree's width and depth), for generate() and reservedSlots() alike.
 */
export function treeShape(width?: number, depth?: number, branchRatio = DEFAULT_BRANCH_RATIO): Pick<GenerateOptions, 'width' | 'maxDepth' | 'treeDepth' | 'treeWidth' | 'minBranchRatio'> {
  return { width, maxDepth: depth, treeDepth: depth, treeWidth: width, minBranchRatio: branchRatio };
}

/** specpipe's dynamic tree by default: a second guess only when it is at least this likely relative to the best. */
export const DEFAULT_BRANCH_RATIO = 0.1;

/** The widest and deepest speculative tree a request may ask for: KV slots are reserved for it. */
export const MAX_WIDTH = 8;
/** The deepest speculative tree a request may ask for. */
export const MAX_DEPTH = 8;

/** Longest text (prompt + generated) an engine holds KV for unless told otherwise. */
export const DEFAULT_MAX_CONTEXT = 1024;

/** KV slots per stage: the longest text plus the largest tree any mode may have in flight. */
export function kvSlotsFor(maxContext: number, stages: number): number {
  const reserve = Math.max(
    reservedSlots('specpipe', stages, { width: MAX_WIDTH, maxDepth: MAX_DEPTH }),
    reservedSlots('tree', stages, { treeWidth: MAX_WIDTH, treeDepth: MAX_DEPTH }),
  );
  return maxContext + reserve;
}

/** Rejects a tree shape beyond the reserved limits (before anything runs). */
export function checkTreeShape(width: number | undefined, depth: number | undefined, branchRatio?: number): void {
  if (branchRatio !== undefined && !(branchRatio >= 0 && branchRatio <= 1)) throw new BadRequestError('branchRatio must be a number from 0 to 1');
  if (width !== undefined && !(Number.isInteger(width) && width >= 1 && width <= MAX_WIDTH)) throw new BadRequestError(`width must be an integer from 1 to ${MAX_WIDTH}`);
  if (depth !== undefined && !(Number.isInteger(depth) && depth >= 1 && depth <= MAX_DEPTH)) throw new BadRequestError(`depth must be an integer from 1 to ${MAX_DEPTH}`);
}

/** A mode as a benchmark runs it: specpipe once per width W, tree once per width and depth. */
export interface ModeVariant {
  mode: Mode;
  /** specpipe and tree: the node budget W (tree: the static tree's width); null for pp and single. */
  width: number | null;
  /** tree: the static tree's depth; null otherwise (specpipe speculates up to S deep). */
  depth: number | null;
}

/** Every variant a grid of modes, widths and depths asks for, in the order given. */
export function modeVariants(modes: readonly Mode[], widths: readonly number[], depths: readonly number[]): ModeVariant[] {
  return modes.flatMap((mode): ModeVariant[] => {
    if (mode === 'specpipe') return widths.map((width) => ({ mode, width, depth: null }));
    if (mode === 'tree') return widths.flatMap((width) => depths.map((depth) => ({ mode, width, depth })));
    return [{ mode, width: null, depth: null }];
  });
}

/** `specpipe W2`, `tree W2 D4`, `pp`. */
export function variantLabel(v: ModeVariant): string {
  return [v.mode, v.width === null ? '' : `W${v.width}`, v.depth === null ? '' : `D${v.depth}`].filter(Boolean).join(' ');
}
