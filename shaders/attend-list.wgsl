// Shared by attention.wgsl and attention-serial.wgsl (src/gpu/kernels.ts appends this file to both):
// their parameters, the meta buffer, and each row's attend list. Row r attends to, in this order:
// the stage's committed slots (rowMeta[committedOff ..], rowMeta[1] of them), the row's ancestor
// slots (rowMeta[ancOff ..], ancCount of them), then its own slot.

struct Params {
  numHeads: u32,
  numKvHeads: u32,
  headDim: u32,
  rowsOff: u32,
  rowStride: u32,      // row record: token, position, slot, ancOff, ancCount, ...
  committedOff: u32,
  scale: f32,
  _pad0: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> rowMeta: array<u32>;   // rowMeta[0] = R, rowMeta[1] = nCommitted

struct AttendList {
  selfSlot: u32,
  ancOff: u32,
  ancCount: u32,
  nC: u32,
  /** Entries: nC + ancCount + 1. */
  len: u32,
}

fn attendList(r: u32) -> AttendList {
  let rec = P.rowsOff + r * P.rowStride;
  let ancCount = rowMeta[rec + 4u];
  let nC = rowMeta[1];
  return AttendList(rowMeta[rec + 2u], rowMeta[rec + 3u], ancCount, nC, nC + ancCount + 1u);
}

/** The KV slot of entry j (< a.len) of a row's attend list. */
fn attendSlot(a: AttendList, j: u32) -> u32 {
  if (j < a.nC) { return rowMeta[P.committedOff + j]; }
  if (j < a.nC + a.ancCount) { return rowMeta[a.ancOff + j - a.nC]; }
  return a.selfSlot;
}
