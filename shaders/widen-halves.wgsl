// Four IEEE halves (two per u32, low half first) to f32, exact for every finite half, subnormals
// included (inf/NaN are not expected in weights). Integer ops only, with no f32 denormal on the way
// (adapters may flush those): the same values as unpack2x16float, and faster on SwiftShader.
// src/gpu/kernels.ts appends this file to the f16 and quantized variants of the weight-reading kernels.
fn widenHalves(p: vec2<u32>) -> vec4<f32> {
  // Exponent + mantissa of each half moved to bits 13..27, the sign to bit 31.
  let lo = (p << vec2<u32>(13u)) & vec2<u32>(0x0fffe000u);
  let hi = (p >> vec2<u32>(3u)) & vec2<u32>(0x0fffe000u);
  let mag = vec4<u32>(lo.x, hi.x, lo.y, hi.y);
  let sgn = vec4<u32>(p.x << 16u, p.x, p.y << 16u, p.y) & vec4<u32>(0x80000000u);
  // Normal: rebias the exponent by 112. Subnormal: m * 2^-24 = (2^-14 + m * 2^-24) - 2^-14.
  let nrm = bitcast<vec4<f32>>(mag + vec4<u32>(0x38000000u));
  let sub = bitcast<vec4<f32>>(mag + vec4<u32>(0x38800000u)) - vec4<f32>(6.103515625e-05);
  let f = select(nrm, sub, (mag & vec4<u32>(0x0f800000u)) == vec4<u32>(0u));
  return bitcast<vec4<f32>>(bitcast<vec4<u32>>(f) | sgn);
}

// One half (the low 16 bits of h) to f32, exact in the same way: the scales of quantized blocks.
fn widenHalf(h: u32) -> f32 {
  let mag = (h << 13u) & 0x0fffe000u;
  let sub = bitcast<f32>(mag + 0x38800000u) - 6.103515625e-05;
  let f = select(bitcast<f32>(mag + 0x38000000u), sub, (mag & 0x0f800000u) == 0u);
  return bitcast<f32>(bitcast<u32>(f) | ((h << 16u) & 0x80000000u));
}
