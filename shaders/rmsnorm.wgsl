// out[r, :] = x[r, :] * inverseSqrt(mean(x[r, :]^2) + eps) * weight   (Hugging Face LlamaRMSNorm, f32).
// One workgroup per row; the sum of squares is reduced in a fixed order (strided per thread, then a
// tree), so a row's result does not depend on the batch.

struct Params {
  hidden4: u32,
  eps: f32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> rowMeta: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;

const WG: u32 = 64u;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let r = wg.x;
  if (r >= rowMeta[0]) { return; }
  let base = r * P.hidden4;
  var s = 0.0;
  for (var i = t; i < P.hidden4; i += WG) {
    let v = x[base + i];
    s += dot(v, v);
  }
  red[t] = s;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (t < k) { red[t] = red[t] + red[t + k]; }
    workgroupBarrier();
  }
  let inv = inverseSqrt(red[0] / f32(P.hidden4 * 4u) + P.eps);
  for (var i = t; i < P.hidden4; i += WG) {
    out[base + i] = (x[base + i] * inv) * weight[i];
  }
}
