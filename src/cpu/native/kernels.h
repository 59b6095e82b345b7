// Shared helpers of the CPU kernels: types, exports, f16 widening and expf (no libc here).
#pragma once
#include <stdint.h>
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name)))
#define INLINE static inline __attribute__((always_inline))

// Weight formats, as WasmStage passes them (src/cpu/wasm-stage.ts FORMAT).
enum { FMT_F32 = 0, FMT_F16 = 1, FMT_Q8_0 = 2, FMT_Q4_0 = 3 };

INLINE float as_f32(uint32_t u) { return __builtin_bit_cast(float, u); }
INLINE uint32_t as_u32(float f) { return __builtin_bit_cast(uint32_t, f); }

// An IEEE half to f32, exact for every finite half (subnormals and -0 too): the magnitude's bits
// moved into f32 position, scaled by 2^112 (an exact power-of-two product), then the sign.
INLINE float half_to_f32(uint16_t h) {
  return as_f32(as_u32(as_f32((uint32_t)(h & 0x7fff) << 13) * 0x1p112f) | ((uint32_t)(h & 0x8000) << 16));
}

// The same on four halves widened to u32 lanes. (Rebasing the exponent in the integer bits with a
// select for subnormal halves avoids f32 subnormal products, but measured 3-5x slower in V8.)
INLINE v128_t halves_to_f32x4(v128_t h32) {
  v128_t mag = wasm_i32x4_shl(wasm_v128_and(h32, wasm_i32x4_splat(0x7fff)), 13);
  v128_t v = wasm_f32x4_mul(mag, wasm_f32x4_splat(0x1p112f));
  return wasm_v128_or(v, wasm_i32x4_shl(wasm_v128_and(h32, wasm_i32x4_splat(0x8000)), 16));
}

// e^x in f32 to ~1 ulp: x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two for an exact product),
// a degree-6 Taylor/minimax polynomial for e^r, then 2^n through the exponent bits. Underflows to 0
// below -87.3 (no subnormal results); overflows to +inf above 88.7.
INLINE float expf_(float x) {
  if (x < -87.33654f) return 0.0f;
  if (x > 88.72283f) return __builtin_inff();
  float n = __builtin_rintf(x * 1.44269504f);
  float r = x - n * 0.693145752f;
  r = r - n * 1.42860677e-6f;
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666418f + r * (0.00833345205f + r * 0.00138888013f)))));
  int32_t e = (int32_t)n;
  // 2^n in two factors so that n = -127 or 128 (after rounding at the clamps) stays representable.
  int32_t e1 = e / 2;
  return p * as_f32((uint32_t)(e1 + 127) << 23) * as_f32((uint32_t)(e - e1 + 127) << 23);
}

// Sum of the four lanes in a fixed order: (l0 + l1) + (l2 + l3).
INLINE float hsum(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) + (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}
