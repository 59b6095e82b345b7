// Node stage hosts (`npm run stage`) as child processes of a command-line tool or a test: where the
// mesh's stages run (--stage-hosts tabs|node|mixed), spawning a host on a join link (optionally
// inside a network namespace), and killing it with its whole process group (with --swiftshader a
// host restarts itself once, so it is two processes).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';

/** Where a mesh's stages run: browser tabs, Node stage processes, or both alternating (tab, node, tab, ...). */
export type StageHosts = 'tabs' | 'node' | 'mixed';
export const STAGE_HOSTS: readonly StageHosts[] = ['tabs', 'node', 'mixed'];

/** The --stage-hosts value, checked. */
export function parseStageHosts(value: string): StageHosts {
  if (!(STAGE_HOSTS as readonly string[]).includes(value)) throw new Error(`--stage-hosts must be one of ${STAGE_HOSTS.join(', ')} (got ${JSON.stringify(value)})`);
  return value as StageHosts;
}

/** Whether stage `i` (0-based) of a mesh formed with `hosts` is a Node stage process. */
export function isNodeStage(hosts: StageHosts, i: number): boolean {
  return hosts === 'node' || (hosts === 'mixed' && i % 2 === 1);
}

const repo = resolve(import.meta.dirname, '../..');
const ICD_DIRS = ['/etc/vulkan/icd.d', '/usr/share/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];

/**
 * True when this machine has no Vulkan driver for a real GPU (none installed, or only Mesa's
 * lavapipe, which Dawn refuses), so Node hosts must compute on Chromium's SwiftShader like the tabs.
 * An explicit VK_ICD_FILENAMES is the user's choice and is kept.
 */
export function needsSwiftShader(): boolean {
  if (process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES) return false;
  return !ICD_DIRS.some((d) => existsSync(d) && readdirSync(d).some((f) => f.endsWith('.json') && !f.startsWith('lvp_icd')));
}

/** One running `npm run stage` process. */
export interface StageProcess {
  readonly name: string;
  readonly proc: ChildProcess;
  /** Its stdout and stderr lines so far. */
  readonly lines: string[];
  /** Resolves with the exit code (null when a signal ended it). */
  readonly exited: Promise<number | null>;
  /** SIGTERM to its process group, SIGKILL after `graceMs`; resolves once it exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface StageProcessOptions {
  /** The room's join link, e.g. http://127.0.0.1:5173/?room=R or https://10.77.0.10:8443/?room=R. */
  join: string;
  name: string;
  secret?: string;
  cacheDir?: string;
  /** Further `npm run stage` options (--insecure, --memory-gb N); --swiftshader is added when needsSwiftShader(). */
  extra?: string[];
  /** A command the host runs under, e.g. ['ip', 'netns', 'exec', NS] (it must exec its arguments). */
  prefix?: string[];
  /** Called with every line it prints. */
  onLine?: (line: string) => void;
}

const live = new Set<StageProcess>();
let exitHookInstalled = false;

function killGroup(proc: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-proc.pid!, signal);
  } catch {
    // already gone
  }
}

/** Starts a Node stage host in its own process group; it outlives nothing: every live one is killed when this process exits. */
export function spawnStageHost(o: StageProcessOptions): StageProcess {
  const args = [
    '--import', 'tsx', resolve(repo, 'src/cli/stage-host.ts'), '--join', o.join, '--name', o.name,
    ...(o.secret ? ['--secret', o.secret] : []), ...(o.cacheDir ? ['--cache-dir', o.cacheDir] : []),
    ...(needsSwiftShader() ? ['--swiftshader'] : []), ...(o.extra ?? []),
  ];
  const [cmd, ...cmdArgs] = [...(o.prefix ?? []), process.execPath, ...args];
  const proc = spawn(cmd, cmdArgs, { cwd: repo, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const keep = (b: Buffer): void => {
    for (const line of b.toString().split('\n')) {
      if (!line.trim()) continue;
      lines.push(line);
      o.onLine?.(line);
    }
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<number | null>((done) => {
    proc.on('exit', (code) => done(code));
    proc.on('error', (e) => {
      lines.push(`could not start: ${e.message}`);
      done(1);
    });
  });
  const host: StageProcess = {
    name: o.name,
    proc,
    lines,
    exited,
    async stop(graceMs = 3000) {
      killGroup(proc, 'SIGTERM');
      const timer = setTimeout(() => killGroup(proc, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      killGroup(proc, 'SIGKILL'); // the restarted child, should it linger
      live.delete(host);
    },
  };
  live.add(host);
  void exited.then(() => live.delete(host));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    const killAll = (): void => {
      for (const h of live) killGroup(h.proc, 'SIGKILL');
    };
    process.on('exit', killAll);
    // A signal ends Node without 'exit': kill the hosts, then let the signal do what it would have
    // done (die, unless the program has handlers of its own).
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      const onSignal = (): void => {
        killAll();
        process.off(sig, onSignal);
        if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
      };
      process.on(sig, onSignal);
    }
  }
  return host;
}

/** Rejects as soon as one of `hosts` exits (with the end of its output); never resolves otherwise. */
export function failWhenAnyExits(hosts: readonly StageProcess[]): Promise<never> {
  return new Promise((_, reject) => {
    for (const h of hosts) {
      void h.exited.then((code) => reject(new Error(`Node stage host "${h.name}" exited (code ${code}):\n  ${h.lines.slice(-20).join('\n  ')}`)));
    }
  });
}

/** Where the stages of a mesh formed with `hosts` run, in words (for notes and reports). */
export function stageHostsText(hosts: StageHosts, browsers: number): string {
  const tabs = `${browsers} headless Chromium process(es)`;
  if (hosts === 'tabs') return `one tab per stage over ${tabs}`;
  const node = 'Node stage host processes (npm run stage, Dawn WebGPU)';
  return hosts === 'node' ? `one of the ${node} per stage` : `stages alternating between tabs over ${tabs} and ${node}`;
}
