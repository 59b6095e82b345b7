// `npm run gpu:node -- [info] [test] [bench] [--swiftshader] [options]`: the kernel suite and the
// kernel benchmark in Node on Dawn (`webgpu` package) over Vulkan, without a browser. Loads
// e2e/node-gpu/node-gpu-main.ts through Vite's SSR module loader (the shaders are `?raw` imports).
//   --swiftshader   use Chromium's SwiftShader Vulkan driver (/usr/lib/chromium), as on the
//                   development machines; otherwise the Vulkan loader picks the driver
//                   (VK_DRIVER_FILES / VK_ICD_FILENAMES).
// `npm run gpu:node -- bundle DIR [--portable]`: writes DIR/node-gpu.mjs (one file, shaders inlined)
// and DIR/node_modules/webgpu (index.js + the linux-x64 dawn.node) for a machine with only `node`:
//   node DIR/node-gpu.mjs info test bench --json out.json
// (--portable: compressed, with a Node binary; see e2e/node-gpu/node-gpu-device.sh for a GPU machine.)
import { spawnSync, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { createServer, build } from 'vite';

const repo = resolve(import.meta.dirname, '../..');
const MAIN = 'e2e/node-gpu/node-gpu-main.ts';
const CHROMIUM_DIR = '/usr/lib/chromium';

/**
 * DIR/node-gpu.mjs + DIR/node_modules/webgpu. `portable`: dawn.node xz-compressed (DIR/.../dawn.node.xz)
 * and this Node binary beside it as DIR/node.xz, for a machine with no Node (e2e/node-gpu/node-gpu-device.sh
 * unpacks both).
 */
async function bundle(dir: string, portable: boolean): Promise<void> {
  const out = resolve(dir);
  await build({
    configFile: false,
    root: repo,
    publicDir: false,
    logLevel: 'warn',
    ssr: { external: ['webgpu'], noExternal: [] },
    build: {
      ssr: resolve(repo, MAIN),
      outDir: out,
      emptyOutDir: false,
      target: 'node20',
      minify: false,
      rollupOptions: { output: { entryFileNames: 'node-gpu.mjs', format: 'es' } },
    },
  });
  const pkg = join(repo, 'node_modules/webgpu');
  const dst = join(out, 'node_modules/webgpu');
  mkdirSync(join(dst, 'dist/linux-x64'), { recursive: true });
  for (const f of ['index.js', 'package.json', 'LICENSE.md']) cpSync(join(pkg, f), join(dst, f));
  const dawn = 'dist/linux-x64/dawn.node';
  if (portable) {
    rmSync(join(dst, dawn), { force: true });
    writeFileSync(join(dst, dawn + '.xz'), execFileSync('xz', ['-6', '-T2', '-c', join(pkg, dawn)], { maxBuffer: 1 << 30 }));
    writeFileSync(join(out, 'node.xz'), execFileSync('xz', ['-6', '-T2', '-c', process.execPath], { maxBuffer: 1 << 30 }));
  } else {
    cpSync(join(pkg, dawn), join(dst, dawn));
  }
  console.log(`wrote ${join(out, 'node-gpu.mjs')} and ${dst} (run: node ${join(out, 'node-gpu.mjs')} info test bench)`);
}

function hasSystemVulkanLoader(): boolean {
  try {
    return execFileSync('ldconfig', ['-p'], { encoding: 'utf8' }).includes('libvulkan.so.1');
  } catch {
    return false;
  }
}

/** SwiftShader's ICD from Chromium; the process is restarted once if the Vulkan loader must come from there too. */
function useSwiftShader(): void {
  const icd = join(CHROMIUM_DIR, 'vk_swiftshader_icd.json');
  if (!existsSync(icd)) throw new Error(`--swiftshader: ${icd} not found (apt-get install chromium)`);
  process.env.VK_ICD_FILENAMES = icd;
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  if (!hasSystemVulkanLoader() && !process.env.NODE_GPU_REEXEC) {
    const env = { ...process.env, NODE_GPU_REEXEC: '1', LD_LIBRARY_PATH: [CHROMIUM_DIR, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') };
    const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env });
    process.exit(r.status ?? 1);
  }
}

async function run(argv: string[]): Promise<number> {
  if (argv[0] === 'bundle') {
    if (!argv[1] || argv[1].startsWith('--')) throw new Error('usage: bundle DIR [--portable]');
    await bundle(argv[1], argv.includes('--portable'));
    return 0;
  }
  const i = argv.indexOf('--swiftshader');
  if (i >= 0) {
    argv.splice(i, 1);
    useSwiftShader();
  }
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
    const mod = (await server.ssrLoadModule('/' + MAIN)) as typeof import('./node-gpu-main.ts');
    return await mod.main(argv);
  } finally {
    await server.close();
  }
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exit(1);
  },
);
