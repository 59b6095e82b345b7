// The contract of a stage's forward pass: a batch of rows in, hidden states or tokens out.

/** Per-row sampling settings for the last stage. temperature 0 means greedy argmax. */
export interface RowSampling {
  temperature: number;
  /** 0 disables top-k. */
  topK: number;
  /** 1 disables top-p. */
  topP: number;
  /** Uniform random number in [0, 1), supplied by the caller (keyed to the absolute position). */
  uniform: number;
}

export interface RowBatch {
  /** Token ids, one per row: the input of a stage that embeds. */
  tokens?: Int32Array;
  /** Hidden states [rows * hiddenSize]: the input of a stage that does not embed. */
  hidden?: Float32Array;
  /** Absolute position of each row (RoPE is applied with it when K is written). */
  positions: Int32Array;
  /** KV slot each row writes its K/V into. */
  slots: Int32Array;
  /**
   * Per row, the KV slots of its uncommitted tree ancestors in root-to-parent order. A row attends
   * to the stage's committed slots (in commit order), then these, then itself.
   */
  ancestors: Int32Array[];
  /** Last stage only: how each row picks its token. */
  sampling?: RowSampling[];
  /** Last stage only: also return the full logits of these rows (indices into the batch). */
  logitsRows?: number[];
  /**
   * Last stage only: return, instead of full logits, the k best tokens of each row of `logitsRows`
   * (every row when it is absent) and their log-probabilities at `temperature` (log-softmax over the
   * whole vocabulary; a temperature <= 0 means 1), computed on the GPU. Without `sampling`, no token
   * is picked (StageOutput.tokens is absent).
   */
  candidates?: { k: number; temperature: number };
}

export interface StageOutput {
  /** Non-last stage: hidden states [rows * hiddenSize]. */
  hidden?: Float32Array;
  /** Last stage: one token per row (absent when the batch asked for candidates without sampling). */
  tokens?: Int32Array;
  /**
   * Last stage, when the batch asked for candidates: [rows * k] ids, best first (ties to the lower
   * id), and their log-probabilities, for the rows of logitsRows (or every row) in that order.
   */
  candidates?: { ids: Int32Array; logprobs: Float32Array };
  /** Last stage: logits [logitsRows.length * vocabSize] when asked. */
  logits?: Float32Array;
}
