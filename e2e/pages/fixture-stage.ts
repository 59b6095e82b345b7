// Browser side of the kernel-path tests in e2e/runtime.spec.ts: a fixture model through one Stage
// with chosen StageOptions (f16 KV cache, unfused path, ...), fed the prompt and then PyTorch's own
// greedy tokens, returning the logits of every step (the ones tools/fixtures/make_fixtures.py saved).
import { loadModel, loadStageTensors, urlSource } from '../../src/model/index.ts';
import { createGpuContext } from '../../src/gpu/device.ts';
import { Stage, type StageOptions } from '../../src/gpu/stage.ts';

export interface FixtureRun {
  /** Logits after the prompt, then after each fed token. */
  logits: number[][];
  /** The stage's greedy token at each of those steps. */
  tokens: number[];
  kvBytes: number;
  dispatchesPerLayer: number;
}

export async function runFixture(req: { url: string; promptIds: number[]; feed: number[]; opts: Partial<StageOptions> }): Promise<FixtureRun> {
  const source = urlSource(req.url);
  const model = await loadModel(source, { tokenizer: false, cache: false });
  const { spec } = model;
  const role = { layers: { start: 0, end: spec.numLayers }, embed: true, head: true };
  const tensors = await loadStageTensors(source, spec, role, { cache: false, index: model.tensorIndex });
  const ctx = await createGpuContext();
  const n = req.promptIds.length + req.feed.length;
  const stage = await Stage.create(ctx, spec, role, (name) => tensors.get(name)!, { numSlots: n, ...req.opts });
  const out: FixtureRun = { logits: [], tokens: [], kvBytes: stage.kvBytes, dispatchesPerLayer: stage.dispatchesPerLayer };
  try {
    const P = req.promptIds.length;
    let res = await stage.forward({
      tokens: Int32Array.from(req.promptIds),
      positions: Int32Array.from(req.promptIds, (_, i) => i),
      slots: Int32Array.from(req.promptIds, (_, i) => i),
      ancestors: req.promptIds.map((_, i) => Int32Array.from({ length: i }, (_, j) => j)),
      logitsRows: [P - 1],
    });
    stage.kv.commit(req.promptIds.map((_, i) => i));
    for (let step = 0; ; step++) {
      out.logits.push([...res.logits!]);
      out.tokens.push(res.tokens![res.tokens!.length - 1]);
      if (step === req.feed.length) break;
      const pos = P + step;
      res = await stage.forward({ tokens: Int32Array.of(req.feed[step]), positions: Int32Array.of(pos), slots: Int32Array.of(pos), ancestors: [new Int32Array(0)], logitsRows: [0] });
      stage.kv.commit([pos]);
    }
  } finally {
    stage.destroy();
    ctx.device.destroy();
  }
  return out;
}
