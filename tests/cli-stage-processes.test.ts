// Node stage hosts as child processes (src/cli/stage-processes.ts): the --stage-hosts values, which
// stage is a Node host, and that a host is ended with its whole process group; the leader's
// one-line description of a stage (src/app/mesh-report.ts).
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { failWhenAnyExits, isNodeStage, parseStageHosts, spawnStageHost, stageHostsText } from '../src/cli/stage-processes.ts';
import { stageViewLine } from '../src/app/mesh-report.ts';
import { liveInGroup } from './support/process-group.ts';

describe('--stage-hosts', () => {
  it('takes tabs, node and mixed; anything else is a clear error', () => {
    expect(['tabs', 'node', 'mixed'].map(parseStageHosts)).toEqual(['tabs', 'node', 'mixed']);
    expect(() => parseStageHosts('nodes')).toThrow('--stage-hosts must be one of tabs, node, mixed (got "nodes")');
    expect(() => parseStageHosts('')).toThrow('--stage-hosts must be one of');
  });

  it('places Node hosts: none, all, or every second stage', () => {
    const of = (h: 'tabs' | 'node' | 'mixed'): boolean[] => [0, 1, 2, 3].map((i) => isNodeStage(h, i));
    expect(of('tabs')).toEqual([false, false, false, false]);
    expect(of('node')).toEqual([true, true, true, true]);
    expect(of('mixed')).toEqual([false, true, false, true]);
    expect(stageHostsText('tabs', 2)).toBe('one tab per stage over 2 headless Chromium process(es)');
    expect(stageHostsText('mixed', 1)).toContain('alternating');
  });
});

describe('spawnStageHost', () => {
  it('a host that cannot start fails failWhenAnyExits with its own words', async () => {
    const h = spawnStageHost({ join: 'not a link', name: 'bad' });
    await expect(failWhenAnyExits([h])).rejects.toThrow(/Node stage host "bad" exited \(code 2\):[\s\S]*--join "not a link" is not a URL/);
  }, 60_000);

  it('stop() ends the whole process group, children included', async () => {
    // A stand-in for a host that restarted itself: two processes in its group, neither leaving on its own.
    const h = spawnStageHost({ join: 'http://127.0.0.1:1/?room=r', name: 'group', prefix: ['bash', '-c', 'sleep 60 & sleep 60', 'stand-in'] });
    await expect.poll(() => liveInGroup(h.proc.pid!).length, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    await h.stop(500);
    // (a killed process may take a moment to leave the process table on a busy machine)
    await expect.poll(() => liveInGroup(h.proc.pid!), { timeout: 5_000 }).toEqual([]);
  }, 30_000);

  it('a program killed by SIGTERM takes its hosts with it', async () => {
    const script = `import { spawnStageHost } from ${JSON.stringify(resolve('src/cli/stage-processes.ts'))};
      const h = spawnStageHost({ join: 'x', name: 's', prefix: ['bash', '-c', 'sleep 60 & sleep 60', 'stand-in'] });
      console.log(h.proc.pid); setInterval(() => undefined, 1000);`;
    const program = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = await new Promise<number>((done) => program.stdout!.once('data', (d: Buffer) => done(Number(String(d).trim()))));
    await expect.poll(() => liveInGroup(pid).length, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    program.kill('SIGTERM');
    expect(await new Promise((done) => program.on('exit', (_code, signal) => done(signal)))).toBe('SIGTERM'); // it still dies of the signal
    await expect.poll(() => liveInGroup(pid), { timeout: 10_000 }).toEqual([]);
  }, 30_000);
});

describe('stageViewLine', () => {
  it('names the stage, its layers and device, and its weight, KV and announced memory in MiB', () => {
    const v = { id: 'x', name: 'h1', index: 2, role: 'layers 2-4', device: 'nvidia h200', gbps: 3, load: null, weightBytes: 3 * 2 ** 20, kvBytes: 2 ** 19, memoryBytes: null, loaded: true };
    expect(stageViewLine(v)).toBe('stage 2 "h1": layers 2-4 on nvidia h200; weights 3.0 MiB, KV 0.5 MiB, memory not announced');
    expect(stageViewLine({ ...v, memoryBytes: 2 ** 30 })).toContain('memory 1024.0 MiB announced');
  });
});
