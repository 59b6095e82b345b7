// Link liveness for meshes of browser tabs the app forms itself (chat page, demo, bench): a tab on a
// busy machine can stall for seconds (shader compilation on a software GPU, a loaded CPU), so a
// peer counts as lost after 10 s of silence rather than the transport's default 3 s.
import type { LinkTuning } from '../mesh/peer.ts';

export const TAB_LINK_TUNING: LinkTuning = { timeoutMs: 10_000 };
