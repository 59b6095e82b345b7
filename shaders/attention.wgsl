// Attention of each row's query heads over its attend list in the KV slot pool (GQA: query head h
// reads kv head h / (numHeads / numKvHeads)). The attend list of row r is, in this order: the
// stage's committed slots (rowMeta[committedOff ..], nCommitted of them), the row's ancestor slots
// (rowMeta[ancOff ..], ancCount), then the row's own slot. One workgroup per (head, row).
// The list is processed in chunks of CHUNK with an online softmax; every reduction (max, sum, the
// weighted sum of V) runs in a fixed order that depends only on the list, so a row's output is
// bitwise independent of the other rows in the batch. Params, P, rowMeta, the attend list and its
// splits (SPLIT: workgroup z = split): attend-list.wgsl. The K/V pools are f32, or (KV16) IEEE
// halves two per u32, widened by kAt / vAt1 (src/gpu/kernels.ts specialises them).

@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read> kPool: array</*@KV4*/vec4<f32>>;
@group(0) @binding(4) var<storage, read> vPool: array</*@KV1*/f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;  // [R, numHeads * headDim], then partials

fn kAt(i: u32) -> vec4<f32> {
  /*@KLOAD*/return kPool[i];
}
fn vAt1(i: u32) -> f32 {
  /*@VLOAD1*/return vPool[i];
}

const WG: u32 = 64u;
const CHUNK: u32 = 1024u;
const MAXHD: u32 = 256u;
const PER: u32 = MAXHD / WG;

var<workgroup> red: array<f32, WG>;

// A tree reduction over the workgroup (max, or sum), in a fixed order; every thread gets the result.
fn reduce(t: u32, v: f32, isMax: bool) -> f32 {
  red[t] = v;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (t < k) { red[t] = select(red[t] + red[t + k], max(red[t], red[t + k]), isMax); }
    workgroupBarrier();
  }
  let m = red[0];
  workgroupBarrier();
  return m;
}

var<workgroup> qs: array<vec4<f32>, 64>;   // the row's query head (MAXHD / 4)
var<workgroup> sc: array<f32, CHUNK>;      // a chunk's scores, then exp(score - max)
var<workgroup> sl: array<u32, CHUNK>;      // a chunk's slots

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let h = wg.x;
  let r = wg.y;
  let s = wg.z;
  let hd = P.headDim;
  let hd4 = hd / 4u;
  let kvh = h / (P.numHeads / P.numKvHeads);
  let rowLen = (P.numHeads + 2u * P.numKvHeads) * hd;
  let list = attendList(r);
  let nSplit = splitsOf(list.len);
  if (s >= nSplit) { return; }  // the whole workgroup
  let range = splitRange(list.len, nSplit, s);

  let qBase = r * rowLen + h * hd;
  for (var d = t; d < hd4; d += WG) {
    let b = qBase + d * 4u;
    qs[d] = vec4<f32>(qkv[b], qkv[b + 1u], qkv[b + 2u], qkv[b + 3u]);
  }
  workgroupBarrier();

  var m = -3.0e38;
  var l = 0.0;
  var acc: array<f32, PER>;
  for (var k = 0u; k < PER; k++) { acc[k] = 0.0; }

  for (var c0 = range.x; c0 < range.y; c0 += CHUNK) {
    let n = min(CHUNK, range.y - c0);
    var lmax = -3.0e38;
    for (var jj = t; jj < n; jj += WG) {
      let j = c0 + jj;
      let slot = attendSlot(list, j);
      sl[jj] = slot;
      let kb = (slot * P.numKvHeads + kvh) * hd4;
      var sd = 0.0;
      for (var d = 0u; d < hd4; d++) {
        sd += dot(qs[d], kAt(kb + d));
      }
      sd = sd * P.scale;
      sc[jj] = sd;
      lmax = max(lmax, sd);
    }
    let mNew = max(m, reduce(t, lmax, true));
    var lsum = 0.0;
    for (var jj = t; jj < n; jj += WG) {
      let p = exp(sc[jj] - mNew);
      sc[jj] = p;
      lsum += p;
    }
    let csum = reduce(t, lsum, false);  // ends with a barrier: sc[] is visible to every thread
    let corr = exp(m - mNew);
    l = l * corr + csum;
    for (var k = 0u; k < PER; k++) {
      let d = t + k * WG;
      if (d < hd) {
        var a = acc[k] * corr;
        for (var jj = 0u; jj < n; jj++) {
          a += sc[jj] * vAt1((sl[jj] * P.numKvHeads + kvh) * hd + d);
        }
        acc[k] = a;
      }
    }
    m = mNew;
    workgroupBarrier();
  }
  if (nSplit > 1u) {
    let pb = partialBase(r, h, s);
    for (var k = 0u; k < PER; k++) {
      let d = t + k * WG;
      if (d < hd) { out[pb + d] = acc[k]; }
    }
    if (t == 0u) {
      out[pb + hd] = m;
      out[pb + hd + 1u] = l;
    }
    return;
  }
  let oBase = r * P.numHeads * hd + h * hd;
  for (var k = 0u; k < PER; k++) {
    let d = t + k * WG;
    if (d < hd) { out[oBase + d] = acc[k] / l; }
  }
}
