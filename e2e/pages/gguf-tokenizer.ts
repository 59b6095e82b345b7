// Page side of e2e/gguf.spec.ts's tokenizer check: the tokenizer this runtime builds from a GGUF
// file's tokenizer.ggml.* metadata against llama.cpp's own (wllama), on the same file and texts.
import { Wllama } from '@wllama/wllama';
import wllamaSingleUrl from '@wllama/wllama/esm/single-thread/wllama.wasm?url';
import wllamaMultiUrl from '@wllama/wllama/esm/multi-thread/wllama.wasm?url';
import { loadTokenizer, modelSource } from '../../src/model/index.ts';

/** Token ids of each text from this runtime's GGUF tokenizer and from wllama's, special tokens parsed, no BOS added. */
export async function tokenizeBoth(arg: { ggufUrl: string; texts: string[] }): Promise<{ ours: number[][]; llama: number[][] }> {
  const tokenizer = await loadTokenizer(modelSource(arg.ggufUrl, { cache: false }));
  if (!tokenizer) throw new Error(`${arg.ggufUrl}: no tokenizer`);
  const w = new Wllama({ 'single-thread/wllama.wasm': wllamaSingleUrl, 'multi-thread/wllama.wasm': wllamaMultiUrl }, { suppressNativeLog: true });
  const res = await fetch(arg.ggufUrl);
  await w.loadModel([await res.blob()], { n_threads: 1, n_ctx: 64 });
  try {
    const llama: number[][] = [];
    // special = true: control tokens written in the text are parsed as such, as ours does.
    for (const t of arg.texts) llama.push(await w.tokenize(t, true));
    return { ours: arg.texts.map((t) => tokenizer.encode(t, { addSpecialTokens: false })), llama };
  } finally {
    await w.exit();
  }
}
