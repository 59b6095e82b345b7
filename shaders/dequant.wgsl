// GGML Q8_0 / Q4_0 blocks dequantized in registers, one vec4 of weights at a time: the loaders of
// the quantized variants of matmul.wgsl (src/gpu/kernels.ts joins this file and widen-halves.wgsl
// after it and makes loadW0 / loadW1 return dequantQ8_0 / dequantQ4_0).
//
// Layout (src/model/quant.ts): a matrix [out, in] is one array<u32>: the quants of block
// b = row * (in / 32) + j (values 32 j .. 32 j + 31 of that row), GGML's bytes in GGML's order,
// then from word P.scaleOff the f16 scales, two per u32 (block b in half b & 1 of word b / 2).
// `i` is the index of a weight vec4 in the row-major matrix (row * in / 4 + k): with in a multiple
// of 32, block = i / 8 and the vec4 is number i % 8 of its block. Values are exact: q * d and
// (q - 8) * d are products of small integers and an f16, all exact in f32.

// The f16 scale of the block of vec4 i, from the u32 `s` that holds it.
fn blockScale(i: u32, s: u32) -> f32 {
  return widenHalf(s >> (((i >> 3u) & 1u) << 4u));
}

// Q8_0: 8 words per block, word k = the int8 values 4k .. 4k + 3 (little-endian bytes).
fn wordQ8_0(i: u32) -> u32 {
  return i;
}
fn dequantQ8_0(i: u32, q: u32, s: u32) -> vec4<f32> {
  let v = bitcast<vec4<i32>>(vec4<u32>(q) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
  return vec4<f32>(v) * blockScale(i, s);
}

// Q4_0: 4 words per block, byte k = value k (low nibble) | value k + 16 (high nibble), so vec4
// m < 4 of a block is the low nibbles of word m and vec4 m >= 4 the high nibbles of word m - 4.
fn wordQ4_0(i: u32) -> u32 {
  return ((i >> 3u) << 2u) | (i & 3u);
}
fn dequantQ4_0(i: u32, q: u32, s: u32) -> vec4<f32> {
  let n = (vec4<u32>(q) >> (vec4<u32>(0u, 8u, 16u, 24u) + vec4<u32>(i & 4u))) & vec4<u32>(15u);
  return (vec4<f32>(n) - vec4<f32>(8.0)) * blockScale(i, s);
}
