// The decoding modes and speculative sources a run can ask for, for settings forms and CLI options.
import type { GenerateOptions, Mode } from '../speculative/scheduler.ts';

export type DraftKind = 'model' | 'ngram' | 'none';

export const MODES: readonly Mode[] = ['single', 'pp', 'tree', 'specpipe'];
export const DRAFT_KINDS: readonly DraftKind[] = ['model', 'ngram', 'none'];

/** Modes that use a speculative source (the others ignore it). */
export function isSpeculative(mode: Mode): boolean {
  return mode === 'specpipe' || mode === 'tree';
}

/**
 * The user's node budget W and depth D as the scheduler's options (specpipe: width and depth
 * limit; tree: the static tree's width and depth), for generate() and reservedSlots() alike.
 */
export function treeShape(width?: number, depth?: number): Pick<GenerateOptions, 'width' | 'maxDepth' | 'treeDepth' | 'treeWidth'> {
  return { width, maxDepth: depth, treeDepth: depth, treeWidth: width };
}
