"""GGML block formats in numpy, written from ggml-quants.c (quantize_row_*_ref / dequantize_row_*):
the quantizers the GGUF writer uses and the reference dequantizers the TypeScript block parsers are
tested against (tests/model-gguf.test.ts). Plain loops over the C structs' fields, vectorised over
blocks only, so each line can be read next to the C.

Block byte layouts (little-endian):
  Q8_0  34 B / 32 values:   d f16 | qs int8[32]                      x = qs d
  Q4_0  18 B / 32 values:   d f16 | qs u8[16] (q[j] low, q[j+16] high) x = (q - 8) d
  Q4_K 144 B / 256 values:  d f16 | dmin f16 | scales u8[12] | qs u8[128]
        8 sub-blocks of 32 with 6-bit scale sc and min m: x = d sc q - dmin m, q 0..15
  Q6_K 210 B / 256 values:  ql u8[128] | qh u8[64] | scales int8[16] | d f16
        16 sub-blocks of 16: x = d sc (q - 32), q 0..63 (low 4 bits in ql, high 2 in qh)
"""
import numpy as np

QK = 32
QK_K = 256
BLOCK = {  # name -> (ggml type id, values per block, bytes per block)
    'F32': (0, 1, 4),
    'F16': (1, 1, 2),
    'Q4_0': (2, 32, 18),
    'Q8_0': (8, 32, 34),
    'Q4_K': (12, 256, 144),
    'Q6_K': (14, 256, 210),
    'BF16': (30, 1, 2),
}
TYPE_NAME = {v[0]: k for k, v in BLOCK.items()}


def _f16(x):
    return np.asarray(x, dtype=np.float32).astype(np.float16)


def _roundf(x):
    """C roundf: halves away from zero (numpy's round is to even)."""
    return np.sign(x) * np.floor(np.abs(x) + np.float32(0.5))


def _blocks(x, n):
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape[-1] % n:
        raise ValueError(f'row length {x.shape[-1]} is not a multiple of {n}')
    return x.reshape(-1, n)


# ---- Q8_0 / Q4_0: quantize_row_q8_0_ref, quantize_row_q4_0_ref --------------------------------

def quantize_q8_0(x):
    b = _blocks(x, QK)
    d = np.abs(b).max(axis=1, keepdims=True) / np.float32(127)
    with np.errstate(divide='ignore'):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    q = _roundf(b * inv).astype(np.int8)
    return np.concatenate([_f16(d).view(np.uint8), q.view(np.uint8)], axis=1).reshape(-1)


def quantize_q4_0(x):
    b = _blocks(x, QK)
    imax = np.abs(b).argmax(axis=1)[:, None]          # first on ties, as the C loop's `>`
    mx = np.take_along_axis(b, imax, axis=1)
    d = mx / np.float32(-8)
    with np.errstate(divide='ignore'):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    q = np.minimum(np.trunc(b * inv + np.float32(8.5)), 15).astype(np.uint8)
    qs = q[:, :16] | (q[:, 16:] << 4)
    return np.concatenate([_f16(d).view(np.uint8), qs], axis=1).reshape(-1)


def dequantize_q8_0(raw):
    b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 34)
    d = b[:, 0:2].copy().view(np.float16).astype(np.float32)
    q = b[:, 2:].copy().view(np.int8).astype(np.float32)
    return (q * d).reshape(-1)


def dequantize_q4_0(raw):
    b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
    d = b[:, 0:2].copy().view(np.float16).astype(np.float32)
    qs = b[:, 2:]
    y = np.empty((b.shape[0], 32), dtype=np.float32)
    for j in range(16):
        y[:, j] = ((qs[:, j] & 0x0F).astype(np.float32) - 8) * d[:, 0]
        y[:, j + 16] = ((qs[:, j] >> 4).astype(np.float32) - 8) * d[:, 0]
    return y.reshape(-1)


# ---- Q4_K ---------------------------------------------------------------------------------------
# The quantizer is a simple min/max one (not llama.cpp's make_qkx2_quants search): it writes valid
# blocks that any GGML reader decodes the same way; only the rounding choices differ.

