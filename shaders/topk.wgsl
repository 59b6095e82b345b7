// The draft's candidates, per row of logits [R, vocab]: the k largest logits (largest first, ties to
// the lower id) and their log-probabilities at temperature T, z_i / T - log(sum_j exp(z_j / T)), over
// the whole vocabulary, so only k ids and k log-probs are read back instead of the vocabulary.
// src/speculative/sampling.ts's logSoftmax and topKIndices are the CPU statement of the same thing.
// One workgroup per row. Thread t scans ids t, t + WG, ... (ascending), keeping its own k best in
// registers and its largest z / T; the maxima, then the thread's sums of exp(z / T - max), are
// combined in thread order by thread 0, which also merges the WG sorted lists.

struct Params {
  vocab: u32,
  k: u32,          // 1 ..= KMAX
  temperature: f32, // > 0
  _pad: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> rowMeta: array<u32>;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read_write> cand: array<u32>;   // per row: k ids, then k log-prob bits

const WG: u32 = 64u;
const KMAX: u32 = 16u;

var<workgroup> listV: array<f32, 1024>;   // WG * KMAX: each thread's k best logits, best first
var<workgroup> listI: array<u32, 1024>;
var<workgroup> redf: array<f32, WG>;
var<workgroup> bcast: f32;

// a ranks before b: larger logit, or the same logit and a lower id.
fn before(av: f32, ai: u32, bv: f32, bi: u32) -> bool {
  return av > bv || (av == bv && ai < bi);
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let r = wg.x;
  if (r >= rowMeta[0]) { return; }  // the whole workgroup
  let V = P.vocab;
  let k = P.k;
  let base = r * V;
  var bv: array<f32, KMAX>;
  var bi: array<u32, KMAX>;
  var n = 0u;
  for (var i = t; i < V; i += WG) {
    let v = logits[base + i];
    if (n == k && !(v > bv[k - 1u])) { continue; }  // ids ascend: an equal logit ranks after
    var p = min(n, k - 1u);
    while (p > 0u && v > bv[p - 1u]) {
      bv[p] = bv[p - 1u];
      bi[p] = bi[p - 1u];
      p--;
    }
    bv[p] = v;
    bi[p] = i;
    n = min(n + 1u, k);
  }
  for (var j = 0u; j < KMAX; j++) {
    listV[t * KMAX + j] = select(-3.0e38, bv[j], j < n);
    listI[t * KMAX + j] = select(0xffffffffu, bi[j], j < n);
  }
  workgroupBarrier();
  if (t == 0u) {
    var m = -3.0e38;
    for (var u = 0u; u < WG; u++) { m = max(m, listV[u * KMAX]); }
    bcast = m / P.temperature;
  }
  workgroupBarrier();
  let mz = bcast;
  var s = 0.0;
  for (var i = t; i < V; i += WG) { s += exp(logits[base + i] / P.temperature - mz); }
  redf[t] = s;
  workgroupBarrier();
  if (t != 0u) { return; }
  var tot = 0.0;
  for (var u = 0u; u < WG; u++) { tot += redf[u]; }
  let lz = mz + log(tot);
  // Merge: k times, the best head among the WG lists.
  var head: array<u32, WG>;
  for (var u = 0u; u < WG; u++) { head[u] = 0u; }
  let out = r * 2u * k;
  for (var j = 0u; j < k; j++) {
    var best = 0u;
    for (var u = 1u; u < WG; u++) {
      let a = u * KMAX + head[u];
      let b = best * KMAX + head[best];
      if (head[u] < KMAX && (head[best] >= KMAX || before(listV[a], listI[a], listV[b], listI[b]))) { best = u; }
    }
    let e = best * KMAX + head[best];
    cand[out + j] = listI[e];
    cand[out + k + j] = bitcast<u32>(listV[e] / P.temperature - lz);
    head[best]++;
  }
}
