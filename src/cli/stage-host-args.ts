// The stage host's command line (src/cli/stage-host.ts): the join link and options, checked before
// anything starts (pure: tests/cli-stage-host.test.ts).
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs, str, num, flag, rejectUnknown } from '../common/args.ts';
import { SIGNAL_PATH } from '../server/signal-protocol.ts';
import { parseBackend, type BackendChoice } from '../pipeline/backend.ts';

/** `--backend` of a stage host: one backend for its one stage (no per-stage list). */
function stageBackend(value: string): BackendChoice {
  const b = parseBackend(value);
  if (typeof b !== 'string') throw new Error(`--backend ${value}: a stage host runs one stage, name one backend (auto, webgpu or wasm)`);
  return b;
}

export const STAGE_HOST_USAGE = `usage: npm run stage -- --join URL [--secret S] [--memory-gb N] [--name NAME] [--cache-dir DIR] [--swiftshader] [--insecure] [--backend auto|webgpu|wasm]
  --join URL       the room's join link, e.g. https://HOST:8443/?room=R (a #secret=S fragment counts as --secret)
  --secret S       the room's secret, if it has one
  --memory-gb N    GB this machine may use for weights and KV cache (the leader assigns no more layers); default: not announced
  --name NAME      how the leader's mesh view names this machine (default: HOSTNAME (node))
  --cache-dir DIR  where fetched weights are kept (default ~/.cache/specpipe-mesh)
  --swiftshader    compute on Chromium's software Vulkan driver (a machine without a GPU driver)
  --insecure       accept the server's self-signed HTTPS certificate (npm start makes one)
  --backend B      what computes the layers: webgpu (default), wasm (CPU, WebAssembly SIMD) or auto (the faster in the start-up probe)`;

const KNOWN = ['join', 'secret', 'memory-gb', 'name', 'cache-dir', 'swiftshader', 'insecure', 'backend', 'help'];

/** What the stage host runs with. */
export interface StageHostOptions {
  /** ws(s)://HOST:PORT/signal, from the join link. */
  signalUrl: string;
  room: string;
  secret?: string;
  name: string;
  /** 0: not announced. */
  memoryBytes: number;
  cacheDir: string;
  swiftshader: boolean;
  insecure: boolean;
  /** What computes the layers (absent: webgpu). */
  backend?: BackendChoice;
}

/** The signalling URL and room (and a #secret=S) of a join link such as https://HOST:8443/?room=R&stage#secret=S. */
export function parseJoinLink(link: string): { signalUrl: string; room: string; secret?: string } {
  let url: URL;
  try {
    url = new URL(link);
  } catch {
    throw new Error(`--join ${JSON.stringify(link)} is not a URL (expected e.g. https://HOST:8443/?room=R)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`--join: ${url.protocol} link; expected an https:// (or http://) join link`);
  const room = url.searchParams.get('room');
  if (!room) throw new Error(`--join ${link}: no ?room=NAME in the link`);
  const secret = new URLSearchParams(url.hash.slice(1)).get('secret') ?? undefined;
  return { signalUrl: `${url.protocol === 'https:' ? 'wss:' : 'ws:'}//${url.host}${SIGNAL_PATH}`, room, ...(secret ? { secret } : {}) };
}

/** The options of `argv`, or null for --help; throws with a message for a bad command line. */
export function parseStageHostArgs(argv: string[]): StageHostOptions | null {
  const args = parseArgs(argv);
  rejectUnknown(args, KNOWN);
  if (flag(args, 'help')) return null;
  const link = parseJoinLink(str(args, 'join'));
  const memoryGb = num(args, 'memory-gb', 0);
  if (memoryGb < 0) throw new Error('--memory-gb must be positive');
  const secret = args.has('secret') ? str(args, 'secret') : link.secret;
  return {
    signalUrl: link.signalUrl,
    room: link.room,
    ...(secret ? { secret } : {}),
    name: args.has('name') ? str(args, 'name') : `${hostname()} (node)`,
    memoryBytes: Math.round(memoryGb * 1e9),
    cacheDir: args.has('cache-dir') ? str(args, 'cache-dir') : join(homedir(), '.cache', 'specpipe-mesh'),
    swiftshader: flag(args, 'swiftshader'),
    insecure: flag(args, 'insecure'),
    ...(args.has('backend') ? { backend: stageBackend(str(args, 'backend')) } : {}),
  };
}
