// The decoding modes and speculative sources a run can ask for, for settings forms and CLI options.
import type { Mode } from '../spec/scheduler.ts';

export type DraftKind = 'model' | 'ngram' | 'none';

export const MODES: readonly Mode[] = ['single', 'pp', 'tree', 'specpipe'];
export const DRAFT_KINDS: readonly DraftKind[] = ['model', 'ngram', 'none'];

/** Modes that use a speculative source (the others ignore it). */
export function isSpeculative(mode: Mode): boolean {
  return mode === 'specpipe' || mode === 'tree';
}
