// Deterministic random models and data for kernel/stage tests and the benchmark.
import type { DenseFormat, HostTensor, ModelSpec, QuantFormat, WeightFormat } from '../model/types.ts';
import { isQuantFormat, quantizeTensor } from '../model/quant.ts';
import { f32ToF16Bits, seededRandom } from '../common/numerics.ts';
import { ModelFormatError } from '../common/errors.ts';

export function randomArray(n: number, rand: () => number, scale = 1, offset = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = offset + (rand() * 2 - 1) * scale;
  return a;
}

/** A HostTensor in the given format (f16: values rounded to half precision; q8_0 / q4_0: GGML blocks). */
export function hostTensor(name: string, shape: number[], values: Float32Array, format: WeightFormat): HostTensor {
  if (format === 'f32') return { name, shape, format, data: values };
  if (isQuantFormat(format)) return quantizeTensor(values, { name, shape }, format);
  const h = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) h[i] = f32ToF16Bits(values[i]);
  return { name, shape, format, data: h };
}

export function tinyLlamaSpec(over: Partial<ModelSpec> = {}): ModelSpec {
  return {
    architecture: 'LlamaForCausalLM',
    hiddenSize: 64,
    intermediateSize: 172,
    numLayers: 4,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    vocabSize: 301,
    ropeTheta: 10000,
    rmsNormEps: 1e-5,
    tieWordEmbeddings: false,
    attentionBias: false,
    maxPositions: 512,
    bosTokenId: 1,
    eosTokenIds: [2],
    ...over,
  };
}

/**
 * Random weights with Hugging Face names. Matrices ~U(-1,1)/sqrt(in), norms ~1. With `quant`, the
 * projection matrices are GGML blocks of the same random values (embedding and head stay `format`).
 */
export function randomLlamaTensors(spec: ModelSpec, seed: number, format: DenseFormat, quant?: QuantFormat): Map<string, HostTensor> {
  const rand = seededRandom(seed);
  const m = new Map<string, HostTensor>();
  const H = spec.hiddenSize;
  const qDim = spec.numHeads * spec.headDim;
  const kvDim = spec.numKvHeads * spec.headDim;
  const I = spec.intermediateSize;
  const mat = (name: string, out: number, inp: number, scale = 1 / Math.sqrt(inp), f: WeightFormat = quant ?? format) => m.set(name, hostTensor(name, [out, inp], randomArray(out * inp, rand, scale), f));
  const vec = (name: string, n: number, scale: number, offset: number) => m.set(name, hostTensor(name, [n], randomArray(n, rand, scale, offset), 'f32'));
  mat('model.embed_tokens.weight', spec.vocabSize, H, 1, format);
  for (let l = 0; l < spec.numLayers; l++) {
    const p = `model.layers.${l}.`;
    vec(p + 'input_layernorm.weight', H, 0.2, 1);
    vec(p + 'post_attention_layernorm.weight', H, 0.2, 1);
    mat(p + 'self_attn.q_proj.weight', qDim, H, 2 / Math.sqrt(H));
    mat(p + 'self_attn.k_proj.weight', kvDim, H, 2 / Math.sqrt(H));
    mat(p + 'self_attn.v_proj.weight', kvDim, H);
    mat(p + 'self_attn.o_proj.weight', H, qDim);
    if (spec.attentionBias) {
      vec(p + 'self_attn.q_proj.bias', qDim, 0.5, 0);
      vec(p + 'self_attn.k_proj.bias', kvDim, 0.5, 0);
      vec(p + 'self_attn.v_proj.bias', kvDim, 0.5, 0);
    }
    mat(p + 'mlp.gate_proj.weight', I, H);
    mat(p + 'mlp.up_proj.weight', I, H);
    mat(p + 'mlp.down_proj.weight', H, I);
  }
  vec('model.norm.weight', H, 0.2, 1);
  if (!spec.tieWordEmbeddings) mat('lm_head.weight', spec.vocabSize, H, 2 / Math.sqrt(H), format);
  return m;
}

export function getter(m: Map<string, HostTensor>): (name: string) => HostTensor {
  return (name) => {
    const t = m.get(name);
    if (!t) throw new ModelFormatError(`missing tensor ${name}`);
    return t;
  };
}
