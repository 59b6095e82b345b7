// Split-K attention, second pass: for each row with more than one split (attend-list.wgsl), the
// output of each head is the splits' partial outputs weighted by exp(m_s - M) and divided by the
// weighted sum of their softmax sums, M being the largest of their maxima (in split order, so the
// result depends only on the row's own list). One invocation per (row, head, vec4 of headDim).

@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let hd4 = P.headDim / 4u;
  let nH = P.numHeads;
  if (gid.x >= rowMeta[0] * nH * hd4) { return; }
  let d = gid.x % hd4;
  let h = (gid.x / hd4) % nH;
  let r = gid.x / (hd4 * nH);
  let n = splitsOf(attendList(r).len);
  if (n == 1u) { return; }  // written by the first pass
  var m = -3.0e38;
  for (var s = 0u; s < n; s++) { m = max(m, out[(partialBase(r, h, s) / 4u) + hd4].x); }
  var l = 0.0;
  var acc = vec4<f32>(0.0);
  for (var s = 0u; s < n; s++) {
    let b = partialBase(r, h, s) / 4u;
    let ml = out[b + hd4];
    let w = exp(ml.x - m);
    l = l + ml.y * w;
    acc = acc + out[b + d] * w;
  }
  out[(r * nH + h) * hd4 + d] = acc / l;
}
