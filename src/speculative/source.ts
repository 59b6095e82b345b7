// Speculative token sources: whatever proposes the children of frontier nodes (a draft model, an
// n-gram lookup, a test oracle). Async throughout so a GPU draft model fits without adapters.

import type { Candidate } from './tree.ts';

export type { Candidate };

/** A tree node as a source sees it. */
export interface SourceNode {
  node: number;
  token: number;
  position: number;
  /** The node's KV slot: a draft model writes its own K/V there (its pool mirrors the stages'). */
  slot: number;
}

/** A node to expand, with its path from the root. */
export interface FrontierNode extends SourceNode {
  /**
   * Uncommitted ancestors, root first, not including the node itself. The root's token is the last
   * committed token, so the text this node continues is committed text + path[1..] + node (the
   * root itself, when it is the frontier node, has an empty path).
   */
  path: SourceNode[];
}

/** The prompt as committed text: tokens at positions 0..n-1 and the slots the stages gave them. */
export interface SourceBegin {
  request: number;
  prompt: readonly number[];
  /** slots[i] holds prompt[i]; the last prompt token is the first root (not committed yet). */
  slots: readonly number[];
  signal?: AbortSignal;
}

/** One committed target token and what it did to the tree. */
export interface SourceCommit {
  /** The target's token x, now committed text at `position`. */
  token: number;
  position: number;
  /** x was an alive child of the old root (that child is the new root). */
  hit: boolean;
  /**
   * The new root. Hit: the child the draft already saw (its K/V may already be in the draft's slot).
   * Miss: a fresh node holding x at a new slot; the draft has not seen it.
   */
  root: SourceNode;
  /** Slot of the old root, committed now (append it to the committed prefix). */
  committedSlot: number;
  /** Slots of nodes that died: forget them. On a miss this is the whole old tree. */
  releasedSlots: number[];
  epoch: number;
}

/**
 * A speculative source. Contract with the scheduler:
 * - begin() once per generation, before anything else: ingest the prompt.
 * - propose() once per pipeline step with the frontier (alive nodes not asked about yet; normally the newest
 *   level, or the new root after a miss). Return, per node, candidates sorted or not (the tree takes
 *   the best k by logprob); an empty list means "no guess".
 * - commit() after every committed target token, in order, before the next propose(). A model-based
 *   source mirrors the tree in its own KV with the same slot ids: commit `committedSlot` (its K/V
 *   are there if the draft ran that node; a source must be ready for a committed slot it never wrote,
 *   e.g. a tree-mode leaf or a new root that was committed before being expanded, and compute it
 *   before it is attended to), release `releasedSlots` (follow the hit child; flush on a miss), and
 *   know that the new root holds x.
 * - end() when generation stops (the tree is dropped: release everything uncommitted).
 */
export interface SpeculativeSource {
  readonly name: string;
  begin(init: SourceBegin): Promise<void>;
  /** `k`: how many candidates per node the tree will consider at most. */
  propose(frontier: readonly FrontierNode[], k: number, signal?: AbortSignal): Promise<Candidate[][]>;
  commit(event: SourceCommit): Promise<void>;
  end(): Promise<void>;
}
