// `npm run soak` for 2 minutes (issue 16): a leader and 3 stage tabs generate without a break while
// a stage tab is closed mid-generation every 20-40 s and a new one joins; every output equals
// single's, no committed token is lost, and no tab's memory grows 5% from its first minute to its last.
import { test, expect } from '@playwright/test';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { SoakSummary } from '../src/cli/soak-report.ts';

test('a 2-minute soak with stage tabs closed and replaced: every output equals single\'s, nothing lost, memory flat', async ({}, info) => {
  test.setTimeout(420_000);
  const out = info.outputPath('soak');
  const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile('npx', ['tsx', 'src/cli/soak.ts', '--minutes', '2', '--stages', '3', '--chaos-s', '20:40', '--out', out, '--json'], { timeout: 400_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as NodeJS.ErrnoException & { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
  console.log(run.stderr.trim());
  const summary = JSON.parse(run.stdout.trim().split('\n').pop()!) as SoakSummary & { out: string };
  console.log(JSON.stringify(summary));
  expect(summary.generations).toBeGreaterThan(2);
  expect(summary.recoveries).toBeGreaterThanOrEqual(2);
  expect(summary).toMatchObject({ failed: 0, mismatched: 0, tokensLost: 0 });
  expect(summary.growth.length).toBeGreaterThanOrEqual(1);
  expect(summary.maxGrowth).toBeLessThan(0.05);
  expect(run.code, run.stderr).toBe(0);
  expect(readFileSync(`${out}/soak.html`, 'utf8')).toContain('<svg');
});
