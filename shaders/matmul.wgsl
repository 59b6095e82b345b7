// y[r, o] = sum_i x[r, i] * W[o, i]  (+ bias[o]) (+ y[r, o] when RESIDUAL), for all R rows of the batch.
// W is a Hugging Face Linear weight [out, in]. One source for every variant: the host substitutes the
// /*@...*/ markers (weight storage type and load, LANES, flags) before compiling.
// Fused roles (so that a decoder layer is five dispatches): NORM applies RMSNorm to x on the way in:
// each thread computes the inverseSqrt(mean(x^2) + eps) of the rows it works on (in input order: no
// barrier, which would make SwiftShader run the whole kernel as coroutines), the loops multiply x by
// the norm weight n (vecs[P.normOff ..]; NORM_IN_W: the host already folded n into the f32 weight
// columns), and the outputs are scaled by the row's factor at the end, which is the same product;
// ROPE hands each row's four outputs to ropeStore (matmul-rope.wgsl: RoPE and the KV-cache write of
// the fused q/k/v projection; a no-op stub is joined for the other variants).
//
// Work split: a workgroup owns OPT * WG / LANES outputs; LANES threads share OPT = 4 outputs and
// stride over the input vec4s (lane, lane + LANES, ...), then their partial sums are added in lane
// order. Rows are processed four at a time (vec4 accumulators: component j = row r0 + j), so each
// weight vec4 is read once per four rows and each x vec4 once per four outputs (two for a single
// row of the gated MLP). On SwiftShader loads and instructions are the cost; sharing loads is what
// makes it fast. The reduction order of a row's output depends only on the input
// size and LANES, never on R or on the other rows: a row's result is bitwise batch-independent.
// GATED: W0 = gate, W1 = up, y = silu(x W0^T) * (x W1^T) (the SiLU-gated MLP in one pass).
// Weights: f32 as written; f16 (widen-halves.wgsl) and Q8_0 / Q4_0 blocks (dequant.wgsl) are
// widened or dequantized in registers by loadW0 / loadW1, one vec4 at a time.

