// GGUF loading against files written from the GGUF spec by tools/gguf (numpy, never this runtime):
// block parsers vs numpy's dequantizers, the header/index, tiny fixture models loaded from GGUF vs
// the same models from safetensors (llama.cpp's q/k permutation undone), and clear refusals.
import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel, loadStageTensors, loadTokenizer } from '../src/model/index.ts';
import { directorySource } from '../src/model/source-node.ts';
import { ggufSource, isGgufLocation, readGguf, GgufError } from '../src/model/gguf.ts';
import { ggmlToF32, unpermuteRows, type GgmlType } from '../src/model/ggml-blocks.ts';
import { fromGgmlBlocks, dequantizeMatrix } from '../src/model/quant.ts';
import { tensorF32 } from '../src/model/weights.ts';
import { ModelFormatError } from '../src/common/errors.ts';
import type { HostTensor, ModelSpec } from '../src/model/types.ts';
import { fileSource, type ModelSource } from '../src/model/source.ts';
import type { TensorCache } from '../src/model/cache.ts';
import type { TensorInfo } from '../src/model/safetensors.ts';
import { ReferenceModel } from './support/reference-model.ts';

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gguf-fixtures-'));
  // Debian's python3 with numpy (tools/fixtures/README.md); the files are written from the spec.
  execFileSync('/usr/bin/python3', ['tools/gguf/make_gguf_fixtures.py', '--out', dir], { stdio: 'pipe', timeout: 120_000 });
}, 150_000);

const gguf = (file: string) => ggufSource(directorySource(dir), file);
const all = (spec: ModelSpec) => ({ layers: { start: 0, end: spec.numLayers }, embed: true, head: true });

interface BlockRef {
  name: string;
  type: GgmlType;
  shape: [number, number];
  values: string;
}

describe('GGML block parsers vs numpy (ggml-quants.c dequantize_row_*)', () => {
  it('every type, odd row counts: bit-identical values; header and index as written', async () => {
    const refs = JSON.parse(readFileSync(join(dir, 'blocks.json'), 'utf8')) as BlockRef[];
    const source = directorySource(dir);
    const g = await readGguf(source, 'blocks.gguf');
    expect(g.arch).toBe('llama');
    expect(g.metadata.get('general.architecture')).toBe('llama');
    expect(g.tensors.size).toBe(refs.length);
    const seen = new Set<string>();
    for (const r of refs) {
      const hf = r.name.replace(/^blk\.(\d+)\.ffn_(\w+)\.weight$/, 'model.layers.$1.mlp.$2_proj.weight');
      const t = g.tensors.get(hf);
      expect(t, hf).toBeDefined();
      if (!t) continue;
      expect([t.ggml, t.shape, t.permutedHeads]).toEqual([r.type, r.shape, null]);
      const raw = await source.readRange('blocks.gguf', t.start, t.end);
      const got = ggmlToF32(raw, t.ggml, r.shape[0] * r.shape[1], hf);
      const want = new Float32Array(new Uint8Array(Buffer.from(r.values, 'base64')).buffer);
      expect(new Uint32Array(got.buffer), `${r.name} (${r.type})`).toEqual(new Uint32Array(want.buffer));
      if (r.type === 'Q8_0' || r.type === 'Q4_0') {
        // The GPU layout keeps GGML's blocks: dequantizing it gives the same values.
        const fmt = r.type === 'Q8_0' ? 'q8_0' : 'q4_0';
        expect(dequantizeMatrix(fromGgmlBlocks(raw, r.shape, fmt), r.shape, fmt)).toEqual(want);
      }
      seen.add(r.type);
    }
    expect([...seen].sort()).toEqual(['BF16', 'F16', 'F32', 'Q4_0', 'Q4_K', 'Q6_K', 'Q8_0']);
  });

  it('unpermuteRows inverts llama.cpp\'s permute (rows [h, 2, d/2] -> [h, d/2, 2])', () => {
    // 2 heads of 4 rows, one byte per row: HF rows 0..7; GGUF order per head: 0 2 1 3.
    const permuted = Uint8Array.from([0, 2, 1, 3, 4, 6, 5, 7]);
    expect([...unpermuteRows(permuted, 2, 1)]).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(() => unpermuteRows(permuted, 3, 1)).toThrow(ModelFormatError);
  });
});

