import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { loadModel, loadStageTensors, tensorNamesForRole } from '../src/model/index.ts';
import { directorySource } from '../src/model/source-node.ts';
import { fileSource, type ModelSource } from '../src/model/source.ts';
import { buildSafetensors, type BuildTensor, type SafetensorsDtype } from '../src/model/safetensors.ts';
import { ReferenceModel } from './support/reference-model.ts';
import { f32ToBf16Bits, f32ToF16Bits } from '../src/common/numerics.ts';
import { expectedTensors, planReads } from '../src/model/weights.ts';
import { parseModelConfig } from '../src/model/config.ts';
import type { HostTensor } from '../src/model/types.ts';
import { BadRequestError, ModelFormatError, SpecpipeError } from '../src/common/errors.ts';

interface Reference {
  promptIds: number[];
  greedyTokens: number[];
  logits: number[][];
  promptHidden: number[][];
  minTop1Top2Gap: number;
}

const FIXTURES = ['tiny-llama', 'tiny-qwen2', 'tiny-bf16'];
const dir = (name: string): string => `public/fixtures/${name}`;
const argmax = (a: ArrayLike<number>): number => {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
};
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

describe('fixtures load and reproduce the PyTorch reference', () => {
  for (const name of FIXTURES) {
    it(`${name}: every tensor, plain-JS forward matches reference.json`, async () => {
      const source = directorySource(dir(name));
      const model = await loadModel(source);
      expect(model.tokenizer).toBeNull();
      const { spec } = model;
      const progress: [number, number][] = [];
      const tensors = await loadStageTensors(source, spec, { layers: { start: 0, end: spec.numLayers }, embed: true, head: true }, { onProgress: (d, t) => progress.push([d, t]) });
      expect([...tensors.keys()].sort()).toEqual([...expectedTensors(spec).keys()].sort());
      const total = progress[0][1];
      expect(progress.at(-1)).toEqual([total, total]);
      const ref = JSON.parse(readFileSync(`${dir(name)}/reference.json`, 'utf8')) as Reference;
      const m = new ReferenceModel(spec, tensors);
      let out: { logits: Float32Array; hidden: Float32Array[] } = { logits: new Float32Array(0), hidden: [] };
      for (const [i, id] of ref.promptIds.entries()) {
        out = m.step(id);
        if (i === ref.promptIds.length - 1) {
          // Hidden state of the last prompt position after embedding and after each layer.
          for (let l = 0; l <= spec.numLayers; l++) {
            const want = ref.promptHidden[l].slice(i * spec.hiddenSize, (i + 1) * spec.hiddenSize);
            expect(maxAbsDiff(out.hidden[l], want)).toBeLessThan(1e-3);
          }
        }
      }
      let worst = 0;
      for (let s = 0; s < ref.greedyTokens.length; s++) {
        worst = Math.max(worst, maxAbsDiff(out.logits, ref.logits[s]));
        expect(argmax(out.logits)).toBe(ref.greedyTokens[s]);
        out = m.step(ref.greedyTokens[s]);
      }
      expect(worst).toBeLessThan(ref.minTop1Top2Gap / 4);
      expect(worst).toBeLessThan(2e-3);
    });
  }

  it('tiny-qwen2 (F16) loads as f16 in auto, tiny-bf16 (BF16) and tiny-llama (F32) as f32', async () => {
    for (const [name, format] of [['tiny-qwen2', 'f16'], ['tiny-bf16', 'f32'], ['tiny-llama', 'f32']] as const) {
      const source = directorySource(dir(name));
      const { spec } = await loadModel(source);
      const t = await loadStageTensors(source, spec, { layers: { start: 0, end: 1 }, embed: false, head: false });
      const q = t.get('model.layers.0.self_attn.q_proj.weight') as HostTensor;
      expect(q.format).toBe(format);
      expect(q.data).toBeInstanceOf(format === 'f16' ? Uint16Array : Float32Array);
      expect(q.shape).toEqual([spec.numHeads * spec.headDim, spec.hiddenSize]);
    }
  });

  it('tiny-bf16 converted to f16 stays close to the f32 load', async () => {
    const source = directorySource(dir('tiny-bf16'));
    const { spec } = await loadModel(source);
    const role = { layers: { start: 2, end: 3 }, embed: false, head: true };
    const a = await loadStageTensors(source, spec, role, { format: 'f32' });
    const b = await loadStageTensors(source, spec, role, { format: 'f16' });
    const w32 = a.get('lm_head.weight')!.data as Float32Array;
    const h = b.get('lm_head.weight')!.data as Uint16Array;
    expect(h.length).toBe(w32.length);
    for (let i = 0; i < 50; i++) expect(h[i]).toBe(f32ToF16Bits(w32[i]));
  });
});

