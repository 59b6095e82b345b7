// Attention of each row over its own list of KV slots: the committed slots (commit order), then its
// tree ancestors (root to parent), then itself. Softmax in f32 with the maximum subtracted; GQA:
// query head h reads kv head h / (nH / nKv).
#include "kernels.h"

#define MAX_HD 256

// qkv [rows, (nH + 2 nKv) hd] (q already rotated); lists: the slot lists of all rows back to back,
// row r's at listOff[r], listLen[r] long; scores: scratch of at least max(listLen) floats;
// out [rows, nH hd].
EXPORT(attention)
void attention(const float* qkv, int rows, const int32_t* lists, const int32_t* listOff, const int32_t* listLen, const float* K, const float* V, int nH, int nKv, int hd,
               float scale, float* scores, float* out) {
  int qDim = nH * hd, kvDim = nKv * hd, stride = qDim + 2 * kvDim, group = nH / nKv;
  v128_t acc[MAX_HD / 4];
  for (int r = 0; r < rows; r++) {
    const int32_t* list = lists + listOff[r];
    int n = listLen[r];
    for (int h = 0; h < nH; h++) {
      const float* q = qkv + r * stride + h * hd;
      int kvOff = (h / group) * hd;
      float m = -__builtin_inff();
      for (int j = 0; j < n; j++) {
        const float* k = K + (long)list[j] * kvDim + kvOff;
        v128_t a = wasm_f32x4_splat(0.0f);
        for (int d = 0; d < hd; d += 4) a = wasm_f32x4_add(a, wasm_f32x4_mul(wasm_v128_load(q + d), wasm_v128_load(k + d)));
        float s = hsum(a) * scale;
        scores[j] = s;
        if (s > m) m = s;
      }
      float l = 0.0f;
      for (int j = 0; j < n; j++) {
        scores[j] = expf_(scores[j] - m);
        l += scores[j];
      }
      for (int d = 0; d < hd / 4; d++) acc[d] = wasm_f32x4_splat(0.0f);
      for (int j = 0; j < n; j++) {
        const float* v = V + (long)list[j] * kvDim + kvOff;
        v128_t p = wasm_f32x4_splat(scores[j]);
        for (int d = 0; d < hd / 4; d++) acc[d] = wasm_f32x4_add(acc[d], wasm_f32x4_mul(p, wasm_v128_load(v + 4 * d)));
      }
      v128_t il = wasm_f32x4_splat(1.0f / l);
      float* o = out + r * qDim + h * hd;
      for (int d = 0; d < hd / 4; d++) wasm_v128_store(o + 4 * d, wasm_f32x4_mul(acc[d], il));
    }
  }
}
