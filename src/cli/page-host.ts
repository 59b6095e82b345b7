// Hosts the app for command-line tools: a Vite dev server on a free port (with an optional local
// model directory mounted) and headless Chromium processes pointed at it.
import { createServer, type ViteDevServer } from 'vite';
import { chromium, type Browser, type Page } from '@playwright/test';
import { existsSync, statSync } from 'node:fs';
import { resolve, relative, sep } from 'node:path';
import { findChromium, chromiumArgs } from './browser.ts';
import { serveModelDir } from './model-files.ts';

export const LOCAL_MODEL_PREFIX = '/@local-model/';

export interface PageHost {
  baseUrl: string;
  /** URL the browser loads the model from. */
  modelUrl: string;
  browsers: Browser[];
  newPage(browserIndex?: number): Promise<Page>;
  close(): Promise<void>;
}

/**
 * `model` is a URL (used as is), a directory under public/ (served by Vite) or any other local
 * directory (mounted with Range support).
 */
export async function startPageHost(opts: { model?: string; browsers?: number; quiet?: boolean }): Promise<PageHost> {
  const repo = resolve(import.meta.dirname, '../..');
  let modelUrl = '';
  let mount: { prefix: string; dir: string } | null = null;
  if (opts.model) {
    if (/^https?:\/\//.test(opts.model)) {
      modelUrl = opts.model.endsWith('/') ? opts.model : opts.model + '/';
    } else {
      const dir = resolve(opts.model);
      if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`--model ${opts.model}: no such directory (or give a URL)`);
      if (!existsSync(resolve(dir, 'config.json'))) throw new Error(`--model ${opts.model}: no config.json in that directory`);
      const rel = relative(resolve(repo, 'public'), dir);
      if (!rel.startsWith('..') && !rel.startsWith(sep)) modelUrl = '/' + rel.split(sep).join('/') + '/';
      else {
        mount = { prefix: LOCAL_MODEL_PREFIX, dir };
        modelUrl = LOCAL_MODEL_PREFIX;
      }
    }
  }
  const server: ViteDevServer = await createServer({
    root: repo,
    configFile: resolve(repo, 'vite.config.ts'),
    logLevel: opts.quiet === false ? 'info' : 'error',
    server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false },
    plugins: mount
      ? [{ name: 'local-model', configureServer: (s) => void s.middlewares.use(serveModelDir(mount!.prefix, mount!.dir)) }]
      : [],
  });
  await server.listen();
  const addr = server.httpServer?.address();
  if (!addr || typeof addr === 'string') throw new Error('Vite did not report a port');
  const baseUrl = `http://127.0.0.1:${addr.port}`;
  if (modelUrl.startsWith('/')) modelUrl = baseUrl + modelUrl;

  const executablePath = findChromium();
  const browsers: Browser[] = [];
  for (let i = 0; i < Math.max(1, opts.browsers ?? 1); i++) {
    browsers.push(await chromium.launch({ executablePath, args: chromiumArgs }));
  }
  return {
    baseUrl,
    modelUrl,
    browsers,
    async newPage(i = 0) {
      const page = await browsers[i % browsers.length].newPage();
      page.on('pageerror', (e) => process.stderr.write(`[page error] ${e.message}\n`));
      page.on('console', (m) => {
        if (m.type() === 'error' || process.env.DEBUG_BROWSER) process.stderr.write(`[browser ${m.type()}] ${m.text()}\n`);
      });
      return page;
    },
    async close() {
      await Promise.all(browsers.map((b) => b.close().catch(() => undefined)));
      await server.close();
    },
  };
}
