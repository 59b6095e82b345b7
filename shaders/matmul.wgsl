// y[r, o] = sum_i x[r, i] * W[o, i]  (+ bias[o]) (+ y[r, o] when RESIDUAL), for all R rows of the batch.
// W is a Hugging Face Linear weight [out, in]. One source for every variant: the host substitutes the
// /*@...*/ markers (weight storage type and load, LANES, flags) before compiling.
//
// Work split: a workgroup owns 2 * WG / LANES outputs; LANES threads share two outputs and stride
// over its input vec4s (lane, lane + LANES, ...), then their partial sums are added in lane order.
// Rows are processed four at a time (one vec4 accumulator: component j = row r0 + j), so each weight
// vec4 is read once per four rows. The reduction order of a row's output depends only on the input
// size and LANES, never on R or on the other rows: a row's result is bitwise batch-independent.
// GATED: W0 = gate, W1 = up, y = silu(x W0^T) * (x W1^T) (the SiLU-gated MLP in one pass).

struct Params {
  inDim4: u32,   // input size / 4
  outDim: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> rowMeta: array<u32>;        // rowMeta[0] = R
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;      // [R, in]
@group(0) @binding(3) var<storage, read> w0: array</*@WTYPE*/vec4<f32>>;
@group(0) @binding(4) var<storage, read> w1: array</*@WTYPE*/vec4<f32>>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;      // [R, out]

const WG: u32 = 64u;
const LANES: u32 = /*@LANES*/4u;
const OUTS: u32 = WG / LANES;   // thread groups per workgroup; each owns two outputs
const GATED: bool = /*@GATED*/false;
const BIAS: bool = /*@BIAS*/false;
const RESIDUAL: bool = /*@RESIDUAL*/false;

var<workgroup> red0: array<vec4<f32>, WG>;
var<workgroup> red1: array<vec4<f32>, WG>;

fn loadW0(i: u32) -> vec4<f32> {
  /*@LOAD0*/return w0[i];
}
fn loadW1(i: u32) -> vec4<f32> {
  /*@LOAD1*/return w1[i];
}

// Sum of the LANES partial sums of one output, in a fixed order. /*@REDUCE*/ selects the version:
// workgroup memory + barriers (portable), or subgroup shuffles (no barriers; needs subgroups of at
// least LANES invocations with consecutive local indices, as on every adapter we know).
fn reduceLanes0(t: u32, a: vec4<f32>) -> vec4<f32> {
  /*@REDUCE0*/red0[t] = a;
  workgroupBarrier();
  var s = a;
  if (t % LANES == 0u) {
    for (var l = 1u; l < LANES; l++) { s = s + red0[t + l]; }
  }
  workgroupBarrier();
  return s;
}
fn reduceLanes1(t: u32, a: vec4<f32>) -> vec4<f32> {
  /*@REDUCE1*/red1[t] = a;
  workgroupBarrier();
  var s = a;
  if (t % LANES == 0u) {
    for (var l = 1u; l < LANES; l++) { s = s + red1[t + l]; }
  }
  workgroupBarrier();
  return s;
}

fn silu(g: f32) -> f32 {
  return g / (1.0 + exp(-g));
}

fn store(r: u32, o: u32, acc: f32, gateUp: f32) {
  var v = acc;
  if (BIAS) { v = v + bias[o]; }
  if (GATED) { v = silu(v) * gateUp; }
  let yi = r * P.outDim + o;
  if (RESIDUAL) { v = y[yi] + v; }
  y[yi] = v;
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) t: u32,
        @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  // Each thread group of LANES owns two adjacent outputs oA, oA + 1.
  let oA = ((wg.y * nwg.x + wg.x) * OUTS + t / LANES) * 2u;
  let lane = t % LANES;
  let R = rowMeta[0];
  let n4 = P.inDim4;
  let last = P.outDim - 1u;
  var r0 = 0u;
  loop {
    if (r0 >= R) { break; }
    // Four rows per pass while at least four remain, then one at a time. Every row and output
    // accumulates with the same expression in the same order (acc = acc + dot(w_i, x_i) over
    // i = lane, lane + LANES, ...; then the lanes in a fixed order), so neither the block a row
    // lands in nor the path taken changes its result.
    let nb = select(1u, 4u, R - r0 >= 4u);
    if (nb == 1u && !GATED) {
      // One row, both outputs in one pass: each x vec4 is loaded once for two weight rows.
      let xa = r0 * n4;
      let wA = min(oA, last) * n4;
      let wB = min(oA + 1u, last) * n4;
      var sA = 0.0;
      var sB = 0.0;
      var i = lane;
      for (; i + LANES < n4; i += 2u * LANES) {
        let v0 = x[xa + i];
        let v1 = x[xa + i + LANES];
        let a0 = loadW0(wA + i);
        let b0 = loadW0(wB + i);
        let a1 = loadW0(wA + i + LANES);
        let b1 = loadW0(wB + i + LANES);
        sA = sA + dot(a0, v0);
        sB = sB + dot(b0, v0);
        sA = sA + dot(a1, v1);
        sB = sB + dot(b1, v1);
      }
      for (; i < n4; i += LANES) {
        let v0 = x[xa + i];
        sA = sA + dot(loadW0(wA + i), v0);
        sB = sB + dot(loadW0(wB + i), v0);
      }
      var acc = vec4<f32>(sA, sB, 0.0, 0.0);
      if (LANES > 1u) { acc = reduceLanes0(t, acc); }
      if (lane == 0u) {
        if (oA <= last) { store(r0, oA, acc.x, 0.0); }
        if (oA + 1u <= last) { store(r0, oA + 1u, acc.y, 0.0); }
      }
    } else {
      for (var k = 0u; k < 2u; k++) {
        let o = oA + k;
        let wBase = min(o, last) * n4;
        var a0 = vec4<f32>(0.0);
        var a1 = vec4<f32>(0.0);
        if (nb == 4u) {
          let xa = r0 * n4;
          let xb = xa + n4;
          let xc = xb + n4;
          let xd = xc + n4;
          for (var i = lane; i < n4; i += LANES) {
            let w = loadW0(wBase + i);
            let va = x[xa + i];
            let vb = x[xb + i];
            let vc = x[xc + i];
            let vd = x[xd + i];
            a0 = a0 + vec4<f32>(dot(w, va), dot(w, vb), dot(w, vc), dot(w, vd));
            if (GATED) {
              let u = loadW1(wBase + i);
              a1 = a1 + vec4<f32>(dot(u, va), dot(u, vb), dot(u, vc), dot(u, vd));
            }
          }
        } else {
          let xa = r0 * n4;
          var s0 = 0.0;
          var s1 = 0.0;
          for (var i = lane; i < n4; i += LANES) {
            let va = x[xa + i];
            s0 = s0 + dot(loadW0(wBase + i), va);
            if (GATED) { s1 = s1 + dot(loadW1(wBase + i), va); }
          }
          a0.x = s0;
          a1.x = s1;
        }
        if (LANES > 1u) {
          a0 = reduceLanes0(t, a0);
          if (GATED) { a1 = reduceLanes1(t, a1); }
        }
        if (lane == 0u && o <= last) {
          for (var j = 0u; j < nb; j++) { store(r0 + j, o, a0[j], a1[j]); }
        }
      }
    }
    r0 += nb;
  }
}
