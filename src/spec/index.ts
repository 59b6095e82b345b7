// SpecPipe's pure-logic core: token tree, speculative sources, target-token sampling reference,
// the Pipeline interface, a simulator, and the leader's scheduler. No WebGPU, no WebRTC.
export { TokenTree, type TreeNode, type Candidate, type CommitOutcome, type TreeOptions } from './tree.ts';
export { SlotAllocator, type SlotState } from './slots.ts';
export type { SpeculativeSource, SourceNode, FrontierNode, SourceBegin, SourceCommit } from './source.ts';
export { NgramSource, type NgramOptions } from './ngram-source.ts';
export { DraftModelSource, type DraftModel, type DraftSourceOptions } from './draft-source.ts';
export { OracleSource, type OracleOptions } from './oracle-source.ts';
export { GREEDY, hash32, positionUniform, selectToken, logSoftmax, topKIndices, type SamplingSettings } from './sampling.ts';
export { Wakeup, type Pipeline } from './pipeline.ts';
export { SimPipeline, type SimPipelineOptions, type SimStageKv, type SimStats } from './sim-pipeline.ts';
export { toyTargetModel, referenceGenerate, type TargetModel, type ToyLmOptions } from './toy-lm.ts';
export {
  generate, percentile, specpipeBound, reservedSlots,
  type Mode, type GenerateOptions, type GenerateResult, type GenerateMetrics, type StopReason,
} from './scheduler.ts';
