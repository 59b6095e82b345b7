// The model-loading entry points: loadModel(source) for what every tab needs (spec, tokenizer,
// where the tensors are), loadStageTensors(...) for the weights of one stage.
import type { ModelSpec } from './types.ts';
import type { ModelSource } from './source.ts';
import type { WeightCacheChoice } from './cache.ts';
import { parseModelConfig } from './config.ts';
import { loadTokenizer, type TextTokenizer } from './tokenizer.ts';
import { tensorIndexFor, validateTensorIndex, type TensorIndex } from './weights.ts';

export interface LoadedModel {
  spec: ModelSpec;
  /** null when the model has no tokenizer.json (test fixtures) or it was not asked for. */
  tokenizer: TextTokenizer | null;
  tensorIndex: TensorIndex;
  source: ModelSource;
  /** Non-fatal notes from config parsing, validation and the source. */
  warnings: string[];
}

export interface LoadModelOptions {
  /** Load tokenizer.json (default true). */
  tokenizer?: boolean;
  /** Read safetensors headers through the IndexedDB cache (default true; off without IndexedDB), none (false) or the given cache. */
  cache?: WeightCacheChoice;
  signal?: AbortSignal;
}

/**
 * Reads config.json (+ generation_config.json), the safetensors headers (never tensor data) and
 * the tokenizer, and checks that every tensor the config implies is there with the right shape
 * and a supported dtype.
 */
export async function loadModel(source: ModelSource, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const { signal } = options;
  const [config, generation] = await Promise.all([source.readJson('config.json', signal), source.readOptionalJson('generation_config.json', signal)]);
  const where = source.description.endsWith('/') ? `${source.description}config.json` : `config.json (${source.description})`;
  const { spec, warnings } = parseModelConfig(config, generation, where);
  const [tensorIndex, tokenizer] = await Promise.all([
    tensorIndexFor(source, { signal, cache: options.cache }),
    options.tokenizer === false ? Promise.resolve(null) : loadTokenizer(source, signal),
  ]);
  warnings.push(...validateTensorIndex(tensorIndex, spec));
  return {
    spec,
    tokenizer,
    tensorIndex,
    source,
    get warnings() {
      return [...warnings, ...source.warnings];
    },
  };
}

export { loadStageTensors, tensorNamesForRole, headWeightName, expectedTensors, convertTensor, readTensorIndex, validateTensorIndex, WeightError } from './weights.ts';
export type { LoadStageOptions, ReadIndexOptions, TensorIndex } from './weights.ts';
export { parseModelConfig, ModelConfigError } from './config.ts';
export { urlSource, fileSource, ModelSourceError } from './source.ts';
export { modelSource, ggufSource, readGguf, isGgufLocation, GgufError } from './gguf.ts';
export type { GgufModel, GgufTensorInfo } from './gguf.ts';
export type { ModelSource, FileStat, UrlSourceOptions } from './source.ts';
export { createTokenizer, loadTokenizer, TokenizerError } from './tokenizer.ts';
export type { TextTokenizer, StreamDecoder } from './tokenizer.ts';
export { clearWeightCache } from './cache.ts';
export type { TensorCache, WeightCacheChoice } from './cache.ts';
export { SafetensorsError } from './safetensors.ts';
export type { TensorInfo } from './safetensors.ts';