describe('tiny fixture models: GGUF == safetensors', () => {
  const exact: [string, string][] = [['tiny-llama', 'f32'], ['tiny-llama', 'f16'], ['tiny-qwen2', 'f16'], ['tiny-bf16', 'bf16']];
  for (const [name, type] of exact) {
    it(`${name} as ${type.toUpperCase()}: same spec, every tensor bit-identical (q/k rows un-permuted)`, async () => {
      const st = directorySource(`public/fixtures/${name}`);
      const ref = await loadModel(st);
      const model = await loadModel(gguf(`${name}-${type}.gguf`));
      // GGUF stores rms_norm_eps as f32 (what the kernels use anyway).
      expect(model.spec).toEqual({ ...ref.spec, rmsNormEps: Math.fround(ref.spec.rmsNormEps) });
      expect(model.tokenizer).toBeNull();
      // F16 files hold F16 of F32 weights: compare with the safetensors weights rounded to f16.
      const format = type === 'f16' ? 'f16' : 'f32';
      const want = await loadStageTensors(st, ref.spec, all(ref.spec), { format });
      const got = await loadStageTensors(model.source, model.spec, all(model.spec), { format: 'auto', index: model.tensorIndex });
      expect([...got.keys()]).toEqual([...want.keys()]);
      for (const [n, t] of want) {
        const g = got.get(n) as HostTensor;
        expect([g.format, g.shape], n).toEqual([t.format, t.shape]);
        expect(g.data, n).toEqual(t.data);
      }
    });
  }

  it('a picked .gguf file (Blob) loads like a URL', async () => {
    const bytes = readFileSync(join(dir, 'tiny-qwen2-f16.gguf'));
    const model = await loadModel(ggufSource(fileSource({ 'tiny-qwen2-f16.gguf': new Blob([bytes]) }), 'tiny-qwen2-f16.gguf'));
    const ref = await loadModel(directorySource('public/fixtures/tiny-qwen2'));
    expect(model.spec).toEqual({ ...ref.spec, rmsNormEps: Math.fround(ref.spec.rmsNormEps) });
    const t = await loadStageTensors(model.source, model.spec, all(model.spec), { index: model.tensorIndex });
    expect(t.get('model.layers.1.self_attn.k_proj.bias')?.shape).toEqual([ref.spec.numKvHeads * ref.spec.headDim]);
  });

  it('tiny-llama from GGUF F32 reproduces the PyTorch reference logits (greedy tokens, 1e-3)', async () => {
    const model = await loadModel(gguf('tiny-llama-f32.gguf'));
    const tensors = await loadStageTensors(model.source, model.spec, all(model.spec));
    const ref = JSON.parse(readFileSync('public/fixtures/tiny-llama/reference.json', 'utf8')) as { promptIds: number[]; greedyTokens: number[]; logits: number[][] };
    const m = new ReferenceModel(model.spec, tensors);
    let logits: Float32Array = new Float32Array(0);
    for (const id of ref.promptIds) logits = m.step(id).logits;
    for (let s = 0; s < ref.greedyTokens.length; s++) {
      let worst = 0;
      for (let i = 0; i < logits.length; i++) worst = Math.max(worst, Math.abs(logits[i] - ref.logits[s][i]));
      expect(worst).toBeLessThan(1e-3);
      logits = m.step(ref.greedyTokens[s]).logits;
    }
  });

  for (const quant of ['q8_0', 'q4_0'] as const) {
    it(`tiny-bf16 as ${quant.toUpperCase()}: projections load as stored, the same blocks as --quant ${quant} on the safetensors`, async () => {
      const st = directorySource('public/fixtures/tiny-bf16');
      const ref = await loadModel(st);
      const model = await loadModel(gguf(`tiny-bf16-${quant}.gguf`));
      const want = await loadStageTensors(st, ref.spec, all(ref.spec), { quant, format: 'f32' });
      const got = await loadStageTensors(model.source, model.spec, all(model.spec), { format: 'f32' });
      let blocks = 0;
      for (const [n, t] of want) {
        const g = got.get(n) as HostTensor;
        expect(g.format, n).toBe(t.format);
        if (t.format === quant) {
          expect(g.data, n).toEqual(t.data);
          blocks++;
        } else {
          // The embedding / head is F16 in the file (the writer keeps them F16), F32 here.
          const a = tensorF32(g);
          const b = tensorF32(t);
          let worst = 0;
          for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
          expect(worst, n).toBeLessThan(1e-3);
        }
      }
      expect(blocks).toBe(7 * ref.spec.numLayers);
      // --quant of the other format requantizes, and says so.
      const other = quant === 'q8_0' ? 'q4_0' : 'q8_0';
      const re = await loadStageTensors(model.source, model.spec, { layers: { start: 0, end: 1 }, embed: false, head: false }, { quant: other });
      expect(re.get('model.layers.0.mlp.up_proj.weight')?.format).toBe(other);
      expect(model.warnings.some((w) => w.includes('quantized again'))).toBe(true);
    });
  }
});

describe('Range reads', () => {
  it('a stage reads only its own layers\' tensors from the GGUF file (after the header)', async () => {
    const inner = directorySource(dir);
    const reads: [number, number][] = [];
    const counting: ModelSource = { ...inner, readRange: (f, start, end, signal) => (reads.push([start, end]), inner.readRange(f, start, end, signal)) };
    const model = await loadModel(ggufSource(counting, 'tiny-llama-f16.gguf'));
    reads.length = 0;
    const role = { layers: { start: 1, end: 2 }, embed: false, head: false };
    const got = await loadStageTensors(model.source, model.spec, role, { index: model.tensorIndex, cache: false });
    const mine = [...got.keys()].map((n) => model.tensorIndex.tensors.get(n) as TensorInfo);
    expect(mine.every((t) => t.name.startsWith('model.layers.1.'))).toBe(true);
    const inside = (r: [number, number]): boolean => mine.some((t) => r[0] >= t.start && r[1] <= t.end) || r[1] - r[0] === 0;
    // Adjacent tensors may share one read; every byte read belongs to the stage's tensors.
    const covered = (r: [number, number]): boolean => inside(r) || mine.filter((t) => t.start >= r[0] && t.end <= r[1]).reduce((a, t) => a + t.end - t.start, 0) === r[1] - r[0];
    expect(reads.every(covered), JSON.stringify(reads)).toBe(true);
    expect(reads.reduce((a, r) => a + r[1] - r[0], 0)).toBe(mine.reduce((a, t) => a + t.end - t.start, 0));
  });
});