describe('stage roles', () => {
  it('names exactly the tensors of the layer range plus embed / head', async () => {
    const { spec } = await loadModel(directorySource(dir('tiny-qwen2')));
    const mid = tensorNamesForRole(spec, { layers: { start: 1, end: 2 }, embed: false, head: false });
    expect(mid.every((n) => n.startsWith('model.layers.1.'))).toBe(true);
    expect(mid).toContain('model.layers.1.self_attn.k_proj.bias');
    expect(mid.length).toBe(12);
    // Tied head: the last stage needs the embedding too.
    const last = tensorNamesForRole(spec, { layers: { start: 2, end: 2 }, embed: false, head: true });
    expect(last).toEqual(['model.embed_tokens.weight', 'model.norm.weight']);
    expect(() => tensorNamesForRole(spec, { layers: { start: 1, end: 5 }, embed: false, head: false })).toThrow(/not within the model's 2 layers/);
    expect(() => tensorNamesForRole(spec, { layers: { start: 1, end: 5 }, embed: false, head: false })).toThrow(BadRequestError);
  });

  it('merges only byte-adjacent tensors into one read', async () => {
    const model = await loadModel(directorySource(dir('tiny-llama')));
    const names = tensorNamesForRole(model.spec, { layers: { start: 1, end: 2 }, embed: false, head: false });
    const runs = planReads(names.map((n) => model.tensorIndex.tensors.get(n)!));
    expect(runs.length).toBe(1); // one layer's tensors are contiguous in a name-sorted file
    const bytes = names.reduce((s, n) => s + model.tensorIndex.tensors.get(n)!.end - model.tensorIndex.tensors.get(n)!.start, 0);
    expect(runs[0].end - runs[0].start).toBe(bytes);
  });
});

// ------------------------------------------------------------------ broken models, in memory

const smallConfig = {
  architectures: ['LlamaForCausalLM'], hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2,
  num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 10, tie_word_embeddings: true,
};

function encode(values: Float32Array, dtype: SafetensorsDtype): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(values.buffer.slice(0));
  const bits = Uint16Array.from(values, (v) => (dtype === 'F16' ? f32ToF16Bits(v) : f32ToBf16Bits(v)));
  return new Uint8Array(bits.buffer);
}

function smallModel(edit: (t: BuildTensor[]) => void = () => {}, dtype: SafetensorsDtype = 'F32', config: object = smallConfig): ModelSource {
  const spec = parseModelConfig(config).spec;
  let seed = 1;
  const rand = (): number => ((seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5) * 0.2;
  const tensors: BuildTensor[] = [...expectedTensors(spec)].map(([name, shape]) => {
    const values = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, rand);
    return { name, shape, dtype, data: encode(values, dtype) };
  });
  edit(tensors);
  return fileSource({
    'config.json': new Blob([JSON.stringify(config)]),
    'model.safetensors': new Blob([buildSafetensors(tensors)]),
  });
}

const all = { layers: { start: 0, end: 2 }, embed: true, head: true };

