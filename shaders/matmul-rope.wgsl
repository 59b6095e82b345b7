// The epilogue of the fused q/k/v matmul (matmul.wgsl's ROPE variant; src/gpu/kernels.ts joins this
// file after it): RoPE on q and k, and the write of the row's K and V into its KV slot.
// The host permutes the q and k weight rows of every head at upload (row 2j = row j, row 2j + 1 =
// row j + headDim / 2), so each rotation pair (i, i + headDim / 2) of the Hugging Face rotate-half
// convention is two adjacent outputs, and a thread's four outputs are two whole pairs. q and k stay
// in that order (attention only takes q . k, the same sum over the same pairs); v is not permuted.
// q goes to y (rows of outDim = qDim + 2 kvDim, as before); K and V go to kv: the K pool
// [numSlots, kvDim] from word 0 and the V pool from word P.vOff, f32 bits or (KV16) two IEEE halves
// per u32 (pack2x16float, so no shader-f16 is needed).

@group(0) @binding(7) var<storage, read> cs: array<vec2<f32>>;   // [maxPos, headDim / 2] (cos, sin)
@group(0) @binding(8) var<storage, read_write> kv: array<u32>;

const KV16: bool = /*@KV16*/false;

fn ropeStore(r: u32, o0: u32, acc: vec4<f32>) {
  var v = acc;
  if (BIAS) { v = v + vecs[o0 / 4u]; }  // o0 is a multiple of 4
  let rec = P.rowsOff + r * P.rowStride;
  let pos = min(rowMeta[rec + 1u], P.maxPos - 1u);
  let slot = rowMeta[rec + 2u];
  let qk = P.qDim + P.kvDim;
  if (o0 < qk) {
    let j = pos * (P.headDim / 2u) + (o0 % P.headDim) / 2u;
    let a = cs[j];
    let b = cs[j + 1u];
    v = vec4<f32>(v.x * a.x - v.y * a.y, v.y * a.x + v.x * a.y, v.z * b.x - v.w * b.y, v.w * b.x + v.z * b.y);
  }
  if (o0 < P.qDim) {
    let yi = r * P.outDim + o0;
    y[yi] = v.x;
    y[yi + 1u] = v.y;
    y[yi + 2u] = v.z;
    y[yi + 3u] = v.w;
    return;
  }
  let isK = o0 < qk;
  let e = slot * P.kvDim + o0 - select(qk, P.qDim, isK);  // element index in its pool
  let base = select(P.vOff, 0u, isK);
  if (KV16) {
    kv[base + e / 2u] = pack2x16float(v.xy);
    kv[base + e / 2u + 1u] = pack2x16float(v.zw);
  } else {
    let u = bitcast<vec4<u32>>(v);
    kv[base + e] = u.x;
    kv[base + e + 1u] = u.y;
    kv[base + e + 2u] = u.z;
    kv[base + e + 3u] = u.w;
  }
}
