// Hugging Face config.json (+ generation_config.json) -> ModelSpec, for the Llama-compatible
// families the runtime implements. Anything we would compute wrongly is refused, not guessed.
import type { ModelSpec, SupportedArchitecture } from './types.ts';
import { ModelFormatError } from '../common/errors.ts';

/** config.json is malformed or describes a model this runtime does not implement. */
export class ModelConfigError extends ModelFormatError {
  override name = 'ModelConfigError';
}

const ARCHITECTURES: Record<string, SupportedArchitecture> = {
  LlamaForCausalLM: 'LlamaForCausalLM',
  MistralForCausalLM: 'MistralForCausalLM',
  Qwen2ForCausalLM: 'Qwen2ForCausalLM',
};

/** model_type values that mean the same computation, when `architectures` is missing. */
const MODEL_TYPES: Record<string, SupportedArchitecture> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
};

export interface ParsedConfig {
  spec: ModelSpec;
  /** Things we accepted but the user may want to know (e.g. a sliding window capping the context). */
  warnings: string[];
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function intField(c: Json, key: string, where: string, fallback?: number): number {
  const v = c[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ModelConfigError(`${where}: missing "${key}"`);
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new ModelConfigError(`${where}: "${key}" must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

function numField(c: Json, key: string, where: string, fallback: number): number {
  const v = c[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new ModelConfigError(`${where}: "${key}" must be a positive number, got ${JSON.stringify(v)}`);
  }
  return v;
}

function tokenIds(v: unknown, key: string, where: string): number[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  for (const id of list) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      throw new ModelConfigError(`${where}: "${key}" must be a token id or a list of them, got ${JSON.stringify(v)}`);
    }
  }
  return list as number[];
}

/**
 * Parses config.json (and optionally generation_config.json) into a ModelSpec.
 * `where` names the source in error messages (e.g. the URL of config.json).
 */
export function parseModelConfig(config: unknown, generationConfig?: unknown, where = 'config.json'): ParsedConfig {
  if (!isObject(config)) throw new ModelConfigError(`${where}: expected a JSON object`);
  const c = config;
  const warnings: string[] = [];

  const archs = c.architectures;
  let architecture: SupportedArchitecture | undefined;
  let named: string;
  if (Array.isArray(archs) && archs.length > 0) {
    named = String(archs[0]);
    architecture = ARCHITECTURES[named];
    if (archs.length > 1) warnings.push(`${where}: several architectures listed (${archs.join(', ')}); using ${named}`);
  } else {
    named = `model_type ${JSON.stringify(c.model_type)}`;
    architecture = typeof c.model_type === 'string' ? MODEL_TYPES[c.model_type] : undefined;
  }
  if (!architecture) {
    throw new ModelConfigError(
      `${where}: unsupported architecture ${named}; supported: ${Object.keys(ARCHITECTURES).join(', ')} ` +
        `(Llama, SmolLM, Mistral and Qwen2 checkpoints)`,
    );
  }

  const act = c.hidden_act ?? c.hidden_activation;
  if (act !== undefined && act !== 'silu' && act !== 'swish') {
    throw new ModelConfigError(`${where}: unsupported hidden_act ${JSON.stringify(act)} (only silu)`);
  }
  if (c.mlp_bias === true) throw new ModelConfigError(`${where}: mlp_bias is not supported`);

  const hiddenSize = intField(c, 'hidden_size', where);
  const numHeads = intField(c, 'num_attention_heads', where);
  const numKvHeads = intField(c, 'num_key_value_heads', where, numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new ModelConfigError(`${where}: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  }
  let headDim: number;
  if (c.head_dim !== undefined && c.head_dim !== null) {
    headDim = intField(c, 'head_dim', where);
  } else {
    if (hiddenSize % numHeads !== 0) {
      throw new ModelConfigError(`${where}: hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads} and no head_dim is given`);
    }
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 2 !== 0) throw new ModelConfigError(`${where}: head_dim ${headDim} must be even for RoPE`);

  // RoPE: plain RoPE only. Scaled variants change inv_freq; computing them wrongly is silent garbage.
  const scaling = c.rope_scaling;
  if (scaling !== undefined && scaling !== null) {
    const type = isObject(scaling) ? (scaling.rope_type ?? scaling.type) : scaling;
    if (type !== 'default') {
      throw new ModelConfigError(`${where}: unsupported rope_scaling ${JSON.stringify(type)} (only unscaled RoPE is implemented)`);
    }
  }
  const partial = c.partial_rotary_factor;
  if (partial !== undefined && partial !== null && partial !== 1) {
    throw new ModelConfigError(`${where}: partial_rotary_factor ${JSON.stringify(partial)} is not supported`);
  }

  let attentionBias: boolean;
  if (architecture === 'Qwen2ForCausalLM') {
    attentionBias = true; // Qwen2 always has q/k/v biases (o_proj has none)
  } else {
    if (c.attention_bias !== undefined && typeof c.attention_bias !== 'boolean') {
      throw new ModelConfigError(`${where}: attention_bias must be a boolean`);
    }
    attentionBias = c.attention_bias === true;
    if (attentionBias) warnings.push(`${where}: attention_bias is set: q/k/v biases are loaded (o_proj bias is not supported)`);
  }

  let maxPositions = intField(c, 'max_position_embeddings', where, 2048);
  // Sliding-window attention equals full attention while the context fits in the window, so we
  // cap the context at the window instead of implementing the window.
  const slidingUsed = architecture === 'MistralForCausalLM' || c.use_sliding_window === true;
  const window = c.sliding_window;
  if (slidingUsed && typeof window === 'number' && window > 0 && window < maxPositions) {
    warnings.push(`${where}: sliding_window ${window} < max_position_embeddings ${maxPositions}: context capped at ${window}`);
    maxPositions = window;
  }

  const g = isObject(generationConfig) ? generationConfig : {};
  const eos = new Set<number>([...tokenIds(c.eos_token_id, 'eos_token_id', where), ...tokenIds(g.eos_token_id, 'eos_token_id', 'generation_config.json')]);
  const bosList = [...tokenIds(c.bos_token_id, 'bos_token_id', where), ...tokenIds(g.bos_token_id, 'bos_token_id', 'generation_config.json')];

  const spec: ModelSpec = {
    architecture,
    hiddenSize,
    intermediateSize: intField(c, 'intermediate_size', where),
    numLayers: intField(c, 'num_hidden_layers', where),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: intField(c, 'vocab_size', where),
    ropeTheta: numField(c, 'rope_theta', where, 10000),
    rmsNormEps: numField(c, 'rms_norm_eps', where, 1e-6),
    // LlamaConfig, MistralConfig and Qwen2Config all default tie_word_embeddings to false.
    tieWordEmbeddings: c.tie_word_embeddings === true,
    attentionBias,
    maxPositions,
    bosTokenId: bosList.length > 0 ? bosList[0] : null,
    eosTokenIds: [...eos],
  };
  for (const id of [...spec.eosTokenIds, ...(spec.bosTokenId === null ? [] : [spec.bosTokenId])]) {
    if (id >= spec.vocabSize) warnings.push(`${where}: special token id ${id} is outside the vocabulary (${spec.vocabSize})`);
  }
  return { spec, warnings };
}
