// Picks one token per row from its logits [R, vocab]. One workgroup per row.
// Semantics (the CPU reference in src/gpu/reference.ts follows the same steps and order):
//   temperature <= 0: argmax, ties to the lowest token id.
//   otherwise, with z = logits / T and p_i = exp(z_i - max z) (unnormalised softmax):
//   1. top-k (0 < k < vocab): keep tokens whose logit >= the k-th largest logit (ties at the
//      boundary are all kept).
//   2. top-p (p < 1): among the kept, keep the tokens whose logit >= the largest threshold t for
//      which the kept mass of {logit >= t} is >= p * (mass kept by top-k). That is the smallest
//      set of highest-probability tokens reaching mass p (again keeping ties).
//   3. Inverse CDF: walk the kept tokens in ascending token id, accumulating p_i; pick the first
//      token whose running sum exceeds u * (kept mass). u is the caller's uniform in [0, 1).
// Sums: thread t owns the contiguous ids [t * C, (t + 1) * C), C = ceil(vocab / 256), summed in id
// order; the 256 partial sums are then added in thread order.
// Logit ranks use an order-preserving u32 key of the f32 bits, found by bisection on the key bits.

struct Params {
  vocab: u32,
  rowsOff: u32,
  rowStride: u32,   // row record: ..., [5] temperature (f32 bits), [6] topK, [7] topP (f32 bits), [8] uniform (f32 bits)
  _pad: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> rowMeta: array<u32>;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read_write> tokens: array<u32>;

const WG: u32 = 256u;
var<workgroup> redf: array<f32, WG>;
var<workgroup> redu: array<u32, WG>;
var<workgroup> bcast: f32;
var<workgroup> atLeast: atomic<u32>;   // countAtLeast's total

fn key(f: f32) -> u32 {
  let b = bitcast<u32>(f);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// Sum over the thread's chunk of p_i for kept tokens (left in redf[t]), then all chunks in thread
// order (by thread 0, broadcast).
fn keptMass(t: u32, base: u32, c0: u32, c1: u32, thr: u32, mz: f32, temp: f32) -> f32 {
  var s = 0.0;
  for (var i = c0; i < c1; i++) {
    let lg = logits[base + i];
    if (key(lg) >= thr) { s += exp(lg / temp - mz); }
  }
  redf[t] = s;
  workgroupBarrier();
  if (t == 0u) {
    var tot = 0.0;
    for (var k = 0u; k < WG; k++) { tot += redf[k]; }
    bcast = tot;
  }
  workgroupBarrier();
  let tot = bcast;
  workgroupBarrier();
  return tot;
}

fn countAtLeast(t: u32, base: u32, c0: u32, c1: u32, thr: u32) -> u32 {
  var c = 0u;
  for (var i = c0; i < c1; i++) {
    if (key(logits[base + i]) >= thr) { c++; }
  }
  // An integer sum: exact in any order, so the threads add into one atomic.
  if (t == 0u) { atomicStore(&atLeast, 0u); }
  workgroupBarrier();
  atomicAdd(&atLeast, c);
  workgroupBarrier();
  let n = atomicLoad(&atLeast);
  workgroupBarrier();
  return n;
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let r = wg.x;
  let V = P.vocab;
  let base = r * V;
  let rec = P.rowsOff + r * P.rowStride;
  let temp = bitcast<f32>(rowMeta[rec + 5u]);
  let topK = rowMeta[rec + 6u];
  let topP = bitcast<f32>(rowMeta[rec + 7u]);
  let u = bitcast<f32>(rowMeta[rec + 8u]);

  // Argmax with ties to the lowest id: strided scan, then a tree that prefers the lower index.
  var bv = -3.4e38;
  var bi = 0xffffffffu;
  for (var i = t; i < V; i += WG) {
    let v = logits[base + i];
    if (v > bv || bi == 0xffffffffu) { bv = v; bi = i; }
  }
  redf[t] = bv;
  redu[t] = bi;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (t < k) {
      let ov = redf[t + k];
      let oi = redu[t + k];
      if (oi != 0xffffffffu && (redu[t] == 0xffffffffu || ov > redf[t] || (ov == redf[t] && oi < redu[t]))) {
        redf[t] = ov;
        redu[t] = oi;
      }
    }
    workgroupBarrier();
  }
  let best = redu[0];
  let bestVal = redf[0];
  workgroupBarrier();
  if (!(temp > 0.0)) {
    if (t == 0u) { tokens[r] = best; }
    return;
  }

  let mz = bestVal / temp;
  let C = (V + WG - 1u) / WG;
  let c0 = min(t * C, V);
  let c1 = min(c0 + C, V);

  // 1. top-k: the largest key thr with count(key >= thr) >= k is the k-th largest logit's key.
  var thrK = 0u;
  if (topK > 0u && topK < V) {
    for (var bit = 31i; bit >= 0i; bit--) {
      let cand = thrK | (1u << u32(bit));
      if (countAtLeast(t, base, c0, c1, cand) >= topK) { thrK = cand; }
    }
  }
  var thr = thrK;
  // 2. top-p on the top-k set.
  if (topP < 1.0) {
    let goal = topP * keptMass(t, base, c0, c1, thrK, mz, temp);
    var t2 = 0u;
    for (var bit = 31i; bit >= 0i; bit--) {
      let cand = t2 | (1u << u32(bit));
      if (keptMass(t, base, c0, c1, max(thrK, cand), mz, temp) >= goal) { t2 = cand; }
    }
    thr = max(thrK, t2);
  }
  // 3. Inverse CDF over the kept tokens in ascending id order (keptMass leaves each thread's
  //    partial sum in redf: thread 0 finds the chunk, then the token within it).
  let tot = keptMass(t, base, c0, c1, thr, mz, temp);
  if (t == 0u) {
    let goal = u * tot;
    var cum = 0.0;
    var chunk = 0u;
    for (var k = 0u; k < WG; k++) {
      let next = cum + redf[k];
      if (next > goal) { chunk = k; break; }
      cum = next;
      chunk = k + 1u;
    }
    var pick = best;
    var found = false;
    for (var i = min(chunk * C, V); i < V; i++) {
      let lg = logits[base + i];
      if (key(lg) >= thr) {
        cum += exp(lg / temp - mz);
        if (cum > goal) { pick = i; found = true; break; }
      }
    }
    tokens[r] = pick;
  }
}
