import { describe, expect, it } from 'vitest';
import { parseModelConfig, ModelConfigError } from '../src/model/config.ts';
import { ModelFormatError } from '../src/common/errors.ts';

const llama = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 2048,
  intermediate_size: 8192,
  num_hidden_layers: 16,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  vocab_size: 128256,
  rope_theta: 500000.0,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: true,
  max_position_embeddings: 131072,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  rope_scaling: null,
  hidden_act: 'silu',
};

describe('parseModelConfig', () => {
  it('parses a Llama config with GQA and an eos list', () => {
    const { spec } = parseModelConfig(llama);
    expect(spec).toEqual({
      architecture: 'LlamaForCausalLM',
      hiddenSize: 2048,
      intermediateSize: 8192,
      numLayers: 16,
      numHeads: 32,
      numKvHeads: 8,
      headDim: 64,
      vocabSize: 128256,
      ropeTheta: 500000,
      rmsNormEps: 1e-5,
      tieWordEmbeddings: true,
      attentionBias: false,
      maxPositions: 131072,
      bosTokenId: 128000,
      eosTokenIds: [128001, 128008, 128009],
    });
  });

  it('parses SmolLM (a Llama) with defaults: kv heads = heads, head_dim = hidden/heads, theta 10000', () => {
    const smol = { architectures: ['LlamaForCausalLM'], hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30, num_attention_heads: 9, vocab_size: 49152, eos_token_id: 0, bos_token_id: 0, tie_word_embeddings: true };
    const { spec } = parseModelConfig(smol);
    expect(spec.numKvHeads).toBe(9);
    expect(spec.headDim).toBe(64);
    expect(spec.ropeTheta).toBe(10000);
    expect(spec.eosTokenIds).toEqual([0]);
    expect(spec.maxPositions).toBe(2048);
  });

  it('parses Qwen2 with attention biases and merges eos ids from generation_config', () => {
    const qwen = { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, vocab_size: 151936, rope_theta: 1000000.0, rms_norm_eps: 1e-6, tie_word_embeddings: true, max_position_embeddings: 32768, sliding_window: 32768, use_sliding_window: false, bos_token_id: 151643, eos_token_id: 151643 };
    const { spec } = parseModelConfig(qwen, { bos_token_id: 151643, eos_token_id: [151645, 151643] });
    expect(spec.architecture).toBe('Qwen2ForCausalLM');
    expect(spec.attentionBias).toBe(true);
    expect(spec.headDim).toBe(64);
    expect(spec.numKvHeads).toBe(2);
    expect(spec.eosTokenIds).toEqual([151643, 151645]);
    expect(spec.maxPositions).toBe(32768);
  });

  it('parses Mistral and caps the context at its sliding window', () => {
    const mistral = { architectures: ['MistralForCausalLM'], hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 32000, max_position_embeddings: 32768, sliding_window: 4096, rope_theta: 10000.0, tie_word_embeddings: false };
    const { spec, warnings } = parseModelConfig(mistral);
    expect(spec.architecture).toBe('MistralForCausalLM');
    expect(spec.maxPositions).toBe(4096);
    expect(spec.tieWordEmbeddings).toBe(false);
    expect(warnings.join()).toMatch(/sliding_window 4096/);
  });

  it('takes an explicit head_dim that differs from hidden/heads', () => {
    const { spec } = parseModelConfig({ ...llama, head_dim: 128 });
    expect(spec.headDim).toBe(128);
  });

  it('falls back to model_type when architectures is missing', () => {
    const { architectures: _, ...rest } = llama;
    expect(parseModelConfig({ ...rest, model_type: 'mistral' }).spec.architecture).toBe('MistralForCausalLM');
  });

  it('refuses other architectures, naming them', () => {
    for (const arch of ['GPT2LMHeadModel', 'PhiForCausalLM', 'Gemma2ForCausalLM', 'MixtralForCausalLM']) {
      expect(() => parseModelConfig({ ...llama, architectures: [arch] })).toThrow(new RegExp(`unsupported architecture ${arch}`));
    }
    const { architectures: _, ...rest } = llama;
    expect(() => parseModelConfig({ ...rest, model_type: 'gpt_neox' })).toThrow(/unsupported architecture model_type "gpt_neox"/);
  });

  it('refuses rope_scaling it does not implement, accepts null and "default"', () => {
    expect(() => parseModelConfig({ ...llama, rope_scaling: { rope_type: 'llama3', factor: 32 } })).toThrow(/unsupported rope_scaling "llama3"/);
    expect(() => parseModelConfig({ ...llama, rope_scaling: { type: 'linear', factor: 2 } })).toThrow(/unsupported rope_scaling "linear"/);
    expect(() => parseModelConfig({ ...llama, rope_scaling: { type: 'yarn', factor: 4 } })).toThrow(ModelConfigError);
    expect(() => parseModelConfig({ ...llama, rope_scaling: { type: 'yarn', factor: 4 } })).toThrow(ModelFormatError);
    expect(parseModelConfig({ ...llama, rope_scaling: null }).spec.ropeTheta).toBe(500000);
    expect(parseModelConfig({ ...llama, rope_scaling: { rope_type: 'default' } }).spec.ropeTheta).toBe(500000);
  });

  it('rejects broken numbers with the field name', () => {
    expect(() => parseModelConfig({ ...llama, hidden_size: undefined })).toThrow(/missing "hidden_size"/);
    expect(() => parseModelConfig({ ...llama, num_attention_heads: 0 })).toThrow(/num_attention_heads/);
    expect(() => parseModelConfig({ ...llama, num_key_value_heads: 5 })).toThrow(/not a multiple of num_key_value_heads 5/);
    expect(() => parseModelConfig({ ...llama, hidden_act: 'gelu' })).toThrow(/hidden_act "gelu"/);
    expect(() => parseModelConfig({ ...llama, eos_token_id: 'x' })).toThrow(/eos_token_id/);
    expect(() => parseModelConfig([1, 2])).toThrow(/JSON object/);
    expect(() => parseModelConfig({ ...llama, hidden_size: undefined })).toThrow(ModelFormatError);
  });

  it('defaults tie_word_embeddings to false like LlamaConfig', () => {
    const { tie_word_embeddings: _, ...rest } = llama;
    expect(parseModelConfig(rest).spec.tieWordEmbeddings).toBe(false);
  });
});
