// The stage host's work, loaded by src/cli/stage-host.ts through Vite's SSR loader (the shaders are
// `?raw` imports): Dawn's WebGPU as navigator.gpu, then the stage tab's own code (startStageNode)
// with Node's pieces handed in: the `ws` WebSocket for signalling and the disk weight cache.
// WebRTC needs nothing: the peer library uses node-datachannel in Node.
import WebSocket from 'ws';
import { installWebGpu } from './dawn.ts';
import { startStageNode, type StageNode, type StageNodeOptions, type StageStatus } from '../app/stage-node.ts';
import { TAB_LINK_TUNING } from '../app/link-tuning.ts';
import { diskWeightCache } from '../model/cache-node.ts';
import { NoWebGPUError } from '../common/errors.ts';
import type { StageHostOptions } from './stage-host-args.ts';

/** The WebSocket surface signalling uses (the `ws` package's has it). */
type WebSocketLike = ReturnType<NonNullable<StageNodeOptions['createWebSocket']>>;

const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);

/**
 * Prints a stage's status: a line per change of phase or message, what it announced once it is in
 * the room, and a progress line while loading.
 */
function statusPrinter(out: NodeJS.WriteStream, o: StageHostOptions): (s: StageStatus) => void {
  let last = '';
  let announced = false;
  let lastQuarter = -1;
  let progressShown = false;
  return (s) => {
    if (s.phase === 'loading' && s.load && s.load.total > 0) {
      const pct = Math.floor((100 * s.load.done) / s.load.total);
      const line = `loading ${s.role ?? ''}: ${mb(s.load.done)} / ${mb(s.load.total)} MB (${pct}%)`;
      if (out.isTTY) {
        out.write(`\r${line}\x1b[K`);
        progressShown = true;
      } else if (Math.floor(pct / 25) !== lastQuarter) {
        lastQuarter = Math.floor(pct / 25);
        out.write(`${line}\n`);
      }
      return;
    }
    const text = `[${s.phase}] ${s.message}`;
    if (text === last) return;
    last = text;
    lastQuarter = -1;
    if (progressShown) out.write('\n');
    progressShown = false;
    if (s.id && !announced) {
      announced = true;
      const memory = o.memoryBytes ? `${(o.memoryBytes / 1e9).toFixed(1)} GB` : 'not announced (--memory-gb)';
      out.write(`joined room "${o.room}" as ${s.id} "${o.name}": device ${s.device}, ${s.gbps?.toFixed(2)} GB/s matvec, memory ${memory}; weights cached in ${o.cacheDir}\n`);
    }
    out.write(`${text}\n`);
  };
}

/** Runs one stage until it leaves the room (Ctrl-C, SIGTERM, or on its own); resolves with the exit code. */
export async function runStageHost(o: StageHostOptions): Promise<number> {
  installWebGpu();
  const print = statusPrinter(process.stdout, o);
  let node: StageNode | null = null;
  let stoppedBy: string | null = null;
  const stop = (sig: string): void => {
    stoppedBy = sig;
    if (node) return node.close(`stage host stopped (${sig})`);
    // Not in a ring yet (still measuring, joining or waiting for the leader): leaving the process
    // closes the signalling socket, and the room drops this stage.
    console.log(`stopped (${sig}) before a ring formed`);
    process.exit(0);
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  let socketError = ''; // why the signalling socket failed (SignalClient sees only its close code)
  try {
    node = await startStageNode({
      room: o.room,
      secret: o.secret,
      name: o.name,
      signalUrl: o.signalUrl,
      tuning: TAB_LINK_TUNING,
      memoryBytes: o.memoryBytes || undefined,
      createWebSocket: (url) => {
        const ws = new WebSocket(url, { rejectUnauthorized: !o.insecure });
        ws.on('error', (e) => (socketError = e.message));
        return ws as unknown as WebSocketLike;
      },
      weightCache: diskWeightCache(o.cacheDir, (m) => console.log(`warning: ${m}`)),
      backend: o.backend,
      onStatus: print,
    });
  } catch (e) {
    const hint =
      e instanceof NoWebGPUError
        ? '\nDawn found no usable GPU adapter: install the GPU\'s Vulkan driver, or pass --swiftshader to compute on Chromium\'s software driver (/usr/lib/chromium).'
        : /certificate|self.signed/i.test(socketError)
          ? '\nThe server\'s HTTPS certificate is not trusted here: pass --insecure for the self-signed certificate npm start makes.'
          : '';
    // The status line above already said why.
    console.error(`stage host: could not start (${e instanceof Error ? e.name : 'error'}${socketError ? `; socket: ${socketError}` : ''}).${hint}`);
    return 1;
  }
  const reason = await node.closed;
  await new Promise((r) => setTimeout(r, 200)); // let the goodbyes leave
  console.log(`left the room: ${reason}`);
  return stoppedBy !== null || node.status.phase !== 'failed' ? 0 : 1;
}
