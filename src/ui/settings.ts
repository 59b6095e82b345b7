// The settings form, read and validated into what a generation needs. Pure: tested in Node.
import type { Mode } from '../speculative/scheduler.ts';
import { MODES, DRAFT_KINDS, MAX_DEPTH, MAX_WIDTH, type DraftKind } from '../app/modes.ts';
import type { SamplingSettings } from '../speculative/sampling.ts';
import { emulating, parseCost, type CostModel, type DeviceEmulation } from '../common/device-emulation.ts';
import { QUANT_FORMATS } from '../model/quant.ts';
import type { QuantFormat } from '../model/types.ts';

export type Placement = 'tab' | 'mesh';

export interface ChatSettings {
  mode: Mode;
  /** Where the target's stages run: in this tab, or in stage tabs of the room (single: always here). */
  placement: Placement;
  /** Target stages (single mode always uses one). */
  stages: number;
  /** Mesh only: simulated network delay per hop. */
  hopDelayMs: number;
  width: number;
  depth: number;
  draft: DraftKind;
  sampling: SamplingSettings;
  maxTokens: number;
  /** Longest prompt + output the KV cache holds. */
  context: number;
  /** Emulated dedicated devices (stage and draft costs, 'A' or 'A:B' ms); null: off (the default). */
  emulation: DeviceEmulation | null;
  /** Quantize the target's projection matrices on load (stages in this tab); null: as stored. */
  quant: QuantFormat | null;
}

export class SettingsError extends Error {
  override name = 'SettingsError';
}

function int(get: (name: string) => string, name: string, min: number, max: number): number {
  const v = Number(get(name));
  if (!Number.isInteger(v) || v < min || v > max) throw new SettingsError(`${name} must be a whole number from ${min} to ${max}`);
  return v;
}

function real(get: (name: string) => string, name: string, min: number, max: number): number {
  const v = Number(get(name));
  if (get(name).trim() === '' || !Number.isFinite(v) || v < min || v > max) throw new SettingsError(`${name} must be a number from ${min} to ${max}`);
  return v;
}

function oneOf<T extends string>(get: (name: string) => string, name: string, values: readonly T[]): T {
  const v = get(name) as T;
  if (!values.includes(v)) throw new SettingsError(`${name} must be one of ${values.join(', ')}`);
  return v;
}

function cost(get: (name: string) => string, name: string): CostModel | null {
  try {
    return parseCost(get(name), name);
  } catch (e) {
    throw new SettingsError(e instanceof Error ? e.message : String(e));
  }
}

/** Reads settings by form field name (FormData.get, or a plain record in tests). */
export function parseSettings(get: (name: string) => string): ChatSettings {
  const mode = oneOf(get, 'mode', MODES);
  const devices: DeviceEmulation = { stageMs: cost(get, 'stage-ms'), draftMs: cost(get, 'draft-ms') };
  const emulated = emulating(devices) ? devices : null;
  return {
    mode,
    placement: mode === 'single' ? 'tab' : oneOf(get, 'placement', ['tab', 'mesh'] as const),
    stages: mode === 'single' ? 1 : int(get, 'stages', 1, 64),
    hopDelayMs: int(get, 'hop-delay', 0, 10_000),
    width: int(get, 'width', 1, MAX_WIDTH),
    depth: int(get, 'depth', 1, MAX_DEPTH),
    draft: oneOf(get, 'draft', DRAFT_KINDS),
    sampling: {
      temperature: real(get, 'temperature', 0, 5),
      topP: real(get, 'top-p', 0, 1),
      topK: int(get, 'top-k', 0, 1_000_000),
      seed: int(get, 'seed', 0, 2 ** 31 - 1),
    },
    maxTokens: int(get, 'max-tokens', 1, 4096),
    context: int(get, 'context', 16, 32768),
    emulation: emulated,
    quant: ['', 'none'].includes(get('quant')) ? null : oneOf(get, 'quant', QUANT_FORMATS),
  };
}
