// What the runtime knows about a model, independent of where its files live.

export type SupportedArchitecture = 'LlamaForCausalLM' | 'MistralForCausalLM' | 'Qwen2ForCausalLM';

export interface ModelSpec {
  architecture: SupportedArchitecture;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  ropeTheta: number;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry biases (Qwen2). */
  attentionBias: boolean;
  maxPositions: number;
  bosTokenId: number | null;
  eosTokenIds: number[];
}

/** Source dtypes we read from safetensors. */
export type SourceDtype = 'F32' | 'F16' | 'BF16';

/**
 * How weights live on the GPU. 'f16' is IEEE half precision packed two per u32 (widened with
 * unpack2x16float), so it halves the bytes read even on adapters without shader-f16.
 */
export type WeightFormat = 'f32' | 'f16';

/** A tensor ready for upload: `data` holds f32 values, or f16 bit patterns (2 bytes each). */
export interface HostTensor {
  name: string;
  shape: number[];
  format: WeightFormat;
  data: Float32Array | Uint16Array;
}

/** Half-open range of decoder layers [start, end) held by one stage. */
export interface LayerRange {
  start: number;
  end: number;
}

/** Which extra parts a stage holds besides its layers. */
export interface StageRole {
  layers: LayerRange;
  /** First stage: embeds token ids. */
  embed: boolean;
  /** Last stage: final norm + LM head. */
  head: boolean;
}