def quantize_q4_k(x):
    b = _blocks(x, QK_K)
    n = b.shape[0]
    sub = b.reshape(n, 8, 32)
    lo = np.minimum(sub.min(axis=2), 0)                # x = d sc q - dmin m with m >= 0
    hi = np.maximum(sub.max(axis=2), lo)
    scale = (hi - lo) / np.float32(15)
    d = _f16(scale.max(axis=1) / 63)
    dmin = _f16((-lo).max(axis=1) / 63)
    d32, dmin32 = d.astype(np.float32), dmin.astype(np.float32)
    with np.errstate(divide='ignore', invalid='ignore'):
        sc = np.where(d32[:, None] > 0, np.clip(_roundf(scale / d32[:, None]), 0, 63), 0).astype(np.uint8)
        m = np.where(dmin32[:, None] > 0, np.clip(_roundf(-lo / dmin32[:, None]), 0, 63), 0).astype(np.uint8)
        step = d32[:, None] * sc                       # per sub-block, as the decoder computes it
        off = dmin32[:, None] * m
        q = np.where(step[:, :, None] > 0, _roundf((sub + off[:, :, None]) / step[:, :, None]), 0)
    q = np.clip(q, 0, 15).astype(np.uint8)
    scales = np.zeros((n, 12), dtype=np.uint8)
    for j in range(4):                                 # inverse of get_scale_min_k4
        scales[:, j] = (sc[:, j] & 63) | ((sc[:, j + 4] >> 4) << 6)
        scales[:, j + 4] = (m[:, j] & 63) | ((m[:, j + 4] >> 4) << 6)
        scales[:, j + 8] = (sc[:, j + 4] & 0x0F) | ((m[:, j + 4] & 0x0F) << 4)
    qs = np.empty((n, 128), dtype=np.uint8)
    for j in range(4):                                 # 64 values per 32 bytes: low then high nibbles
        qs[:, 32 * j:32 * j + 32] = q[:, 2 * j] | (q[:, 2 * j + 1] << 4)
    return np.concatenate([d.reshape(n, 1).view(np.uint8), dmin.reshape(n, 1).view(np.uint8), scales, qs], axis=1).reshape(-1)


def _scale_min_k4(j, q):
    """get_scale_min_k4 in ggml-quants.c."""
    if j < 4:
        return q[:, j] & 63, q[:, j + 4] & 63
    return ((q[:, j + 4] & 0x0F) | ((q[:, j - 4] >> 6) << 4),
            (q[:, j + 4] >> 4) | ((q[:, j] >> 6) << 4))


def dequantize_q4_k(raw):
    b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 144)
    d = b[:, 0:2].copy().view(np.float16).astype(np.float32)[:, 0]
    dmin = b[:, 2:4].copy().view(np.float16).astype(np.float32)[:, 0]
    scales, qs = b[:, 4:16], b[:, 16:]
    y = np.empty((b.shape[0], 256), dtype=np.float32)
    for j in range(4):
        sc1, m1 = _scale_min_k4(2 * j, scales)
        sc2, m2 = _scale_min_k4(2 * j + 1, scales)
        d1, mm1 = d * sc1, dmin * m1
        d2, mm2 = d * sc2, dmin * m2
        q = qs[:, 32 * j:32 * j + 32]
        y[:, 64 * j:64 * j + 32] = d1[:, None] * (q & 0x0F) - mm1[:, None]
        y[:, 64 * j + 32:64 * j + 64] = d2[:, None] * (q >> 4) - mm2[:, None]
    return y.reshape(-1)


# ---- Q6_K ---------------------------------------------------------------------------------------

