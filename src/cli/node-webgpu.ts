// Running the project's WebGPU code in Node (the stage host, `npm run gpu:node`): Chromium's
// SwiftShader Vulkan driver for Dawn where there is no GPU driver, and Vite's SSR module loader for
// modules that import WGSL shaders with `?raw`.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createServer } from 'vite';

const repo = resolve(import.meta.dirname, '../..');
/** Where Debian's Chromium keeps its SwiftShader Vulkan driver (and a Vulkan loader). */
export const CHROMIUM_DIR = '/usr/lib/chromium';
const REEXEC = 'NODE_GPU_REEXEC';

function hasSystemVulkanLoader(): boolean {
  try {
    return execFileSync('ldconfig', ['-p'], { encoding: 'utf8' }).includes('libvulkan.so.1');
  } catch {
    return false;
  }
}

/**
 * Points the Vulkan loader at Chromium's SwiftShader driver. Returns true when this process must
 * restart (restartWithChromiumVulkan) because the Vulkan loader itself has to come from Chromium too.
 */
export function useSwiftShader(): boolean {
  const icd = join(CHROMIUM_DIR, 'vk_swiftshader_icd.json');
  if (!existsSync(icd)) throw new Error(`--swiftshader: ${icd} not found (apt-get install chromium)`);
  process.env.VK_ICD_FILENAMES = icd;
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  if (process.env[REEXEC]) {
    // The restarted process: leave when the parent is gone (killed), rather than live on unseen.
    const parent = process.ppid;
    setInterval(() => process.ppid !== parent && process.exit(1), 1000).unref();
    return false;
  }
  return !hasSystemVulkanLoader();
}

/**
 * Runs this program again with Chromium's Vulkan loader on LD_LIBRARY_PATH and resolves with its
 * exit code. Ctrl-C reaches both processes (one process group): this one waits for the child to
 * finish; SIGTERM is passed on.
 */
export function restartWithChromiumVulkan(): Promise<number> {
  const env = { ...process.env, [REEXEC]: '1', LD_LIBRARY_PATH: [CHROMIUM_DIR, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') };
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env });
  const onInt = (): void => undefined;
  const onTerm = (): void => void child.kill('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return new Promise((done) =>
    child.on('exit', (code, signal) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      done(code ?? (signal ? 1 : 0));
    }),
  );
}

/** Loads `modulePath` (from the repository root, e.g. '/src/cli/stage-host-main.ts') through Vite's SSR loader and runs `use` on it. */
export async function withViteModule<M>(modulePath: string, use: (mod: M) => Promise<number>): Promise<number> {
  const server = await createServer({
    configFile: false,
    root: repo,
    logLevel: 'error',
    appType: 'custom',
    server: { middlewareMode: true, hmr: false, ws: false },
    optimizeDeps: { noDiscovery: true, include: [] },
    ssr: { external: ['webgpu'] },
  });
  try {
    return await use((await server.ssrLoadModule(modulePath)) as M);
  } finally {
    await server.close();
  }
}
