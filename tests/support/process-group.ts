// Which processes of a process group are still running, read from /proc (Linux): for tests that check
// a stage host's whole group ends with it.
import { readdirSync, readFileSync } from 'node:fs';

/** Ids of the processes of group `pgid` that are not zombies. */
export function liveInGroup(pgid: number): number[] {
  const live: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // state, ppid, pgrp, ...
      if (Number(f[2]) === pgid && f[0] !== 'Z') live.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return live;
}
