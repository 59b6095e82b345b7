// WebGPU in Node: navigator.gpu (and the GPU* globals) from Dawn, the `webgpu` package, over
// whatever Vulkan driver the loader finds (see node-webgpu.ts for Chromium's SwiftShader). Imported
// by modules that run under Vite's SSR loader (the stage host, e2e/node-gpu) and by their bundles.
import { create, globals } from 'webgpu';

let gpuInstance: GPU | undefined;

/** navigator.gpu (and the GPU* globals: GPUBufferUsage, GPUMapMode, GPUBuffer...) from Dawn. */
export function installWebGpu(dawnFlags: string[] = []): GPU {
  Object.assign(globalThis, globals);
  gpuInstance = create(dawnFlags) as GPU;
  const nav = (globalThis as { navigator?: object }).navigator;
  if (nav) Object.defineProperty(nav, 'gpu', { value: gpuInstance, configurable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu: gpuInstance }, configurable: true });
  return gpuInstance;
}
