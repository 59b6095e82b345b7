// h[r, :] = E[token[r], :]  (embedding gather). E is [vocab, hidden]; f16 tables are widened here.
// The host substitutes the /*@...*/ markers for the weight format (as in matmul.wgsl).

struct Params {
  hidden4: u32,   // hidden / 4
  rowsOff: u32,   // offset of the row records in meta
  rowStride: u32, // u32s per row record (token is field 0)
  _pad: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> rowMeta: array<u32>;
@group(0) @binding(2) var<storage, read> w0: array</*@WTYPE*/vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> h: array<vec4<f32>>;

fn loadW0(i: u32) -> vec4<f32> {
  /*@LOAD0*/return w0[i];
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.y;
  let i = gid.x;
  if (r >= rowMeta[0] || i >= P.hidden4) { return; }
  let token = rowMeta[P.rowsOff + r * P.rowStride];
  h[r * P.hidden4 + i] = loadW0(token * P.hidden4 + i);
}
