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
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { build } from 'vite';
import { useSwiftShader, restartWithChromiumVulkan, withViteModule } from '../../src/cli/node-webgpu.ts';

const repo = resolve(import.meta.dirname, '../..');
const MAIN = 'e2e/node-gpu/node-gpu-main.ts';

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

async function run(argv: string[]): Promise<number> {
  if (argv[0] === 'bundle') {
    if (!argv[1] || argv[1].startsWith('--')) throw new Error('usage: bundle DIR [--portable]');
    await bundle(argv[1], argv.includes('--portable'));
    return 0;
  }
  const i = argv.indexOf('--swiftshader');
  if (i >= 0) {
    argv.splice(i, 1);
    if (useSwiftShader()) return restartWithChromiumVulkan();
  }
  return withViteModule<typeof import('./node-gpu-main.ts')>('/' + MAIN, (mod) => mod.main(argv));
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exit(1);
  },
);
