/**
 * specpipe-mesh as a library: a language model split into pipeline stages over WebGPU, in one tab
 * or across the tabs and hosts of a room, decoded with SpecPipe speculative pipelining.
 *
 * ```ts
 * import { createEngine, DEFAULT_SAMPLING } from 'specpipe-mesh';
 * const engine = createEngine({ model: '/models/demo-target/', draft: '/models/demo-draft/' });
 * await engine.load({ onProgress: ({ part, done, total }) => console.log(part, done, total) });
 * const run = engine.generate({ prompt: 'The whale', maxNewTokens: 32, mode: 'specpipe', sampling: DEFAULT_SAMPLING });
 * for await (const t of run) console.log(t.text);
 * engine.dispose();
 * ```
 *
 * @packageDocumentation
 */

export { createEngine, type TabPlacement, type MeshPlacement } from './app/create-engine.ts';
export type {
  Engine,
  EngineInfo,
  EnginePhase,
  Generation,
  GenerationRequest,
  GenerationReport,
  GenerationTimings,
  RunBound,
  EmulationReport,
  OverrunStats,
  GenerateCallOptions,
  LoadOptions,
  LoadProgress,
  TokenEvent,
} from './app/engine.ts';
export { TabEngine, type TabEngineOptions, type ModelLocation } from './app/tab-engine.ts';
export { parseBackend, BACKEND_CHOICES, type BackendSetting, type BackendChoice, type StageBackend } from './pipeline/backend.ts';
export { WasmStage, type WasmStageOptions } from './cpu/wasm-stage.ts';
export { MeshEngine, type MeshEngineOptions } from './app/mesh-engine.ts';
export type { MeshStatus, MeshPhase, MeshStageView, MeshRunReport, HopLatency, StageWork } from './app/mesh-types.ts';
export { StageLostError } from './app/mesh-session.ts';
export { startStageNode, type StageNode, type StageNodeOptions, type StageStatus, type StagePhase } from './app/stage-node.ts';
export { serveApi, FifoScheduler, chatPrompt, apiPromptIds, type ApiRelay, type ApiRelayOptions, type ApiScheduler, type ApiJob, type ApiRunSettings } from './app/api-relay.ts';
export type { ApiGenerationRequest, ApiChatMessage } from './server/signal-protocol.ts';
export { chatTemplateOf, type ChatTemplate, type ChatMessage } from './model/chat-template.ts';
export { MODES, DRAFT_KINDS, MAX_WIDTH, MAX_DEPTH, DEFAULT_MAX_CONTEXT, DEFAULT_SAMPLING, type DraftKind } from './app/modes.ts';
export { GREEDY, type SamplingSettings } from './speculative/sampling.ts';
export type { Mode, StopReason, GenerateMetrics } from './speculative/scheduler.ts';
export type { TbtBound } from './speculative/metrics.ts';
export { MAX_OVERRUN_SHARE, parseCost, type CostModel, type DeviceEmulation } from './common/device-emulation.ts';
export { urlSource, fileSource, ModelSourceError, type ModelSource } from './model/index.ts';
export { modelSource, ggufSource, GgufError } from './model/index.ts';
export {
  SpecpipeError,
  NoWebGPUError,
  DeviceLostError,
  ShaderCompileError,
  GpuLimitsError,
  ModelFormatError,
  BadRequestError,
  type ErrorCode,
} from './common/errors.ts';
export { ProtocolError } from './mesh/protocol.ts';
export { SignallingError } from './mesh/signal-client.ts';