describe('header cache', () => {
  it('a second load of the same file reads no byte of it: the header comes from the weight cache', async () => {
    const entries = new Map<string, Uint8Array>();
    const cache: TensorCache = {
      has: async (keys) => keys.map((k) => entries.has(k)),
      getMany: async (want) => want.map(({ key }) => (entries.has(key) ? new Uint8Array(entries.get(key) as Uint8Array) : null)),
      putMany: async (put) => (put.forEach(({ key, data }) => entries.set(key, data.slice())), true),
    };
    const inner = directorySource(dir);
    let bytesRead = 0;
    const counting: ModelSource = { ...inner, cacheKey: (f) => `test://${f}`, readRange: (f, a, b, signal) => ((bytesRead += b - a), inner.readRange(f, a, b, signal)) };
    const first = await loadModel(ggufSource(counting, 'tiny-llama-f16.gguf', cache));
    expect(bytesRead).toBeGreaterThan(0);
    const [key] = [...entries.keys()];
    expect(key).toMatch(/^test:\/\/tiny-llama-f16\.gguf\|\d+\|.*\|__gguf_header__$/);
    const headerBytes = (entries.get(key) as Uint8Array).byteLength;
    expect(headerBytes).toBe(Math.min(...[...first.tensorIndex.tensors.values()].map((t) => t.start)));
    bytesRead = 0;
    const again = await loadModel(ggufSource(counting, 'tiny-llama-f16.gguf', cache));
    expect(bytesRead).toBe(0);
    expect(again.spec).toEqual(first.spec);
    expect([...again.tensorIndex.tensors.values()]).toEqual([...first.tensorIndex.tensors.values()]);
    // A damaged entry is a miss: the header is read again.
    entries.set(key, new Uint8Array(headerBytes));
    const third = await loadModel(ggufSource(counting, 'tiny-llama-f16.gguf', cache));
    expect(bytesRead).toBeGreaterThan(0);
    expect(third.spec).toEqual(first.spec);
  });
});

describe('tokenizer and chat template from tokenizer.ggml.*', () => {
  it('the demo-target vocabulary as GGUF "gpt2" encodes and decodes as its tokenizer.json does', async () => {
    const want = await loadTokenizer(directorySource('public/models/demo-target'));
    const source = gguf('demo-tokenizer.gguf');
    const got = await loadTokenizer(source);
    expect(got).not.toBeNull();
    if (!got || !want) return;
    const texts = ['The quick brown fox jumps over the lazy dog.', "  It's 12:30 -- café, naïve ☃!\n\nNew   line<|endoftext|>tail", 'a'.repeat(40)];
    for (const text of texts) {
      const ids = want.encode(text);
      expect(got.encode(text), text).toEqual(ids);
      expect(got.decode(ids), text).toBe(want.decode(ids));
    }
    expect([got.eosTokenId, got.bosTokenId]).toEqual([want.eosTokenId, want.bosTokenId]);
    const config = (await source.readOptionalJson('tokenizer_config.json')) as { chat_template?: string };
    expect(config.chat_template).toContain('{% for m in messages %}');
  });
});

describe('GGUF errors', () => {
  it('refuses an unsupported architecture, tensor type, RoPE scaling, MoE, a truncated file and a non-GGUF file', async () => {
    const src = directorySource(dir);
    await expect(readGguf(src, 'bad-arch.gguf')).rejects.toThrow(/architecture "gpt2" is not supported/);
    await expect(readGguf(src, 'bad-type.gguf')).rejects.toThrow(/GGML type 6, which this runtime does not read/);
    await expect(readGguf(src, 'bad-rope.gguf')).rejects.toThrow(/rope_freqs\.weight, Llama 3\.1-style scaling\) are not supported/);
    await expect(readGguf(src, 'bad-moe.gguf')).rejects.toThrow(/mixture-of-experts/);
    await expect(readGguf(src, 'truncated.gguf')).rejects.toThrow(/past the end/);
    await expect(readGguf(src, 'blocks.json')).rejects.toBeInstanceOf(GgufError);
    await expect(loadModel(gguf('bad-arch.gguf'))).rejects.toBeInstanceOf(ModelFormatError);
  });

  it('isGgufLocation names .gguf paths and URLs only', () => {
    expect(isGgufLocation('https://h/x/model-Q4_0.gguf?download=1')).toBe(true);
    expect(isGgufLocation('/models/demo-target/')).toBe(false);
  });
});
