// RoPE (Hugging Face rotate-half convention) on the q and k parts of the fused qkv rows, and the
// write of each row's rotated K and its V into the row's KV slot. Rows are [q | k | v] with
// q = numHeads * headDim, k = v = numKvHeads * headDim. Pairs are (i, i + headDim/2):
//   out[i]        = x[i] * cos - x[i + half] * sin
//   out[i + half] = x[i + half] * cos + x[i] * sin
// cos/sin come from a host-computed table [position, half] (the same numbers the CPU reference uses).
// q is rotated in place; the K/V pools are [numSlots, numKvHeads, headDim].

struct Params {
  numHeads: u32,
  numKvHeads: u32,
  headDim: u32,
  rowsOff: u32,
  rowStride: u32,   // row record: token, position, slot, ...
  maxPos: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> rowMeta: array<u32>;
@group(0) @binding(2) var<storage, read> cs: array<vec2<f32>>;     // [maxPos, half] (cos, sin)
@group(0) @binding(3) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(4) var<storage, read_write> kPool: array<f32>;
@group(0) @binding(5) var<storage, read_write> vPool: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.y;
  let idx = gid.x;
  if (r >= rowMeta[0]) { return; }
  let hd = P.headDim;
  let half = hd / 2u;
  let nq = P.numHeads * half;
  let nk = P.numKvHeads * half;
  let nv = P.numKvHeads * hd;
  if (idx >= nq + nk + nv) { return; }
  let rec = P.rowsOff + r * P.rowStride;
  let pos = min(rowMeta[rec + 1u], P.maxPos - 1u);
  let slot = rowMeta[rec + 2u];
  let rowLen = (P.numHeads + 2u * P.numKvHeads) * hd;
  let rowBase = r * rowLen;
  let kvBase = slot * P.numKvHeads * hd;
  if (idx < nq + nk) {
    let isK = idx >= nq;
    let j = select(idx, idx - nq, isK);
    let head = j / half;
    let i = j % half;
    let src = rowBase + select(0u, P.numHeads * hd, isK) + head * hd + i;
    let c = cs[pos * half + i];
    let a = qkv[src];
    let b = qkv[src + half];
    let o1 = a * c.x - b * c.y;
    let o2 = b * c.x + a * c.y;
    if (isK) {
      kPool[kvBase + head * hd + i] = o1;
      kPool[kvBase + head * hd + i + half] = o2;
    } else {
      qkv[src] = o1;
      qkv[src + half] = o2;
    }
  } else {
    let j = idx - nq - nk;
    vPool[kvBase + j] = qkv[rowBase + (P.numHeads + P.numKvHeads) * hd + j];
  }
}
