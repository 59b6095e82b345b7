// `npm run stage -- --join https://HOST:8443/?room=R [--secret S] [--memory-gb N] [--name NAME]
//   [--cache-dir DIR] [--swiftshader] [--insecure]`: one pipeline stage of a room's ring in Node,
// without a browser. The stage tab's code (src/app/stage-node.ts) with the same WGSL kernels on Dawn
// (the `webgpu` package), the same ring and protocol over WebRTC (node-datachannel), the same
// signalling; weights fetched with Range requests and cached on disk. Ctrl-C leaves the ring.
// Exit code: 0 when stopped or closed, 1 when it could not start (no GPU adapter, refused by the
// room) or left on an error, 2 for a bad command line.
import { parseStageHostArgs, STAGE_HOST_USAGE } from './stage-host-args.ts';
import { useSwiftShader, restartWithChromiumVulkan, withViteModule } from './node-webgpu.ts';
import { errorMessage } from '../common/errors.ts';

async function main(argv: string[]): Promise<number> {
  let opts;
  try {
    opts = parseStageHostArgs(argv);
  } catch (e) {
    console.error(`${errorMessage(e)}\n${STAGE_HOST_USAGE}`);
    return 2;
  }
  if (!opts) {
    console.log(STAGE_HOST_USAGE);
    return 0;
  }
  if (opts.insecure) process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // fetch (weights) too, not only the WebSocket
  if (opts.swiftshader && useSwiftShader()) return restartWithChromiumVulkan();
  const o = opts;
  return withViteModule<typeof import('./stage-host-main.ts')>('/src/cli/stage-host-main.ts', (mod) => mod.runStageHost(o));
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exit(1);
  },
);
