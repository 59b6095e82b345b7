// Hosts the app for command-line tools: a Vite dev server on a free port (with an optional local
// model directory mounted) and headless Chromium processes pointed at it.
import { createServer, type ViteDevServer } from 'vite';
import { chromium, type Browser, type Page } from '@playwright/test';
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, resolve, relative, sep } from 'node:path';
import { isGgufLocation } from '../model/gguf.ts';
import { findChromium, chromiumArgs } from './browser.ts';
import { serveModelDir } from './model-files.ts';

export const LOCAL_MODEL_PREFIX = '/@local-model/';

export interface PageHost {
  baseUrl: string;
  /** URLs the browser loads the models from, one per `models` entry. */
  modelUrls: string[];
  browsers: Browser[];
  newPage(browserIndex?: number): Promise<Page>;
  close(): Promise<void>;
}

const repo = resolve(import.meta.dirname, '../..');

/**
 * A URL is used as is; a directory (or a .gguf file) under public/ is served by Vite; any other one
 * is mounted (a .gguf file: its directory, and the URL names the file).
 */
function modelLocation(model: string, index: number): { url: string; mount?: { prefix: string; dir: string } } {
  const gguf = isGgufLocation(model);
  if (/^https?:\/\//.test(model)) return { url: gguf || model.endsWith('/') ? model : model + '/' };
  const path = resolve(model);
  if (gguf && (!existsSync(path) || !statSync(path).isFile())) throw new Error(`model ${model}: no such file`);
  if (!gguf && (!existsSync(path) || !statSync(path).isDirectory())) throw new Error(`model ${model}: no such directory or .gguf file (or give a URL)`);
  if (!gguf && !existsSync(resolve(path, 'config.json'))) throw new Error(`model ${model}: no config.json in that directory`);
  const dir = gguf ? dirname(path) : path;
  const file = gguf ? encodeURIComponent(basename(path)) : '';
  const rel = relative(resolve(repo, 'public'), dir);
  if (!rel.startsWith('..') && !rel.startsWith(sep)) return { url: '/' + (rel ? rel.split(sep).join('/') + '/' : '') + file };
  const prefix = `${LOCAL_MODEL_PREFIX}${index}/`;
  return { url: prefix + file, mount: { prefix, dir } };
}

export async function startPageHost(opts: { models?: string[]; browsers?: number; quiet?: boolean }): Promise<PageHost> {
  const locations = (opts.models ?? []).map(modelLocation);
  const mounts = locations.flatMap((l) => (l.mount ? [l.mount] : []));
  const server: ViteDevServer = await createServer({
    root: repo,
    configFile: resolve(repo, 'vite.config.ts'),
    logLevel: opts.quiet === false ? 'info' : 'error',
    server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false },
    plugins: [{ name: 'local-models', configureServer: (s) => mounts.forEach((m) => s.middlewares.use(serveModelDir(m.prefix, m.dir))) }],
  });
  await server.listen();
  const addr = server.httpServer?.address();
  if (!addr || typeof addr === 'string') throw new Error('Vite did not report a port');
  const baseUrl = `http://127.0.0.1:${addr.port}`;
  const modelUrls = locations.map((l) => (l.url.startsWith('/') ? baseUrl + l.url : l.url));

  const executablePath = findChromium();
  const browsers: Browser[] = [];
  for (let i = 0; i < Math.max(1, opts.browsers ?? 1); i++) {
    browsers.push(await chromium.launch({ executablePath, args: chromiumArgs }));
  }
  return {
    baseUrl,
    modelUrls,
    browsers,
    async newPage(i = 0) {
      const page = await browsers[i % browsers.length].newPage();
      page.on('pageerror', (e) => process.stderr.write(`[page error] ${e.message}\n`));
      page.on('console', (m) => {
        // Optional model files (tokenizer, generation config) are probed and may be absent.
        if (m.text().includes('404 (Not Found)') && !process.env.DEBUG_BROWSER) return;
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
