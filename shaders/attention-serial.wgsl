// Attention, one invocation per (row, query head), no workgroup barriers: the variant for CPU
// adapters (SwiftShader), where a barrier costs far more than the arithmetic around it.
// Same inputs and attend-list semantics as attention.wgsl: committed slots, then the row's ancestor
// slots, then its own slot; GQA head mapping h -> h / (numHeads / numKvHeads). The softmax is online
// (running max and sum) over the list in order, so a row's output depends only on its own list.
// Params, P, rowMeta and the attend list: attend-list.wgsl.

@group(0) @binding(2) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> kPool: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> vPool: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;

const MAXHD4: u32 = 64u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let R = rowMeta[0];
  let nH = P.numHeads;
  if (gid.x >= R * nH) { return; }
  let r = gid.x / nH;
  let h = gid.x % nH;
  let hd4 = P.headDim / 4u;
  let kvh = h / (nH / P.numKvHeads);
  let rowLen4 = (nH + 2u * P.numKvHeads) * hd4;
  let list = attendList(r);

  var q: array<vec4<f32>, MAXHD4>;
  var acc: array<vec4<f32>, MAXHD4>;
  let qBase = r * rowLen4 + h * hd4;
  for (var d = 0u; d < hd4; d++) {
    q[d] = qkv[qBase + d];
    acc[d] = vec4<f32>(0.0);
  }
  var m = -3.0e38;
  var l = 0.0;
  for (var j = 0u; j < list.len; j++) {
    let kb = (attendSlot(list, j) * P.numKvHeads + kvh) * hd4;
    var s = 0.0;
    for (var d = 0u; d < hd4; d++) { s += dot(q[d], kPool[kb + d]); }
    s = s * P.scale;
    let mNew = max(m, s);
    let corr = exp(m - mNew);
    let p = exp(s - mNew);
    l = l * corr + p;
    for (var d = 0u; d < hd4; d++) { acc[d] = acc[d] * corr + p * vPool[kb + d]; }
    m = mNew;
  }
  let oBase = (r * nH + h) * hd4;
  for (var d = 0u; d < hd4; d++) { out[oBase + d] = acc[d] / l; }
}
