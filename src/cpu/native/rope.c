// RoPE at KV-write time: each row's q and k heads rotate by the row's own position (Hugging Face's
// rotate_half pairs (i, i + hd/2)), then k and v go into the row's KV slot, where they stay.
#include "kernels.h"

INLINE void rotate(float* x, int heads, int hd, const float* cs) {
  int half = hd / 2;
  for (int h = 0; h < heads; h++) {
    float* v = x + h * hd;
    for (int i = 0; i < half; i++) {
      float c = cs[2 * i], s = cs[2 * i + 1];
      float a = v[i], d = v[i + half];
      v[i] = a * c - d * s;
      v[i + half] = d * c + a * s;
    }
  }
}

// qkv [rows, (nH + 2 nKv) hd] (q, k, v per row); table [maxPos, hd/2] of (cos, sin);
// K, V [numSlots, nKv hd]. q is rotated in place.
EXPORT(rope_kv)
void rope_kv(float* qkv, int rows, const int32_t* positions, const int32_t* slots, const float* table, int nH, int nKv, int hd, float* K, float* V) {
  int qDim = nH * hd, kvDim = nKv * hd, stride = qDim + 2 * kvDim;
  for (int r = 0; r < rows; r++) {
    float* q = qkv + r * stride;
    const float* cs = table + (long)positions[r] * hd;
    rotate(q, nH, hd, cs);
    rotate(q + qDim, nKv, hd, cs);
    float* k = K + (long)slots[r] * kvDim;
    float* v = V + (long)slots[r] * kvDim;
    for (int i = 0; i < kvDim; i++) {
      k[i] = q[qDim + i];
      v[i] = q[qDim + kvDim + i];
    }
  }
}
