// Each CPU (WebAssembly) kernel against the plain-JS reference of tests/support/cpu-reference.ts on
// odd shapes, in every weight format; the same tolerances as the WebGPU kernel suite.
import { beforeAll, describe, expect, it } from 'vitest';
import { FORMAT_CODE, WasmKernels } from '../src/cpu/wasm-kernels.ts';
import { hostTensor, randomArray } from '../src/gpu/synthetic-model.ts';
import { f16BitsToF32, ropeTable, seededRandom } from '../src/common/numerics.ts';
import type { HostTensor, WeightFormat } from '../src/model/types.ts';
import type { RowSampling } from '../src/gpu/types.ts';
import { refAttention, refMatmulW, refRmsNorm, refRope, refSample, silu } from './support/cpu-reference.ts';

let k: WasmKernels;
beforeAll(async () => {
  k = await WasmKernels.create();
});

const putF32 = (a: Float32Array) => k.put(a);
const readF32 = (ptr: number, n: number) => k.f32(ptr, n).slice();

function maxRelErr(got: Float32Array, want: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (1e-3 + Math.abs(want[i])));
  return worst;
}

/** Runs the matmul kernel: y = x W^T (+ bias), or y0 + x W^T with accumulate. */
function runMatmul(x: Float32Array, rows: number, W: HostTensor, opts: { bias?: Float32Array; y0?: Float32Array; o0?: number; o1?: number } = {}): Float32Array {
  const [outDim, inDim] = W.shape;
  const xp = putF32(x);
  const wp = k.put(W.data);
  const bp = opts.bias ? putF32(opts.bias) : 0;
  const yp = opts.y0 ? putF32(opts.y0) : k.alloc(rows * outDim * 4);
  k.fn.matmul(xp, rows, inDim, wp, FORMAT_CODE[W.format], outDim, yp, bp, opts.y0 ? 1 : 0, opts.o0 ?? 0, opts.o1 ?? outDim);
  return readF32(yp, rows * outDim);
}

describe('CPU matmul: f32, f16, Q8_0, Q4_0 weights against the CPU reference', () => {
  const rand = seededRandom(42);
  const dense: [number, number][] = [[1, 4], [63, 12], [77, 36], [301, 160], [5, 688]];
  const quant: [number, number][] = [[1, 32], [63, 64], [77, 160], [301, 224]];
  const cases: [WeightFormat, number, number][] = [
    ...(['f32', 'f16'] as const).flatMap((f) => dense.map(([o, i]) => [f, o, i] as [WeightFormat, number, number])),
    ...(['q8_0', 'q4_0'] as const).flatMap((f) => quant.map(([o, i]) => [f, o, i] as [WeightFormat, number, number])),
  ];
  for (const [format, outDim, inDim] of cases) {
    it(`${format} [${outDim} x ${inDim}], rows 1, 3, 17; bias; residual`, () => {
      const W = hostTensor('w', [outDim, inDim], randomArray(outDim * inDim, rand, 1 / Math.sqrt(inDim)), format);
      for (const rows of [1, 3, 17]) {
        const x = randomArray(rows * inDim, rand);
        const bias = randomArray(outDim, rand, 0.5);
        const y0 = randomArray(rows * outDim, rand);
        const want = refMatmulW(x, rows, W, bias);
        expect(maxRelErr(runMatmul(x, rows, W, { bias }), want)).toBeLessThan(1e-4);
        const plain = refMatmulW(x, rows, W);
        const acc = runMatmul(x, rows, W, { y0 });
        expect(maxRelErr(acc, plain.map((v, i) => v + y0[i]))).toBeLessThan(1e-4);
      }
    });
  }

  it('a row gives bitwise the same outputs alone and in any batch; output ranges compose', () => {
    for (const format of ['f32', 'f16', 'q8_0', 'q4_0'] as const) {
      const W = hostTensor('w', [45, 96], randomArray(45 * 96, rand, 0.1), format);
      const x = randomArray(9 * 96, rand);
      const all = runMatmul(x, 9, W);
      for (const r of [0, 4, 8]) {
        const alone = runMatmul(x.slice(r * 96, (r + 1) * 96), 1, W);
        expect(Array.from(alone)).toEqual(Array.from(all.subarray(r * 45, (r + 1) * 45)));
      }
      const y0 = new Float32Array(9 * 45);
      const split = runMatmul(x, 9, W, { y0, o0: 0, o1: 20 });
      const rest = runMatmul(x, 9, W, { y0: split, o0: 20, o1: 45 });
      expect(Array.from(rest)).toEqual(Array.from(all));
    }
  });
});

