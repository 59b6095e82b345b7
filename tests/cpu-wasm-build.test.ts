// The checked-in WebAssembly module is what clang builds from src/cpu/native/*.c: rebuilt here when
// the same clang is on PATH (CI installs it), and the base64 module the code imports holds the same bytes.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { MODULE_PATH, WASM_MT_PATH, WASM_PATH, clangVersion, compileKernels, wasmModuleSource } from '../tools/wasm/build-wasm.ts';
import { KERNELS_MT_WASM_BASE64, KERNELS_WASM_BASE64 } from '../src/cpu/kernels-wasm.ts';

const checkedIn = readFileSync(WASM_PATH);
const checkedInMt = readFileSync(WASM_MT_PATH);
const built = readFileSync(MODULE_PATH, 'utf8').match(/ with (.*)\.\n/)?.[1] ?? '';
const clang = clangVersion();

describe('CPU kernels module', () => {
  it('src/cpu/kernels-wasm.ts holds the bytes of src/cpu/native/kernels.wasm and kernels-mt.wasm', () => {
    expect(Buffer.from(KERNELS_WASM_BASE64, 'base64').equals(checkedIn)).toBe(true);
    expect(Buffer.from(KERNELS_MT_WASM_BASE64, 'base64').equals(checkedInMt)).toBe(true);
    expect(readFileSync(MODULE_PATH, 'utf8')).toBe(wasmModuleSource(checkedIn, checkedInMt, built));
  });

  it.skipIf(clang === null || clang !== built)(`rebuilds byte-identical with ${built}`, () => {
    expect(compileKernels().equals(checkedIn)).toBe(true);
    expect(compileKernels(true).equals(checkedInMt)).toBe(true);
  });

  it('imports only its memory and exports the kernels (the threaded one: also its stack pointer)', () => {
    const kernels = ['__heap_base', 'attention', 'embed', 'matmul', 'rmsnorm', 'rope_kv', 'sample', 'silu_mul'];
    const mod = new WebAssembly.Module(checkedIn);
    expect(WebAssembly.Module.imports(mod)).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
    expect(WebAssembly.Module.exports(mod).map((e) => e.name).sort()).toEqual(kernels);
    const mt = new WebAssembly.Module(checkedInMt);
    expect(WebAssembly.Module.imports(mt)).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
    expect(WebAssembly.Module.exports(mt).map((e) => e.name).sort()).toEqual(['__stack_pointer', ...kernels].sort());
  });
});
