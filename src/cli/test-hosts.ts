// `npm run test:hosts`: the mesh across separate hosts on one machine. Puts the signalling/HTTPS
// server and 4 Node stage hosts each in its own Linux network namespace with its own address on a
// bridge (ip netns + veth; the leader's Chromium stays on the bridge's own address), runs
// e2e/hosts-netns.spec.ts against them (3 hosts in the ring, the 4th a spare for when a link is
// cut), and removes every namespace, link and bridge afterwards, also on failure or Ctrl-C.
// Skips (exit 0, with the reason) where namespaces cannot be made: not root, no `ip`, no netns.
// Namespaces have no default route: traffic stays on the bridge's subnet and each one's loopback.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { errorMessage } from '../common/errors.ts';

/** What the spec gets (env SPECPIPE_NETNS, JSON): the bridge's address, the server's and the hosts' namespaces. */
export interface NetnsLayout {
  bridge: { name: string; addr: string };
  server: NetnsHost;
  hosts: NetnsHost[];
}

/** One namespace: its name, its address on the bridge, and the host side of its veth pair (cut it to cut the link). */
export interface NetnsHost {
  ns: string;
  addr: string;
  veth: string;
}

const HOSTS = 4;
const repo = resolve(import.meta.dirname, '../..');

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** Why namespaces cannot be used here, or null when they can. */
function unavailable(): string | null {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return 'not root (ip netns needs root; run it as root, e.g. in CI)';
  try {
    ip('-V');
  } catch {
    return 'no `ip` command (apt-get install iproute2)';
  }
  const probe = `spprobe${randomBytes(2).toString('hex')}`;
  try {
    ip('netns', 'add', probe);
  } catch (e) {
    return `ip netns add failed: ${errorMessage(e).split('\n').slice(-2).join(' ').trim()}`;
  } finally {
    try {
      ip('netns', 'del', probe);
    } catch {
      // it was never made
    }
  }
  return null;
}

/** A /24 under 10.77 that no interface of this machine uses yet (another run may hold 10.77.0.0/24). */
function freeSubnet(): string {
  const used = ip('-4', '-o', 'addr', 'show');
  for (let n = 0; n < 255; n++) if (!used.includes(` 10.77.${n}.`)) return `10.77.${n}`;
  throw new Error('no free 10.77.N.0/24 subnet');
}

/** Makes the bridge and the namespaces; registers each piece in `made` as soon as it exists, for teardown. */
function setUp(made: { bridge?: string; namespaces: string[] }): NetnsLayout {
  const tag = randomBytes(2).toString('hex');
  const net = freeSubnet();
  const bridge = `spbr${tag}`;
  ip('link', 'add', 'name', bridge, 'type', 'bridge');
  made.bridge = bridge;
  ip('addr', 'add', `${net}.1/24`, 'dev', bridge);
  ip('link', 'set', bridge, 'up');
  const place = (i: number, role: string): NetnsHost => {
    const ns = `sp${tag}-${role}`;
    const veth = `spv${tag}${i}`;
    const addr = `${net}.${10 + i}`;
    ip('netns', 'add', ns);
    made.namespaces.push(ns);
    ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('link', 'set', veth, 'master', bridge);
    ip('link', 'set', veth, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    return { ns, addr, veth };
  };
  const server = place(0, 'srv');
  const hosts = Array.from({ length: HOSTS }, (_, i) => place(i + 1, `h${i + 1}`));
  return { bridge: { name: bridge, addr: `${net}.1` }, server, hosts };
}

/** Kills what still runs in the namespaces, then deletes them (their veth pairs go with them) and the bridge. */
function tearDown(made: { bridge?: string; namespaces: string[] }): void {
  for (const ns of made.namespaces) {
    try {
      for (const pid of ip('netns', 'pids', ns).split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone already
    }
  }
  for (const ns of made.namespaces.splice(0)) {
    try {
      ip('netns', 'del', ns);
    } catch (e) {
      console.error(`test:hosts: could not delete namespace ${ns}: ${errorMessage(e)}`);
    }
  }
  if (made.bridge) {
    try {
      ip('link', 'del', made.bridge);
    } catch (e) {
      console.error(`test:hosts: could not delete bridge ${made.bridge}: ${errorMessage(e)}`);
    }
    made.bridge = undefined;
  }
}

async function main(): Promise<number> {
  const why = unavailable();
  if (why) {
    console.log(`test:hosts: SKIPPED: network namespaces are not available here: ${why}.`);
    return 0;
  }
  const made: { bridge?: string; namespaces: string[] } = { namespaces: [] };
  let child: ChildProcess | null = null;
  const onSignal = (sig: NodeJS.Signals): void => {
    // The spec runs in its own process group (so that this handler, not the signal, ends it).
    if (child?.pid) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    tearDown(made);
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const layout = setUp(made);
    console.log(`test:hosts: bridge ${layout.bridge.name} ${layout.bridge.addr} (leader's Chromium); server ${layout.server.ns} ${layout.server.addr}; ` +
      `stage hosts ${layout.hosts.map((h) => `${h.ns} ${h.addr}`).join(', ')}`);
    const spec = spawn('npx', ['playwright', 'test', 'e2e/hosts-netns.spec.ts', ...process.argv.slice(2)], {
      cwd: repo,
      stdio: 'inherit',
      detached: true,
      env: { ...process.env, SPECPIPE_NETNS: JSON.stringify(layout) },
    });
    child = spec;
    return await new Promise<number>((done) => spec.on('exit', (code, signal) => done(code ?? (signal ? 1 : 0))));
  } finally {
    tearDown(made);
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`test:hosts: ${errorMessage(e)}`);
    process.exit(1);
  },
);