def quantize_q6_k(x):
    b = _blocks(x, QK_K)
    n = b.shape[0]
    sub = b.reshape(n, 16, 16)
    scale = np.abs(sub).max(axis=2) / np.float32(31)   # q - 32 in [-31, 31] before the int8 scale
    d = _f16(scale.max(axis=1) / 127)
    d32 = d.astype(np.float32)
    with np.errstate(divide='ignore', invalid='ignore'):
        sc = np.where(d32[:, None] > 0, np.clip(_roundf(scale / d32[:, None]), 0, 127), 0).astype(np.int8)
        step = d32[:, None] * sc.astype(np.float32)
        q = np.where(step[:, :, None] > 0, _roundf(sub / step[:, :, None]), 0)
    q = (np.clip(q, -32, 31) + 32).astype(np.uint8).reshape(n, 256)
    ql = np.empty((n, 128), dtype=np.uint8)
    qh = np.empty((n, 64), dtype=np.uint8)
    for h in range(2):                                 # inverse of dequantize_row_q6_K's loop
        q1, q2, q3, q4 = (q[:, 128 * h + 32 * k:128 * h + 32 * k + 32] for k in range(4))
        ql[:, 64 * h:64 * h + 32] = (q1 & 0x0F) | ((q3 & 0x0F) << 4)
        ql[:, 64 * h + 32:64 * h + 64] = (q2 & 0x0F) | ((q4 & 0x0F) << 4)
        qh[:, 32 * h:32 * h + 32] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
    return np.concatenate([ql, qh, sc.view(np.uint8), d.reshape(n, 1).view(np.uint8)], axis=1).reshape(-1)


def dequantize_q6_k(raw):
    b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 210)
    ql_all, qh_all = b[:, 0:128], b[:, 128:192]
    sc_all = b[:, 192:208].copy().view(np.int8).astype(np.float32)
    d = b[:, 208:210].copy().view(np.float16).astype(np.float32)[:, 0]
    y = np.empty((b.shape[0], 256), dtype=np.float32)
    for h in range(2):
        ql, qh, sc = ql_all[:, 64 * h:], qh_all[:, 32 * h:], sc_all[:, 8 * h:]
        for l in range(32):
            i = l // 16
            q1 = ((ql[:, l] & 0x0F) | (((qh[:, l] >> 0) & 3) << 4)).astype(np.float32) - 32
            q2 = ((ql[:, l + 32] & 0x0F) | (((qh[:, l] >> 2) & 3) << 4)).astype(np.float32) - 32
            q3 = ((ql[:, l] >> 4) | (((qh[:, l] >> 4) & 3) << 4)).astype(np.float32) - 32
            q4 = ((ql[:, l + 32] >> 4) | (((qh[:, l] >> 6) & 3) << 4)).astype(np.float32) - 32
            y[:, 128 * h + l] = d * sc[:, i] * q1
            y[:, 128 * h + l + 32] = d * sc[:, i + 2] * q2
            y[:, 128 * h + l + 64] = d * sc[:, i + 4] * q3
            y[:, 128 * h + l + 96] = d * sc[:, i + 6] * q4
    return y.reshape(-1)


# ---- dense --------------------------------------------------------------------------------------

def to_bf16(x):
    """f32 -> bf16 bits, round to nearest even (as torch and ggml_fp32_to_bf16 do for finite x)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16).reshape(-1)


def quantize(x, type_name):
    """f32 values (rows along the last axis) -> the bytes GGUF stores for `type_name`."""
    x = np.asarray(x, dtype=np.float32)
    if type_name == 'F32':
        return x.astype('<f4').reshape(-1).view(np.uint8)
    if type_name == 'F16':
        return x.astype('<f2').reshape(-1).view(np.uint8)
    if type_name == 'BF16':
        return to_bf16(x).view(np.uint8)
    return {'Q8_0': quantize_q8_0, 'Q4_0': quantize_q4_0, 'Q4_K': quantize_q4_k, 'Q6_K': quantize_q6_k}[type_name](x)


def dequantize(raw, type_name):
    """GGUF tensor bytes -> f32 values (flat)."""
    raw = np.ascontiguousarray(np.frombuffer(bytes(raw), dtype=np.uint8))
    if type_name == 'F32':
        return raw.view('<f4').astype(np.float32)
    if type_name == 'F16':
        return raw.view('<f2').astype(np.float32)
    if type_name == 'BF16':
        return (raw.view('<u2').astype(np.uint32) << 16).view(np.float32)
    return {'Q8_0': dequantize_q8_0, 'Q4_0': dequantize_q4_0, 'Q4_K': dequantize_q4_k, 'Q6_K': dequantize_q6_k}[type_name](raw)
