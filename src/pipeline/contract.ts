// The pipeline's contract, a leaf that imports nothing of the project: what travels around the ring
// (rows, slots, epochs, no trees) and the Pipeline interface the leader's scheduler drives. Neutral
// ground between src/speculative (which builds levels from a token tree), src/pipeline's runners
// and src/mesh (which encodes levels on the wire).

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

/**
 * A pipeline of stages, as the leader drives it.
 *
 * Ordering contract (the scheduler's correctness rests on it):
 * - Levels reach every stage in the order they were sent (FIFO per request), and each stage applies
 *   a level's verdict before it computes that level's rows. A stage may also drop rows that a
 *   verdict queued BEHIND them already killed (their slot is released, or the epoch moved on), as
 *   src/pipeline/stage-runner.ts does; it must not drop anything else.
 * - A row attends to the stage's committed slots (in commit order), then its `ancestors`, then
 *   itself. Ancestors were written by earlier levels or by earlier rows of the same level (a stage
 *   writes all rows' K/V of a layer before any of them attends). The leader never lists a committed
 *   slot as an ancestor.
 * - The last stage returns exactly one ResultPacket per level it received (rows dropped on the way
 *   are simply absent; a level with no rows gives an empty result).
 */
export interface Pipeline {
  /** Number of stages S. */
  readonly numStages: number;
  /** KV slots each stage holds for a request: slot ids are in [0, numSlots). */
  readonly numSlots: number;
  /** Sends the request's sampling settings to every stage, before its first level. */
  begin(config: RequestConfig): Promise<void>;
  /**
   * How many more levels stage 1 accepts now. The scheduler sends a new level whenever this is > 0
   * (no global lock-step); sending without credit is allowed (it queues) but costs latency.
   */
  credit(): number;
  /** Sends a level into stage 1. */
  send(level: LevelPacket): void;
  /** Registers the handler for results from the last stage. Returns an unsubscribe function. */
  onResult(handler: (result: ResultPacket) => void): () => void;
  /**
   * Resolves once something may have changed: a result was delivered or credit grew (or `signal`
   * aborted). No lost wake-ups: an event that happened after the previous call returned counts, so
   * the call returns at once (the `Wakeup` class below does exactly this). A real pipeline notifies
   * from its message handlers; the simulator advances its clock by one step here.
   */
  waitForProgress(signal?: AbortSignal): Promise<void>;
  /**
   * Pipeline steps so far (the simulator's clock), or null when the pipeline has no notion of a
   * step. Tokens per step are reported only when this is a number.
   */
  stepCount(): number | null;
  /**
   * For pipelines without a step clock (tabs on a ring): the measured duration of one pipeline step
   * in this run, i.e. a level's trip around the ring divided by the number of stages. Tokens per
   * step are then committed tokens over (decode time / step time): 1/S for PP by construction.
   */
  stepTimeMs?(): number | null;
}

/**
 * A latched wake-up for implementing Pipeline.waitForProgress: notify() from result and credit
 * handlers; wait() resolves at once if notified since the last wait() returned, else at the next
 * notify() (or abort).
 */
export class Wakeup {
  private pending = false;
  private waiter: (() => void) | null = null;

  notify(): void {
    this.pending = true;
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  wait(signal?: AbortSignal): Promise<void> {
    if (this.pending || signal?.aborted) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const done = (): void => {
        signal?.removeEventListener('abort', done);
        if (this.waiter === done) this.waiter = null;
        this.pending = false;
        resolve();
      };
      this.waiter = done;
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}
