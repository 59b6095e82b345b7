// npm run bench:peers [-- --json] [--tokens 32] [--contexts 32,512] [--rounds 1] [--engines NAME,...] [--model DIR]
// This project next to the engines people already run in a browser, on the same model and the same
// prompt ids, in one headless Chromium and one run: the bundled target is exported to ONNX
// (onnxruntime-web: WASM EP with 1 thread and with all threads, WebGPU EP) and to GGUF F32 and F16
// (@wllama/wllama, llama.cpp in WebAssembly, 1 thread and all threads) into .cache/peers/, then
// every engine decodes --tokens greedy tokens after a prompt of --contexts tokens, each in a fresh
// tab. Reports ms/token (time between tokens, one definition for all), the tokens, and the first
// position where each engine's continuation differs from this project's. --rounds N: N interleaved
// sweeps, the median (nearest rank) of each figure, so load from other processes hits every engine.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs, str, num, numList, flag, rejectUnknown } from '../common/args.ts';
import { errorMessage } from '../common/errors.ts';
import { createTokenizer } from '../model/tokenizer.ts';
import { startPageHost, type PageHost } from './page-host.ts';
import type { PeerRunRequest, PeerRunResult } from '../headless/peers-run.ts';
import { formatPeers, mergeRounds, peerEngines, selectEngines, withAgreement, type PeerResult, type PeersReport } from './bench-peers-report.ts';

const repo = resolve(import.meta.dirname, '../..');
const OUT_DIR = '.cache/peers';
const PYTHON = process.env.PEERS_PYTHON ?? '/usr/bin/python3';

