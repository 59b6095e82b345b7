// The last stage's token choice, step for step and sum for sum as shaders/sample.wgsl (whose CPU
// statement is tests/support/cpu-reference.ts refSample): argmax (lowest id on ties) at
// temperature <= 0; otherwise p_i = e^(l_i / T - max / T), top-k then top-p thresholds on an
// order-preserving u32 key of the logits (found by bisection on the key bits, ties kept), then the
// inverse CDF with the caller's uniform over the kept ids in ascending order. Masses are summed as
// the GPU's 256 threads do: chunk t holds ids [t C, (t + 1) C), C = ceil(V / 256), each chunk
// summed in id order, then the chunks in order.
#include "kernels.h"

#define THREADS 256

INLINE uint32_t key(float f) {
  uint32_t b = as_u32(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

static float chunk_sums(const float* p, const uint32_t* keys, int V, int C, uint32_t thr, float* sums) {
  float tot = 0.0f;
  for (int t = 0; t < THREADS; t++) {
    float acc = 0.0f;
    int c0 = t * C < V ? t * C : V, c1 = c0 + C < V ? c0 + C : V;
    for (int i = c0; i < c1; i++)
      if (keys[i] >= thr) acc += p[i];
    sums[t] = acc;
    tot += acc;
  }
  return tot;
}

// logits [V]; p, keys: scratch of V floats / u32; sums: scratch of 256 floats.
EXPORT(sample)
int sample(const float* logits, int V, float temp, uint32_t topK, float topP, float u, float* p, uint32_t* keys, float* sums) {
  int best = 0;
  for (int i = 1; i < V; i++)
    if (logits[i] > logits[best]) best = i;
  if (!(temp > 0.0f)) return best;
  float mz = logits[best] / temp;
  for (int i = 0; i < V; i++) {
    keys[i] = key(logits[i]);
    p[i] = expf_(logits[i] / temp - mz);
  }
  int C = (V + THREADS - 1) / THREADS;
  uint32_t thrK = 0;
  if (topK > 0 && topK < (uint32_t)V) {
    for (int bit = 31; bit >= 0; bit--) {
      uint32_t cand = thrK | (1u << bit);
      uint32_t c = 0;
      for (int i = 0; i < V; i++) c += keys[i] >= cand;
      if (c >= topK) thrK = cand;
    }
  }
  uint32_t thr = thrK;
  if (topP < 1.0f) {
    float goal = topP * chunk_sums(p, keys, V, C, thrK, sums);
    uint32_t t2 = 0;
    for (int bit = 31; bit >= 0; bit--) {
      uint32_t cand = t2 | (1u << bit);
      if (chunk_sums(p, keys, V, C, thrK > cand ? thrK : cand, sums) >= goal) t2 = cand;
    }
    thr = thrK > t2 ? thrK : t2;
  }
  float goal = u * chunk_sums(p, keys, V, C, thr, sums);
  float cum = 0.0f;
  int chunk = 0;
  for (int k = 0; k < THREADS; k++) {
    float next = cum + sums[k];
    if (next > goal) {
      chunk = k;
      break;
    }
    cum = next;
    chunk = k + 1;
  }
  for (int i = chunk * C < V ? chunk * C : V; i < V; i++) {
    if (keys[i] >= thr) {
      cum += p[i];
      if (cum > goal) return i;
    }
  }
  return best;
}
