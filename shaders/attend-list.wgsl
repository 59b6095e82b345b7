// Shared by attention.wgsl and attention-serial.wgsl (src/gpu/kernels.ts appends this file to both):
// their parameters, the meta buffer, and each row's attend list. Row r attends to, in this order:
// the stage's committed slots (rowMeta[committedOff ..], rowMeta[1] of them), the row's ancestor
// slots (rowMeta[ancOff ..], ancCount of them), then its own slot.
// Split-K ("flash-decoding"; the SPLIT variants): a row's list is cut into splitsOf(len) contiguous
// ranges, each attended by its own invocation or workgroup, which writes its unnormalised output and
// its softmax max and sum (a partial) after the P.partOff-th float of `out`; attention-reduce.wgsl
// combines them. The number of splits depends only on the row's own list, so a row's output stays
// independent of the other rows; a row with one split is computed exactly as without SPLIT.

struct Params {
  numHeads: u32,
  numKvHeads: u32,
  headDim: u32,
  rowsOff: u32,
  rowStride: u32,      // row record: token, position, slot, ancOff, ancCount, ...
  committedOff: u32,
  scale: f32,
  splitMin: u32,       // SPLIT: list entries per split (at least)
  partOff: u32,        // SPLIT: float offset of the partials in `out`
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

const SMAX: u32 = 16u;   // most splits of one row's list
const SPLIT: bool = /*@SPLIT*/false;

// Splits of a list of `len` entries: one per P.splitMin entries, 1 to SMAX (1 without SPLIT).
fn splitsOf(len: u32) -> u32 {
  if (!SPLIT || P.splitMin == 0u) { return 1u; }
  return clamp(len / P.splitMin, 1u, SMAX);
}

// Entries [x, y) of split s of n.
fn splitRange(len: u32, n: u32, s: u32) -> vec2<u32> {
  let c = (len + n - 1u) / n;
  return vec2<u32>(min(s * c, len), min(s * c + c, len));
}

// Float offset of the partial of (row r, head h, split s): headDim floats of output, then max, sum.
fn partialBase(r: u32, h: u32, s: u32) -> u32 {
  return P.partOff + ((r * P.numHeads + h) * SMAX + s) * (P.headDim + 4u);
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
