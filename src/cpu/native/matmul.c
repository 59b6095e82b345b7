// y[r, o] (+)= sum_i x[r, i] W[o, i] (+ bias[o]) for weights W [out, in] in f32, f16 (IEEE halves),
// or GGML Q8_0 / Q4_0 blocks in the GPU layout of src/model/quant.ts (quants, then the f16 scales).
//
// Every output is one dot product with the same schedule whatever the row count: four f32x4
// accumulators over 16 inputs at a time (4 at a time for a tail), summed as (a0 + a1) + (a2 + a3),
// then the lanes in a fixed order. Rows are processed in pairs only to share weight loads, so a
// row's result is bitwise independent of the other rows of the batch (what speculative modes need
// to stay lossless). Quantized rows sum q * x per block of 32 and scale the block's sum by d.
#include "kernels.h"

// ---- dense weight loaders: 16 or 4 weights of a row, from element i --------------------------------

INLINE void load16_f32(const void* row, int i, v128_t w[4]) {
  const float* p = (const float*)row + i;
  for (int k = 0; k < 4; k++) w[k] = wasm_v128_load(p + 4 * k);
}
INLINE v128_t load4_f32(const void* row, int i) { return wasm_v128_load((const float*)row + i); }

INLINE void load16_f16(const void* row, int i, v128_t w[4]) {
  const uint16_t* p = (const uint16_t*)row + i;
  v128_t a = wasm_v128_load(p), b = wasm_v128_load(p + 8);
  w[0] = halves_to_f32x4(wasm_u32x4_extend_low_u16x8(a));
  w[1] = halves_to_f32x4(wasm_u32x4_extend_high_u16x8(a));
  w[2] = halves_to_f32x4(wasm_u32x4_extend_low_u16x8(b));
  w[3] = halves_to_f32x4(wasm_u32x4_extend_high_u16x8(b));
}
INLINE v128_t load4_f16(const void* row, int i) { return halves_to_f32x4(wasm_u32x4_load16x4((const uint16_t*)row + i)); }

#define ZERO wasm_f32x4_splat(0.0f)
#define MADD(a, w, x) a = wasm_f32x4_add(a, wasm_f32x4_mul(w, x))

// NR rows (1 or 2) of x against one dense weight row.
#define DENSE_DOT(NAME, LOAD16, LOAD4)                                                       \
  INLINE void NAME(const void* wrow, const float* x, int in, int NR, float* res) {           \
    v128_t a[2][4];                                                                         \
    for (int r = 0; r < NR; r++)                                                            \
      for (int k = 0; k < 4; k++) a[r][k] = ZERO;                                           \
    int i = 0;                                                                              \
    for (; i + 16 <= in; i += 16) {                                                         \
      v128_t w[4];                                                                          \
      LOAD16(wrow, i, w);                                                                   \
      for (int r = 0; r < NR; r++)                                                          \
        for (int k = 0; k < 4; k++) MADD(a[r][k], w[k], wasm_v128_load(x + r * in + i + 4 * k)); \
    }                                                                                       \
    for (; i < in; i += 4) {                                                                \
      v128_t w = LOAD4(wrow, i);                                                            \
      for (int r = 0; r < NR; r++) MADD(a[r][0], w, wasm_v128_load(x + r * in + i));        \
    }                                                                                       \
    for (int r = 0; r < NR; r++)                                                            \
      res[r] = hsum(wasm_f32x4_add(wasm_f32x4_add(a[r][0], a[r][1]), wasm_f32x4_add(a[r][2], a[r][3]))); \
  }
DENSE_DOT(dot_f32, load16_f32, load4_f32)
DENSE_DOT(dot_f16, load16_f16, load4_f16)

// ---- quantized blocks: the 32 weights of block j as eight f32x4 (without the scale) --------------

INLINE v128_t i8_to_f32_lo_lo(v128_t v) { return wasm_f32x4_convert_i32x4(wasm_i32x4_extend_low_i16x8(wasm_i16x8_extend_low_i8x16(v))); }
INLINE v128_t i8_to_f32_lo_hi(v128_t v) { return wasm_f32x4_convert_i32x4(wasm_i32x4_extend_high_i16x8(wasm_i16x8_extend_low_i8x16(v))); }
INLINE v128_t i8_to_f32_hi_lo(v128_t v) { return wasm_f32x4_convert_i32x4(wasm_i32x4_extend_low_i16x8(wasm_i16x8_extend_high_i8x16(v))); }
INLINE v128_t i8_to_f32_hi_hi(v128_t v) { return wasm_f32x4_convert_i32x4(wasm_i32x4_extend_high_i16x8(wasm_i16x8_extend_high_i8x16(v))); }

INLINE void unpack16(v128_t v, v128_t* w) {
  w[0] = i8_to_f32_lo_lo(v);
  w[1] = i8_to_f32_lo_hi(v);
  w[2] = i8_to_f32_hi_lo(v);
  w[3] = i8_to_f32_hi_hi(v);
}

