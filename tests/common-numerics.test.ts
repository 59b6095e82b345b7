import { describe, expect, it } from 'vitest';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../src/common/numerics.ts';

describe('f16 conversions', () => {
  it('matches known bit patterns', () => {
    const cases: [number, number][] = [
      [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -24 * 1023, 0x03ff], // largest subnormal
      [1 / 3, 0x3555], [Math.PI, 0x4248], [0.1, 0x2e66],
      [Infinity, 0x7c00], [-Infinity, 0xfc00],
    ];
    for (const [v, bits] of cases) {
      expect(f32ToF16Bits(v), `f32ToF16Bits(${v})`).toBe(bits);
      expect(f16BitsToF32(bits), `f16BitsToF32(0x${bits.toString(16)})`).toBe(Math.fround(v) === v ? v : f16BitsToF32(bits));
    }
    expect(f16BitsToF32(0x3555)).toBeCloseTo(0.333251953125, 12);
  });

  it('rounds to nearest even, overflows to Inf, flushes tiny values to zero', () => {
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // exact tie -> even (down)
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie -> even (up)
    expect(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // above tie -> up
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // rounds past max -> Inf
    expect(f32ToF16Bits(65519)).toBe(0x7bff);
    expect(f32ToF16Bits(1e6)).toBe(0x7c00);
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // tie between 0 and smallest subnormal -> even (0)
    expect(f32ToF16Bits(2 ** -25 * 1.5)).toBe(0x0001);
    expect(f32ToF16Bits(2 ** -14 - 2 ** -25)).toBe(0x0400); // largest subnormal + half ulp -> smallest normal (even)
    expect(f32ToF16Bits(1e-10)).toBe(0);
    expect(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN)))).toBe(true);
  });

  it('round-trips every finite f16 value', () => {
    const bad: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00) continue;
      if (f32ToF16Bits(f16BitsToF32(h)) !== h) bad.push(h);
    }
    expect(bad).toEqual([]);
  });
});

describe('bf16 conversions', () => {
  it('matches known bit patterns', () => {
    expect(bf16BitsToF32(0x3f80)).toBe(1);
    expect(bf16BitsToF32(0xc000)).toBe(-2);
    expect(bf16BitsToF32(0x4049)).toBe(3.140625);
    expect(bf16BitsToF32(0x7f80)).toBe(Infinity);
    expect(bf16BitsToF32(0x0001)).toBe(2 ** -133); // subnormal
    expect(f32ToBf16Bits(Math.PI)).toBe(0x4049);
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
  });

  it('bf16 -> f16 rounds once, correctly', () => {
    // bf16 0x3f81 = 1.0078125 is exact in f16 (0x3c08); bf16 0x4780 = 65536 overflows f16.
    expect(f32ToF16Bits(bf16BitsToF32(0x3f81))).toBe(0x3c08);
    expect(f32ToF16Bits(bf16BitsToF32(0x4780))).toBe(0x7c00);
    // bf16 of 2^-20 (0x3580) is an f16 subnormal: 2^-20 / 2^-24 = 16.
    expect(f32ToF16Bits(bf16BitsToF32(0x3580))).toBe(16);
  });
});
