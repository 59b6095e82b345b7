// y[r, o] = sum_i x[r, i] * W[o, i]  (+ bias[o]) (+ y[r, o] when RESIDUAL), for all R rows of the batch.
// W is a Hugging Face Linear weight [out, in]. One source for every variant: the host substitutes the
// /*@...*/ markers (weight storage type and load, LANES, flags) before compiling.
//
// Work split: a workgroup owns OUTS = WG / LANES outputs; LANES threads share one output and stride
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
const OUTS: u32 = WG / LANES;
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

fn silu(g: f32) -> f32 {
  return g / (1.0 + exp(-g));
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) t: u32,
        @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = (wg.y * nwg.x + wg.x) * OUTS + t / LANES;
  let lane = t % LANES;
  let R = rowMeta[0];
  let valid = o < P.outDim;
  let wBase = min(o, P.outDim - 1u) * P.inDim4;
  let n4 = P.inDim4;
  for (var r0 = 0u; r0 < R; r0 += 4u) {
    let xa = r0 * n4;
    let xb = min(r0 + 1u, R - 1u) * n4;
    let xc = min(r0 + 2u, R - 1u) * n4;
    let xd = min(r0 + 3u, R - 1u) * n4;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    for (var i = lane; i < n4; i += LANES) {
      let w = loadW0(wBase + i);
      let va = x[xa + i];
      let vb = x[xb + i];
      let vc = x[xc + i];
      let vd = x[xd + i];
      a0 += vec4<f32>(dot(w, va), dot(w, vb), dot(w, vc), dot(w, vd));
      if (GATED) {
        let u = loadW1(wBase + i);
        a1 += vec4<f32>(dot(u, va), dot(u, vb), dot(u, vc), dot(u, vd));
      }
    }
    if (LANES > 1u) {
      red0[t] = a0;
      if (GATED) { red1[t] = a1; }
      workgroupBarrier();
      if (lane == 0u) {
        for (var l = 1u; l < LANES; l++) {
          a0 += red0[t + l];
          if (GATED) { a1 += red1[t + l]; }
        }
      }
      workgroupBarrier();
    }
    if (lane == 0u && valid) {
      for (var j = 0u; j < 4u; j++) {
        let r = r0 + j;
        if (r < R) {
          var v = a0[j];
          if (BIAS) { v = v + bias[o]; }
          if (GATED) { v = silu(v) * a1[j]; }
          let yi = r * P.outDim + o;
          if (RESIDUAL) { v = y[yi] + v; }
          y[yi] = v;
        }
      }
    }
  }
}