struct Params {
  inDim4: u32,   // input size / 4
  outDim: u32,
  scaleOff: u32, // quantized weights: u32 offset of the block scales in w0 / w1 (dequant.wgsl)
  eps: f32,      // NORM
  normOff: u32,  // NORM: f32 offset of the norm weight in vecs
  rowsOff: u32,  // ROPE (matmul-rope.wgsl) from here on
  rowStride: u32,
  headDim: u32,
  qDim: u32,
  kvDim: u32,
  maxPos: u32,
  vOff: u32,     // u32 offset of the V pool in kv
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
  _pad3: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> rowMeta: array<u32>;        // rowMeta[0] = R
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;      // [R, in]
@group(0) @binding(3) var<storage, read> w0: array</*@WTYPE*/vec4<f32>>;
@group(0) @binding(4) var<storage, read> w1: array</*@WTYPE*/vec4<f32>>;
@group(0) @binding(5) var<storage, read> vecs: array<vec4<f32>>; // bias [out] at 0; NORM weight [in] at P.normOff (a multiple of 4)
@group(0) @binding(6) var<storage, read_write> y: array<f32>;      // [R, out]

const WG: u32 = /*@WG*/64u;   // 64, or fewer on CPU adapters (more workgroups for small outputs)
const LANES: u32 = /*@LANES*/4u;
const OUTS: u32 = WG / LANES;   // thread groups per workgroup
const OPT: u32 = 4u;            // outputs per thread group
const GATED: bool = /*@GATED*/false;
const BIAS: bool = /*@BIAS*/false;
const RESIDUAL: bool = /*@RESIDUAL*/false;
const NORM: bool = /*@NORM*/false;
const NORM_IN_W: bool = /*@NORM_IN_W*/false;
const ROPE: bool = /*@ROPE*/false;

var<workgroup> red: array<vec4<f32>, WG>;

fn loadW0(i: u32) -> vec4<f32> {
  /*@LOAD0*/return w0[i];
}
fn loadW1(i: u32) -> vec4<f32> {
  /*@LOAD1*/return w1[i];
}

// Sum of the LANES partial sums of one output (component-wise), in a fixed order: workgroup memory +
// barriers (portable; the trailing barrier lets the next call reuse `red`), or, when the host
// specialises it (src/gpu/kernels.ts), subgroup shuffles (no barriers; needs subgroups of at least
// LANES invocations with consecutive local indices, as on every adapter we know).
fn reduceLanes(t: u32, a: vec4<f32>) -> vec4<f32> {
  red[t] = a;
  workgroupBarrier();
  var s = a;
  if (t % LANES == 0u) {
    for (var l = 1u; l < LANES; l++) { s = s + red[t + l]; }
  }
  workgroupBarrier();
  return s;
}

// One weight vec4 against the x vec4s of four rows: component j is row r0 + j.
fn dot4(w: vec4<f32>, va: vec4<f32>, vb: vec4<f32>, vc: vec4<f32>, vd: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(dot(w, va), dot(w, vb), dot(w, vc), dot(w, vd));
}

// x vec4 i of a row times the RMSNorm weight (NORM, unless folded into W), else as stored.
fn normed(v: vec4<f32>, i: u32) -> vec4<f32> {
  if (!NORM || NORM_IN_W) { return v; }
  return v * vecs[P.normOff / 4u + i];
}

// RMSNorm's factor of row r (NORM: x summed in input order, so it does not depend on the batch), else 1.
fn invRms(r: u32) -> f32 {
  if (!NORM) { return 1.0; }
  var ss = 0.0;
  for (var i = 0u; i < P.inDim4; i++) {
    let v = x[r * P.inDim4 + i];
    ss = ss + dot(v, v);
  }
  return inverseSqrt(ss / f32(P.inDim4 * 4u) + P.eps);
}

fn silu(g: f32) -> f32 {
  return g / (1.0 + exp(-g));
}

fn store(r: u32, o: u32, acc: f32, gateUp: f32) {
  var v = acc;
  if (BIAS) { v = v + vecs[o / 4u][o % 4u]; }
  if (GATED) { v = silu(v) * gateUp; }
  let yi = r * P.outDim + o;
  if (RESIDUAL) { v = y[yi] + v; }
  y[yi] = v;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) t: u32,
        @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  // Each group of LANES threads owns OPT = 4 adjacent outputs o0 .. o0 + 3.
  let o0 = ((wg.y * nwg.x + wg.x) * OUTS + t / LANES) * OPT;
  let lane = t % LANES;
  let R = rowMeta[0];
  let n4 = P.inDim4;
  let last = P.outDim - 1u;
  var r0 = 0u;
  loop {
    if (r0 >= R) { break; }
    // Four rows per pass while at least four remain, then one at a time. Every (row, output)
    // accumulates with the same expression in the same order (acc = acc + dot(w_i, x_i) over
    // i = lane, lane + LANES, ...; then the lanes in a fixed order), so neither the block a row
    // lands in nor the path taken changes its result.
    let nb = select(1u, 4u, R - r0 >= 4u);
    if (nb == 1u && !GATED) {
      // One row, four outputs per pass: each x vec4 is loaded once for four weight rows.
      let xa = r0 * n4;
      let wA = min(o0, last) * n4;
      let wB = min(o0 + 1u, last) * n4;
      let wC = min(o0 + 2u, last) * n4;
      let wD = min(o0 + 3u, last) * n4;
      var acc = vec4<f32>(0.0);
      var i = lane;
      for (; i + LANES < n4; i += 2u * LANES) {
        let v0 = normed(x[xa + i], i);
        let v1 = normed(x[xa + i + LANES], i + LANES);
        acc = acc + vec4<f32>(dot(loadW0(wA + i), v0), dot(loadW0(wB + i), v0), dot(loadW0(wC + i), v0), dot(loadW0(wD + i), v0));
        let j = i + LANES;
        acc = acc + vec4<f32>(dot(loadW0(wA + j), v1), dot(loadW0(wB + j), v1), dot(loadW0(wC + j), v1), dot(loadW0(wD + j), v1));
      }
      for (; i < n4; i += LANES) {
        let v0 = normed(x[xa + i], i);
        acc = acc + vec4<f32>(dot(loadW0(wA + i), v0), dot(loadW0(wB + i), v0), dot(loadW0(wC + i), v0), dot(loadW0(wD + i), v0));
      }
      if (LANES > 1u) { acc = reduceLanes(t, acc); }
      acc = acc * invRms(r0);
      if (lane == 0u && ROPE) {
        if (o0 <= last) { ropeStore(r0, o0, acc); }
      } else if (lane == 0u) {
        for (var k = 0u; k < OPT; k++) {
          if (o0 + k <= last) { store(r0, o0 + k, acc[k], 0.0); }
        }
      }
    } else if (nb == 4u) {
      // Four rows x four outputs per pass: 4 x loads + 4 weight loads for 16 dot products.
      let xa = r0 * n4;
      let xb = xa + n4;
      let xc = xb + n4;
      let xd = xc + n4;
      let wA = min(o0, last) * n4;
      let wB = min(o0 + 1u, last) * n4;
      let wC = min(o0 + 2u, last) * n4;
      let wD = min(o0 + 3u, last) * n4;
      var gA = vec4<f32>(0.0);  // gate (or plain) accumulators, component j = row r0 + j
      var gB = vec4<f32>(0.0);
      var gC = vec4<f32>(0.0);
      var gD = vec4<f32>(0.0);
      var uA = vec4<f32>(0.0);  // up accumulators (GATED)
      var uB = vec4<f32>(0.0);
      var uC = vec4<f32>(0.0);
      var uD = vec4<f32>(0.0);
      for (var i = lane; i < n4; i += LANES) {
        let va = normed(x[xa + i], i);
        let vb = normed(x[xb + i], i);
        let vc = normed(x[xc + i], i);
        let vd = normed(x[xd + i], i);
        gA = gA + dot4(loadW0(wA + i), va, vb, vc, vd);
        gB = gB + dot4(loadW0(wB + i), va, vb, vc, vd);
        gC = gC + dot4(loadW0(wC + i), va, vb, vc, vd);
        gD = gD + dot4(loadW0(wD + i), va, vb, vc, vd);
        if (GATED) {
          uA = uA + dot4(loadW1(wA + i), va, vb, vc, vd);
          uB = uB + dot4(loadW1(wB + i), va, vb, vc, vd);
          uC = uC + dot4(loadW1(wC + i), va, vb, vc, vd);
          uD = uD + dot4(loadW1(wD + i), va, vb, vc, vd);
        }
      }
      if (LANES > 1u) {
        gA = reduceLanes(t, gA);
        gB = reduceLanes(t, gB);
        gC = reduceLanes(t, gC);
        gD = reduceLanes(t, gD);
        if (GATED) {
          uA = reduceLanes(t, uA);
          uB = reduceLanes(t, uB);
          uC = reduceLanes(t, uC);
          uD = reduceLanes(t, uD);
        }
      }
      let inv = vec4<f32>(invRms(r0), invRms(r0 + 1u), invRms(r0 + 2u), invRms(r0 + 3u));
      gA = gA * inv;
      gB = gB * inv;
      gC = gC * inv;
      gD = gD * inv;
      uA = uA * inv;
      uB = uB * inv;
      uC = uC * inv;
      uD = uD * inv;
      if (lane == 0u && ROPE) {
        for (var j = 0u; j < 4u; j++) {
          if (o0 <= last) { ropeStore(r0 + j, o0, vec4<f32>(gA[j], gB[j], gC[j], gD[j])); }
        }
      } else if (lane == 0u) {
        for (var j = 0u; j < 4u; j++) {
          if (o0 <= last) { store(r0 + j, o0, gA[j], uA[j]); }
          if (o0 + 1u <= last) { store(r0 + j, o0 + 1u, gB[j], uB[j]); }
          if (o0 + 2u <= last) { store(r0 + j, o0 + 2u, gC[j], uC[j]); }
          if (o0 + 3u <= last) { store(r0 + j, o0 + 3u, gD[j], uD[j]); }
        }
      }
    } else {
      // One row of the gated MLP (nb == 1 and GATED): two outputs at a time, gate and up of both
      // sharing the x load. The four sums are reduced over the lanes as one vec4.
      let xa = r0 * n4;
      let inv = invRms(r0);
      for (var k = 0u; k < OPT; k += 2u) {
        let oA = o0 + k;
        let wA = min(oA, last) * n4;
        let wB = min(oA + 1u, last) * n4;
        var s = vec4<f32>(0.0);  // gate A, gate B, up A, up B
        for (var i = lane; i < n4; i += LANES) {
          let va = normed(x[xa + i], i);
          s = s + vec4<f32>(dot(loadW0(wA + i), va), dot(loadW0(wB + i), va), dot(loadW1(wA + i), va), dot(loadW1(wB + i), va));
        }
        if (LANES > 1u) { s = reduceLanes(t, s); }
        s = s * inv;
        if (lane == 0u) {
          if (oA <= last) { store(r0, oA, s.x, s.z); }
          if (oA + 1u <= last) { store(r0, oA + 1u, s.y, s.w); }
        }
      }
    }
    r0 += nb;
  }
}