/** Runs an export script unless its output is newer than the script and the weights. */
function exportOnce(script: string, args: string[], out: string, weights: string, log: (s: string) => void): void {
  const outPath = resolve(repo, out);
  const fresh = existsSync(outPath) && [resolve(repo, script), weights].every((p) => statSync(p).mtimeMs < statSync(outPath).mtimeMs);
  if (fresh) return;
  log(`exporting ${out} (${script})`);
  const r = spawnSync(PYTHON, [resolve(repo, script), ...args], { cwd: repo, encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) {
    throw new Error(`${script} failed (${r.error?.message ?? `exit ${String(r.status)}`}): ${(r.stderr || r.stdout).trim().split('\n').slice(-5).join('\n')}` +
      (r.error ? `\n(needs Debian's python3-torch: apt-get install -y python3-torch python3-numpy; or set PEERS_PYTHON)` : ''));
  }
}

/** The prompt every engine gets: bench/prompts.txt's lines, tokenized and repeated to `length` ids. */
function promptIds(modelDir: string, length: number): number[] {
  const text = readFileSync(resolve(repo, 'bench/prompts.txt'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('#'))
    .join(' ');
  const tok = createTokenizer(JSON.parse(readFileSync(resolve(modelDir, 'tokenizer.json'), 'utf8')), JSON.parse(readFileSync(resolve(modelDir, 'tokenizer_config.json'), 'utf8')));
  const once = tok.encode(' ' + text, { addSpecialTokens: false });
  if (once.length === 0) throw new Error('bench/prompts.txt gives no tokens');
  return Array.from({ length }, (_, i) => once[i % once.length]);
}

/** A page whose module import was aborted by the browser (e.g. a network change) never started its engine. */
const PAGE_LOAD_FAILURE = /Failed to fetch dynamically imported module|ERR_NETWORK_CHANGED/;

/** One engine run in a new tab; the tab is retried once when its page module failed to load. */
async function runInFreshPage(host: PageHost, req: PeerRunRequest, log: (s: string) => void, attempt = 1): Promise<PeerRunResult> {
  const page = await host.newPage();
  try {
    await page.goto(`${host.baseUrl}/src/headless/page.html`);
    return (await page.evaluate(async (q) => {
      const path = '/src/headless/peers-run.ts';
      const m = (await import(/* @vite-ignore */ path)) as typeof import('../headless/peers-run.ts');
      return m.runPeer(q);
    }, req)) as PeerRunResult;
  } catch (e) {
    if (attempt > 1 || !PAGE_LOAD_FAILURE.test(errorMessage(e))) throw e;
    log(`page did not load (${errorMessage(e).split('\n')[0]}); once more in a new tab`);
  } finally {
    await page.close();
  }
  return runInFreshPage(host, req, log, attempt + 1);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  rejectUnknown(args, ['json', 'tokens', 'contexts', 'engines', 'model', 'rounds']);
  const rounds = num(args, 'rounds', 1);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
  const json = flag(args, 'json');
  const log = (s: string): void => void process.stderr.write(`[bench:peers] ${s}\n`);
  const newTokens = num(args, 'tokens', 32);
  const contexts = numList(args, 'contexts') ?? [32, 512];
  const modelDir = resolve(str(args, 'model', 'public/models/demo-target'));
  const config = JSON.parse(readFileSync(resolve(modelDir, 'config.json'), 'utf8')) as Record<string, number>;
  const maxPositions = config.max_position_embeddings;
  if (newTokens < 2) throw new Error('--tokens must be at least 2');
  const tooLong = contexts.find((c) => !Number.isInteger(c) || c < 1 || c + newTokens > maxPositions);
  if (tooLong !== undefined) throw new Error(`--contexts ${tooLong}: each context + --tokens must fit the model's ${maxPositions} positions`);

  const host = await startPageHost({ models: [modelDir], quiet: true });
  const sweeps: PeerResult[][] = [];
  let conditions: PeersReport['conditions'] = {};
  try {
    const page0 = await host.newPage();
    await page0.goto(`${host.baseUrl}/src/headless/page.html`);
    const browser = await page0.evaluate(() => ({ ua: navigator.userAgent, threads: navigator.hardwareConcurrency, isolated: self.crossOriginIsolated }));
    await page0.close();
    const engines = peerEngines(
      {
        modelUrl: host.modelUrls[0],
        onnxUrl: `${host.baseUrl}/${OUT_DIR}/model.onnx`,
        ggufF32Url: `${host.baseUrl}/${OUT_DIR}/model-f32.gguf`,
        ggufF16Url: `${host.baseUrl}/${OUT_DIR}/model-f16.gguf`,
        kv: { layers: config.num_hidden_layers, kvHeads: config.num_key_value_heads, headDim: config.head_dim ?? config.hidden_size / config.num_attention_heads },
      },
      browser.threads,
    );
    const chosen = selectEngines(engines, args.has('engines') ? str(args, 'engines').split(',') : []);
    // Only the exports the chosen engines read.
    mkdirSync(resolve(repo, OUT_DIR), { recursive: true });
    const weights = resolve(modelDir, 'model.safetensors');
    const uses = (kind: string): boolean => chosen.some((e) => e.spec.kind === kind);
    if (uses('ort')) exportOnce('tools/peers/export_onnx.py', ['--model', modelDir, '--out', `${OUT_DIR}/model.onnx`], `${OUT_DIR}/model.onnx`, weights, log);
    for (const dtype of uses('wllama') ? ['f32', 'f16'] : []) {
      exportOnce('tools/gguf/write_gguf.py', [modelDir, `${OUT_DIR}/model-${dtype}.gguf`, '--type', dtype], `${OUT_DIR}/model-${dtype}.gguf`, weights, log);
    }
    conditions = {
      model: modelDir.replace(repo + '/', ''),
      newTokens,
      contexts,
      rounds: `${rounds} (every engine once per round, interleaved; figures are the median over rounds)`,
      prompt: `bench/prompts.txt tokenized and repeated to each context's length (same ids for every engine)`,
      sampling: 'greedy',
      msPerToken: '(time of the last token - time of the first) / (tokens - 1), after a prompt of `context` tokens',
      browser: browser.ua,
      crossOriginIsolated: browser.isolated,
      browserThreads: browser.threads,
      hostCpus: availableParallelism(),
      date: new Date().toISOString(),
    };
    for (let round = 0; round < rounds; round++) {
      const results: PeerResult[] = [];
      for (const context of contexts) {
        const ids = promptIds(modelDir, context);
        for (const engine of chosen) {
          log(`${engine.name} @${context}${rounds > 1 ? ` (round ${round + 1}/${rounds})` : ''}`);
          const req: PeerRunRequest = { engine: engine.spec, promptIds: ids, newTokens };
          try {
            const r = await runInFreshPage(host, req, log);
            results.push({ engine: engine.name, context, msPerToken: r.msPerToken, tokens: r.tokens, msPerTokenP50: r.msPerTokenP50, firstTokenMs: r.firstTokenMs, loadMs: r.loadMs, ran: r.ran });
          } catch (e) {
            results.push({ engine: engine.name, context, msPerToken: null, tokens: [], error: errorMessage(e).replace(/\s+/g, ' ').slice(0, 400) });
          }
        }
      }
      sweeps.push(results);
    }
  } finally {
    await host.close();
  }
  const report: PeersReport = { conditions, results: withAgreement(mergeRounds(sweeps)) };
  process.stdout.write((json ? JSON.stringify(report) : formatPeers(report)) + '\n');
  if (report.results.some((r) => r.error)) process.exit(1);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:peers: ${errorMessage(e)}\n`);
  process.exit(1);
});
