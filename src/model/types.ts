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
 * Dense weight formats. 'f16' is IEEE half precision packed two per u32 (widened with integer
 * operations in the kernels), so it halves the bytes read even on adapters without shader-f16.
 */
export type DenseFormat = 'f32' | 'f16';

/**
 * GGML's block formats (blocks of 32 values along the input dimension, one f16 scale each):
 * 'q8_0' (8.5 bits per weight) and 'q4_0' (4.5). Only the projection matrices (q/k/v/o,
 * gate/up/down) are quantized; layout in src/model/quant.ts.
 */
export type QuantFormat = 'q8_0' | 'q4_0';

/** How a tensor lives on the GPU. */
export type WeightFormat = DenseFormat | QuantFormat;

/**
 * A tensor ready for upload: `data` holds f32 values ('f32'), f16 bit patterns ('f16', 2 bytes
 * each), or quantized blocks in the GPU layout of src/model/quant.ts ('q8_0', 'q4_0').
 */
export interface HostTensor {
  name: string;
  shape: number[];
  format: WeightFormat;
  data: Float32Array | Uint16Array | Uint32Array;
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
