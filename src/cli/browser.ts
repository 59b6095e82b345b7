// One place that finds the Chromium binary and knows the flags WebGPU needs in headless mode.
import { existsSync } from 'node:fs';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'];

export function findChromium(): string {
  const fromEnv = process.env.CHROMIUM_PATH ?? process.env.CHROME_PATH;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`CHROMIUM_PATH=${fromEnv} does not exist`);
    return fromEnv;
  }
  const found = CANDIDATES.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      'No Chromium found. Install Debian\'s chromium (`sudo apt-get install -y chromium`) ' +
        'or set CHROMIUM_PATH to a Chromium/Chrome binary. (`npx playwright install` cannot download here.)',
    );
  }
  return found;
}

/** Flags for headless Chromium with WebGPU and loopback WebRTC on a machine with no network. */
export const chromiumArgs: string[] = [
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  // Background tabs must keep computing: every tab in the mesh is a pipeline stage.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];
