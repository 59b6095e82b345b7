// `npm test` runs this first: the browser tests need Chromium. Found: nothing to do. Missing on a
// Debian/Ubuntu machine where we are root: install Debian's chromium with apt-get (what CI does).
// Otherwise: say exactly what to run, and fail.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { findChromium } from './browser.ts';

function found(): string | null {
  try {
    return findChromium();
  } catch {
    return null;
  }
}

const have = found();
if (have) {
  process.exit(0);
}
if (process.env.CHROMIUM_PATH ?? process.env.CHROME_PATH) {
  process.stderr.write(`CHROMIUM_PATH=${process.env.CHROMIUM_PATH ?? process.env.CHROME_PATH} does not exist: point it at a Chromium/Chrome binary, or unset it.\n`);
  process.exit(1);
}
const root = typeof process.getuid === 'function' && process.getuid() === 0;
if (root && existsSync('/usr/bin/apt-get')) {
  process.stdout.write('Chromium is missing: installing Debian\'s chromium (apt-get install chromium) for the browser tests…\n');
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', '-qq', '-o', 'DPkg::Lock::Timeout=600', 'chromium'], { stdio: 'inherit' });
  if (found()) process.exit(0);
}
process.stderr.write(
  'The browser tests need Chromium with WebGPU, and none was found.\n' +
    '  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y chromium\n' +
    '  elsewhere:      install Chrome or Chromium and set CHROMIUM_PATH=/path/to/chrome\n' +
    '(`npx playwright install` is not needed: the tests drive the system browser.)\n',
);
process.exit(1);