// Q8_0: 32 int8 quants per block.
INLINE void block_q8_0(const uint8_t* quants, int j, v128_t w[8]) {
  unpack16(wasm_v128_load(quants + 32 * j), w);
  unpack16(wasm_v128_load(quants + 32 * j + 16), w + 4);
}

// Q4_0: byte k holds q[k] (low nibble) and q[k + 16] (high nibble), 0..15 standing for q - 8.
INLINE void block_q4_0(const uint8_t* quants, int j, v128_t w[8]) {
  v128_t v = wasm_v128_load(quants + 16 * j);
  v128_t eight = wasm_i8x16_splat(8);
  unpack16(wasm_i8x16_sub(wasm_v128_and(v, wasm_i8x16_splat(0x0f)), eight), w);
  unpack16(wasm_i8x16_sub(wasm_u8x16_shr(v, 4), eight), w + 4);
}

#define QUANT_DOT(NAME, BLOCK)                                                               \
  INLINE void NAME(const uint8_t* quants, const uint16_t* scales, const float* x, int in, int NR, float* res) { \
    v128_t a[2][4];                                                                         \
    for (int r = 0; r < NR; r++)                                                            \
      for (int k = 0; k < 4; k++) a[r][k] = ZERO;                                           \
    for (int j = 0; j < in / 32; j++) {                                                     \
      v128_t w[8];                                                                          \
      BLOCK(quants, j, w);                                                                  \
      v128_t d = wasm_f32x4_splat(half_to_f32(scales[j]));                                  \
      for (int r = 0; r < NR; r++) {                                                        \
        v128_t b[4] = {ZERO, ZERO, ZERO, ZERO};                                             \
        for (int k = 0; k < 8; k++) MADD(b[k & 3], w[k], wasm_v128_load(x + r * in + 32 * j + 4 * k)); \
        for (int k = 0; k < 4; k++) MADD(a[r][k], d, b[k]);                                 \
      }                                                                                     \
    }                                                                                       \
    for (int r = 0; r < NR; r++)                                                            \
      res[r] = hsum(wasm_f32x4_add(wasm_f32x4_add(a[r][0], a[r][1]), wasm_f32x4_add(a[r][2], a[r][3]))); \
  }
QUANT_DOT(dot_q8_0, block_q8_0)
QUANT_DOT(dot_q4_0, block_q4_0)

INLINE void store(float* y, int out, int o, int NR, const float* res, const float* bias, int accumulate) {
  for (int r = 0; r < NR; r++) {
    float v = bias ? res[r] + bias[o] : res[r];
    if (accumulate) y[r * out + o] += v;
    else y[r * out + o] = v;
  }
}

// Outputs [o0, o1) of every row (a worker's share when the rows of W are split across threads).
// x [rows, in], y [rows, out]; bias may be 0; accumulate adds into y (the residual stream).
EXPORT(matmul)
void matmul(const float* x, int rows, int in, const void* w, int fmt, int out, float* y, const float* bias, int accumulate, int o0, int o1) {
  float res[2];
  if (fmt == FMT_F32 || fmt == FMT_F16) {
    int bytes = fmt == FMT_F32 ? 4 : 2;
    for (int o = o0; o < o1; o++) {
      const uint8_t* row = (const uint8_t*)w + (long)o * in * bytes;
      int r = 0;
      for (; r + 2 <= rows; r += 2) {
        if (fmt == FMT_F32) dot_f32(row, x + r * in, in, 2, res);
        else dot_f16(row, x + r * in, in, 2, res);
        store(y + r * out, out, o, 2, res, bias, accumulate);
      }
      if (r < rows) {
        if (fmt == FMT_F32) dot_f32(row, x + r * in, in, 1, res);
        else dot_f16(row, x + r * in, in, 1, res);
        store(y + r * out, out, o, 1, res, bias, accumulate);
      }
    }
    return;
  }
  int perRow = in / 32;
  int blockBytes = fmt == FMT_Q8_0 ? 32 : 16;
  const uint16_t* scales = (const uint16_t*)((const uint8_t*)w + (long)out * perRow * blockBytes);
  for (int o = o0; o < o1; o++) {
    const uint8_t* q = (const uint8_t*)w + (long)o * perRow * blockBytes;
    const uint16_t* sc = scales + o * perRow;
    int r = 0;
    for (; r + 2 <= rows; r += 2) {
      if (fmt == FMT_Q8_0) dot_q8_0(q, sc, x + r * in, in, 2, res);
      else dot_q4_0(q, sc, x + r * in, in, 2, res);
      store(y + r * out, out, o, 2, res, bias, accumulate);
    }
    if (r < rows) {
      if (fmt == FMT_Q8_0) dot_q8_0(q, sc, x + r * in, in, 1, res);
      else dot_q4_0(q, sc, x + r * in, in, 1, res);
      store(y + r * out, out, o, 1, res, bias, accumulate);
    }
  }
}
