// Row-wise element kernels: embedding lookup, RMSNorm, silu(gate) * up.
#include "kernels.h"

// out[r] = E[tokens[r]] for an f32 or f16 embedding [vocab, H].
EXPORT(embed)
void embed(const int32_t* tokens, int rows, const void* E, int fmt, int H, float* out) {
  for (int r = 0; r < rows; r++) {
    long base = (long)tokens[r] * H;
    float* o = out + r * H;
    if (fmt == FMT_F32) {
      const float* e = (const float*)E + base;
      for (int i = 0; i < H; i++) o[i] = e[i];
    } else {
      const uint16_t* e = (const uint16_t*)E + base;
      for (int i = 0; i < H; i++) o[i] = half_to_f32(e[i]);
    }
  }
}

// out[r, i] = (x[r, i] / sqrt(mean(x[r]^2) + eps)) * w[i]; H a multiple of 4.
EXPORT(rmsnorm)
void rmsnorm(const float* x, int rows, int H, const float* w, float eps, float* out) {
  for (int r = 0; r < rows; r++) {
    const float* xr = x + r * H;
    v128_t acc = wasm_f32x4_splat(0.0f);
    for (int i = 0; i < H; i += 4) {
      v128_t v = wasm_v128_load(xr + i);
      acc = wasm_f32x4_add(acc, wasm_f32x4_mul(v, v));
    }
    float inv = 1.0f / __builtin_sqrtf(hsum(acc) / (float)H + eps);
    v128_t s = wasm_f32x4_splat(inv);
    for (int i = 0; i < H; i += 4) {
      v128_t v = wasm_f32x4_mul(wasm_v128_load(xr + i), s);
      wasm_v128_store(out + r * H + i, wasm_f32x4_mul(v, wasm_v128_load(w + i)));
    }
  }
}

// g[i] = silu(g[i]) * u[i], silu(v) = v / (1 + e^-v).
EXPORT(silu_mul)
void silu_mul(float* g, const float* u, int n) {
  for (int i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf_(-g[i])) * u[i];
}
