// --stage-ms A[:B] / --draft-ms A[:B] for generate, demo and bench: emulated dedicated devices (see
// src/common/device-emulation.ts). Off unless given (0 is off).
import { str, type Args } from '../common/args.ts';
import { emulating, parseCost, type CostModel, type DeviceEmulation } from '../common/device-emulation.ts';

export const EMULATION_ARGS = ['stage-ms', 'draft-ms'];

function costs(args: Args, name: string): (CostModel | null)[] {
  return str(args, name, '0')
    .split(',')
    .map((c) => parseCost(c, `--${name}`));
}

/** One emulation (null when off); a comma list is refused (only the bench takes lists). */
export function emulationFromArgs(args: Args): DeviceEmulation | null {
  const [stageMs, ...moreStage] = costs(args, 'stage-ms');
  const [draftMs, ...moreDraft] = costs(args, 'draft-ms');
  if (moreStage.length || moreDraft.length) throw new Error('--stage-ms and --draft-ms take one value here (A or A:B); lists are for the bench');
  const e = { stageMs, draftMs };
  return emulating(e) ? e : null;
}

/** Every combination of the listed costs (the bench's grid); [{ null, null }] when none is given. */
export function emulationsFromArgs(args: Args): DeviceEmulation[] {
  return costs(args, 'stage-ms').flatMap((stageMs) => costs(args, 'draft-ms').map((draftMs) => ({ stageMs, draftMs })));
}