describe('CPU element kernels', () => {
  const rand = seededRandom(7);

  it('embed: f32 rows copied, every finite f16 half widened exactly', () => {
    const H = 8;
    const vocab = 63488 / H;
    const halves = new Uint16Array(vocab * H);
    let n = 0;
    for (let h = 0; h < 65536 && n < halves.length; h++) if ((h & 0x7c00) !== 0x7c00) halves[n++] = h;
    const tokens = Int32Array.from({ length: vocab }, (_, i) => i);
    const out = k.alloc(vocab * H * 4);
    k.fn.embed(k.put(tokens), vocab, k.put(halves), FORMAT_CODE.f16, H, out);
    const got = readF32(out, vocab * H);
    let bad = 0;
    for (let i = 0; i < halves.length; i++) if (!Object.is(got[i], f16BitsToF32(halves[i]))) bad++;
    expect(bad).toBe(0);
    const E = randomArray(5 * 12, rand);
    const out2 = k.alloc(3 * 12 * 4);
    k.fn.embed(k.put(Int32Array.from([4, 0, 2])), 3, putF32(E), FORMAT_CODE.f32, 12, out2);
    expect(Array.from(readF32(out2, 36))).toEqual([...E.subarray(48, 60), ...E.subarray(0, 12), ...E.subarray(24, 36)]);
  });

  it('rmsnorm on odd rows and sizes', () => {
    for (const [rows, H] of [[1, 4], [3, 68], [17, 256]]) {
      const x = randomArray(rows * H, rand, 3);
      const w = randomArray(H, rand, 0.2, 1);
      const out = k.alloc(rows * H * 4);
      k.fn.rmsnorm(putF32(x), rows, H, putF32(w), 1e-5, out);
      expect(maxRelErr(readF32(out, rows * H), refRmsNorm(x, rows, H, w, 1e-5))).toBeLessThan(1e-5);
    }
  });

  it('silu(gate) * up', () => {
    const g = randomArray(301, rand, 30);
    const u = randomArray(301, rand);
    const gp = putF32(g);
    k.fn.silu_mul(gp, putF32(u), 301);
    expect(maxRelErr(readF32(gp, 301), g.map((v, i) => silu(v) * u[i]))).toBeLessThan(1e-5);
  });

  it('rope + KV write: q rotated in place, k rotated and v copied into each row slot', () => {
    const [nH, nKv, hd, rows, slots] = [6, 2, 20, 5, 11];
    const qDim = nH * hd;
    const kvDim = nKv * hd;
    const stride = qDim + 2 * kvDim;
    const table = ropeTable(10000, hd, 600);
    const qkv = randomArray(rows * stride, rand);
    const positions = Int32Array.from([0, 1, 7, 7, 599]);
    const slotIds = Int32Array.from([3, 10, 0, 4, 9]);
    const qp = putF32(qkv);
    const K = k.put(new Float32Array(slots * kvDim));
    const V = k.put(new Float32Array(slots * kvDim));
    k.fn.rope_kv(qp, rows, k.put(positions), k.put(slotIds), putF32(table), nH, nKv, hd, K, V);
    const want = qkv.slice();
    const Kw = new Float32Array(slots * kvDim);
    const Vw = new Float32Array(slots * kvDim);
    for (let r = 0; r < rows; r++) {
      refRope(want, r * stride, nH, hd, positions[r], table);
      refRope(want, r * stride + qDim, nKv, hd, positions[r], table);
      Kw.set(want.subarray(r * stride + qDim, r * stride + qDim + kvDim), slotIds[r] * kvDim);
      Vw.set(want.subarray(r * stride + qDim + kvDim, (r + 1) * stride), slotIds[r] * kvDim);
    }
    const q = readF32(qp, rows * stride);
    for (let r = 0; r < rows; r++) expect(maxRelErr(q.subarray(r * stride, r * stride + qDim), want.subarray(r * stride, r * stride + qDim))).toBeLessThan(1e-5);
    expect(maxRelErr(readF32(K, slots * kvDim), Kw)).toBeLessThan(1e-5);
    expect(Array.from(readF32(V, slots * kvDim))).toEqual(Array.from(Vw));
  });

  it('attention over per-row slot lists (committed, ancestors, self), GQA, up to 1500 slots', () => {
    for (const [nH, nKv, hd, numSlots] of [[4, 2, 16, 40], [8, 1, 36, 1500], [3, 3, 256, 9]]) {
      const qDim = nH * hd;
      const kvDim = nKv * hd;
      const stride = qDim + 2 * kvDim;
      const rows = 3;
      const qkv = randomArray(rows * stride, rand, 2);
      const K = randomArray(numSlots * kvDim, rand, 2);
      const V = randomArray(numSlots * kvDim, rand);
      const lists = [Array.from({ length: numSlots }, (_, i) => (i * 7) % numSlots), [numSlots - 1], [2, 0, 5 % numSlots]];
      const flat = Int32Array.from(lists.flat());
      const off = Int32Array.from([0, lists[0].length, lists[0].length + 1]);
      const len = Int32Array.from(lists.map((l) => l.length));
      const out = k.alloc(rows * qDim * 4);
      k.fn.attention(putF32(qkv), rows, k.put(flat), k.put(off), k.put(len), putF32(K), putF32(V), nH, nKv, hd, Math.fround(1 / Math.sqrt(hd)), k.alloc(numSlots * 4), out);
      const got = readF32(out, rows * qDim);
      for (let r = 0; r < rows; r++) {
        const keys = lists[r].map((s) => K.subarray(s * kvDim, (s + 1) * kvDim));
        const vals = lists[r].map((s) => V.subarray(s * kvDim, (s + 1) * kvDim));
        const want = refAttention(qkv.subarray(r * stride, r * stride + qDim), keys, vals, nH, nKv, hd);
        let err = 0;
        for (let i = 0; i < qDim; i++) err = Math.max(err, Math.abs(got[r * qDim + i] - want[i]));
        expect(err).toBeLessThan(1e-4);
      }
    }
  });

  it('sampling: argmax, temperature, top-k, top-p as the GPU kernel (refSample), skipping rows within rounding of a CDF boundary', () => {
    let compared = 0;
    for (const V of [2, 301, 4096, 4099]) {
      const logits = randomArray(V, rand, 6);
      if (V > 300) logits[17] = logits[200] = Math.max(...logits) + 0.5; // a tie at the top
      const lp = putF32(logits);
      const scratch = [k.alloc(V * 4), k.alloc(V * 4), k.alloc(256 * 4)] as const;
      const settings: Omit<RowSampling, 'uniform'>[] = [
        { temperature: 0, topK: 0, topP: 1 },
        { temperature: 1, topK: 0, topP: 1 },
        { temperature: 0.7, topK: 40, topP: 1 },
        { temperature: 0.8, topK: 0, topP: 0.9 },
        { temperature: 1.3, topK: 5, topP: 0.5 },
        { temperature: 0.5, topK: 1, topP: 0.95 },
      ];
      for (const s of settings) {
        for (const u of [0, 0.13, 0.5, 0.77, 0.999]) {
          const want = refSample(logits, 0, V, { ...s, uniform: u });
          if (want.margin < 1e-5) continue;
          const got = k.fn.sample(lp, V, s.temperature, s.topK, s.topP, u, ...scratch);
          expect(got, `V ${V} ${JSON.stringify(s)} u ${u}`).toBe(want.token);
          compared++;
        }
      }
    }
    expect(compared).toBeGreaterThan(80); // of 120: the rest sit within rounding of a boundary
  });
});
