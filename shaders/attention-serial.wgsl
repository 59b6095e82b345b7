// Attention, one invocation per (row, query head), no workgroup barriers: the variant for CPU
// adapters (SwiftShader), where a barrier costs far more than the arithmetic around it.
// Same inputs and attend-list semantics as attention.wgsl: committed slots, then the row's ancestor
// slots, then its own slot; GQA head mapping h -> h / (numHeads / numKvHeads). The softmax is online
// (running max and sum) over the list in order, so a row's output depends only on its own list.
// Params, P, rowMeta, the attend list and its splits (SPLIT): attend-list.wgsl. The K/V pools are
// f32, or (KV16) IEEE halves two per u32, widened by kAt / vAt (src/gpu/kernels.ts specialises them).

@group(0) @binding(2) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> kPool: array</*@KV4*/vec4<f32>>;
@group(0) @binding(4) var<storage, read> vPool: array</*@KV4*/vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;

const MAXHD4: u32 = 64u;

fn kAt(i: u32) -> vec4<f32> {
  /*@KLOAD*/return kPool[i];
}
fn vAt(i: u32) -> vec4<f32> {
  /*@VLOAD*/return vPool[i];
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let R = rowMeta[0];
  let nH = P.numHeads;
  let S = select(1u, SMAX, SPLIT);  // invocations per (row, head)
  if (gid.x >= R * nH * S) { return; }
  let s = gid.x % S;
  let r = gid.x / (nH * S);
  let h = (gid.x / S) % nH;
  let hd4 = P.headDim / 4u;
  let kvh = h / (nH / P.numKvHeads);
  let rowLen4 = (nH + 2u * P.numKvHeads) * hd4;
  let list = attendList(r);
  let n = splitsOf(list.len);
  if (s >= n) { return; }
  let range = splitRange(list.len, n, s);

  var q: array<vec4<f32>, MAXHD4>;
  var acc: array<vec4<f32>, MAXHD4>;
  let qBase = r * rowLen4 + h * hd4;
  for (var d = 0u; d < hd4; d++) {
    q[d] = qkv[qBase + d];
    acc[d] = vec4<f32>(0.0);
  }
  var m = -3.0e38;
  var l = 0.0;
  for (var j = range.x; j < range.y; j++) {
    let kb = (attendSlot(list, j) * P.numKvHeads + kvh) * hd4;
    var sc = 0.0;
    for (var d = 0u; d < hd4; d++) { sc += dot(q[d], kAt(kb + d)); }
    sc = sc * P.scale;
    let mNew = max(m, sc);
    let corr = exp(m - mNew);
    let p = exp(sc - mNew);
    l = l * corr + p;
    for (var d = 0u; d < hd4; d++) { acc[d] = acc[d] * corr + p * vAt(kb + d); }
    m = mNew;
  }
  if (n > 1u) {
    let pb = partialBase(r, h, s) / 4u;
    for (var d = 0u; d < hd4; d++) { out[pb + d] = acc[d]; }
    out[pb + hd4] = vec4<f32>(m, l, 0.0, 0.0);
    return;
  }
  let oBase = (r * nH + h) * hd4;
  for (var d = 0u; d < hd4; d++) { out[oBase + d] = acc[d] / l; }
}