describe('broken checkpoints fail with a clear error', () => {
  it('loads the unbroken model', async () => {
    const source = smallModel();
    const { spec } = await loadModel(source);
    const t = await loadStageTensors(source, spec, all);
    expect(t.size).toBe(expectedTensors(spec).size);
  });

  it('a missing tensor', async () => {
    const source = smallModel((ts) => ts.splice(ts.findIndex((t) => t.name === 'model.layers.1.mlp.up_proj.weight'), 1));
    await expect(loadModel(source)).rejects.toThrow('tensor "model.layers.1.mlp.up_proj.weight" is missing from the checkpoint');
    await expect(loadModel(source)).rejects.toThrow(ModelFormatError);
  });

  it('an untied config without lm_head', async () => {
    const tied = await (await fetchAll(smallModel())).arrayBuffer(); // weights of the tied model: no lm_head
    const noHead = fileSource({
      'config.json': new Blob([JSON.stringify({ ...smallConfig, tie_word_embeddings: false })]),
      'model.safetensors': new Blob([tied]),
    });
    await expect(loadModel(noHead)).rejects.toThrow(/"lm_head.weight" is missing .*tie_word_embeddings is false/);
  });

  it('a shape that disagrees with config.json', async () => {
    const source = smallModel((ts) => {
      const k = ts.find((t) => t.name === 'model.layers.0.self_attn.k_proj.weight')!;
      k.shape = [8, 8];
      k.data = new Uint8Array(8 * 8 * 4);
    });
    await expect(loadModel(source)).rejects.toThrow('model.safetensors: tensor "model.layers.0.self_attn.k_proj.weight" has shape [8, 8], expected [4, 8] from config.json');
  });

  it('an unsupported dtype', async () => {
    const source = smallModel((ts) => {
      const w = ts.find((t) => t.name === 'model.layers.0.mlp.down_proj.weight')!;
      w.dtype = 'I8';
      w.data = new Uint8Array(8 * 12);
    });
    await expect(loadModel(source)).rejects.toThrow('model.safetensors: tensor "model.layers.0.mlp.down_proj.weight" has dtype I8; supported: F32, F16, BF16');
    await expect(loadModel(source)).rejects.toThrow(ModelFormatError);
    const f64 = smallModel((ts) => {
      const w = ts.find((t) => t.name === 'model.norm.weight')!;
      w.dtype = 'F64';
      w.data = new Uint8Array(8 * 8);
    });
    await expect(loadModel(f64)).rejects.toThrow(/"model.norm.weight" has dtype F64/);
  });

  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    it(`NaN and Inf weights (${dtype})`, async () => {
      const poison = (value: number) => (ts: BuildTensor[]): void => {
        const w = ts.find((t) => t.name === 'model.layers.1.self_attn.o_proj.weight')!;
        const bad = encode(new Float32Array([value]), dtype);
        w.data.set(bad, bad.byteLength * 11); // element 11 = [1, 3] of [8, 8]
      };
      for (const [value, what] of [[NaN, 'NaN'], [Infinity, 'Inf']] as const) {
        const source = smallModel(poison(value), dtype);
        const { spec } = await loadModel(source);
        for (const format of ['f32', 'f16'] as const) {
          await expect(loadStageTensors(source, spec, all, { format })).rejects.toThrow(`model.safetensors: tensor "model.layers.1.self_attn.o_proj.weight" has ${what} at element 11 (index [1, 3])`);
          await expect(loadStageTensors(source, spec, all, { format })).rejects.toThrow(ModelFormatError);
        }
        // A stage that does not hold layer 1 never sees it.
        await expect(loadStageTensors(source, spec, { layers: { start: 0, end: 1 }, embed: true, head: false })).resolves.toBeDefined();
      }
    });
  }

  it('f32 values that overflow f16 when asked for f16', async () => {
    const source = smallModel((ts) => {
      const w = ts.find((t) => t.name === 'model.norm.weight')!;
      w.data.set(new Uint8Array(new Float32Array([1e5]).buffer), 4 * 2);
    });
    const { spec } = await loadModel(source);
    await expect(loadStageTensors(source, spec, all, { format: 'f16' })).rejects.toThrow(/"model.norm.weight" element 2 = 100000 does not fit in f16/);
    await expect(loadStageTensors(source, spec, all, { format: 'f32' })).resolves.toBeDefined();
  });

  it('a truncated weight file', async () => {
    const full = await (await fetchAll(smallModel())).arrayBuffer();
    const source = fileSource({ 'config.json': new Blob([JSON.stringify(smallConfig)]), 'model.safetensors': new Blob([full.slice(0, full.byteLength - 10)]) });
    await expect(loadModel(source)).rejects.toThrow(/model\.safetensors: tensor ".*": data_offsets .* run past the end of the data .*truncated/);
    const e = await loadModel(source).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ModelFormatError);
    expect((e as SpecpipeError).code).toBe('model-format');
  });

  it('a shard index pointing at a tensor the shard lacks', async () => {
    const shard = await (await fetchAll(smallModel())).arrayBuffer();
    const spec = parseModelConfig(smallConfig).spec;
    const weightMap: Record<string, string> = {};
    for (const n of expectedTensors(spec).keys()) weightMap[n] = 'a.safetensors';
    weightMap['model.layers.0.mlp.gate_proj.weight'] = 'b.safetensors';
    const source = fileSource({
      'config.json': new Blob([JSON.stringify(smallConfig)]),
      'model.safetensors.index.json': new Blob([JSON.stringify({ weight_map: weightMap })]),
      'a.safetensors': new Blob([shard]),
      'b.safetensors': new Blob([buildSafetensors([])]),
    });
    await expect(loadModel(source)).rejects.toThrow('model.safetensors.index.json maps tensor "model.layers.0.mlp.gate_proj.weight" to b.safetensors, but b.safetensors has no such tensor');
  });

  it('an unsupported architecture in config.json', async () => {
    const gpt2 = fileSource({ 'config.json': new Blob([JSON.stringify({ ...smallConfig, architectures: ['GPT2LMHeadModel'] })]) });
    await expect(loadModel(gpt2)).rejects.toThrow(/unsupported architecture GPT2LMHeadModel/);
    await expect(loadModel(gpt2)).rejects.toThrow(ModelFormatError);
  });

  it('an aborted load', async () => {
    const source = smallModel();
    const { spec } = await loadModel(source);
    const ac = new AbortController();
    ac.abort();
    await expect(loadStageTensors(source, spec, all, { signal: ac.signal })).rejects.toThrow();
  });
});

/** The model.safetensors of a small in-memory model, as a Blob. */
async function fetchAll(source: ModelSource): Promise<Blob> {
  const { size } = await source.stat('model.safetensors');
  return new Blob([await source.readRange('model.safetensors', 0, size)]);
}
