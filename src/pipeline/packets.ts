// What travels around the ring. Neutral ground between src/spec (which builds levels from a token
// tree) and src/mesh (which encodes them on the wire): rows, slots, epochs, no trees.

/** One row of a level: a token at a position, with the KV slots it writes and attends to. */
export interface RowMeta {
  /** Leader's id for the row (a tree node id); opaque to stages. */
  node: number;
  /** Input token id (embedded by stage 1). */
  token: number;
  /** Absolute position. */
  position: number;
  /** KV slot this row writes on every stage. */
  slot: number;
  /** KV slots of its uncommitted ancestors, root first (their K/V were written in earlier steps). */
  ancestors: number[];
  /** Uniform number in [0,1) for sampling this row's target token, keyed to position + 1. */
  uniform: number;
}

/**
 * The leader's decision about earlier rows, applied by every stage before it computes the level it
 * travels with: slots that became committed (in order), slots freed, and the current epoch. Rows of
 * an older epoch, or whose slot was freed, are dropped.
 */
export interface Verdict {
  epoch: number;
  commit: number[];
  release: number[];
}

export interface LevelPacket {
  request: number;
  step: number;
  epoch: number;
  verdict: Verdict | null;
  rows: RowMeta[];
  /** Hidden states [rows * hidden], present between stages (not on the way into stage 1). */
  hidden: Float32Array | null;
  /** Rows (indices into rows) whose full logits the last stage should return. */
  logitsRows: number[];
}

/** What the last stage returns to the leader: the target's token for every row it finished. */
export interface ResultPacket {
  request: number;
  step: number;
  epoch: number;
  nodes: number[];
  tokens: number[];
  /** Logits [logitsRows.length * vocab] when asked. */
  logits: Float32Array | null;
  logitsRows: number[];
}

/** Per-request settings sent to every stage before the first level. */
export interface RequestConfig {
  request: number;
  temperature: number;
  topK: number;
  topP: number;
}
