// Minimal `--flag value` / `--switch` parser for the command-line tools.

export type Args = Map<string, string | true>;

export function parseArgs(argv: string[]): Args {
  const out: Args = new Map();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}" (options look like --name value)`);
    const eq = a.indexOf('=');
    if (eq > 0) {
      out.set(a.slice(2, eq), a.slice(eq + 1));
    } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
      out.set(a.slice(2), argv[++i]);
    } else {
      out.set(a.slice(2), true);
    }
  }
  return out;
}

export function str(args: Args, name: string, fallback?: string): string {
  const v = args.get(name);
  if (v === undefined || v === true) {
    if (fallback === undefined) throw new Error(`--${name} is required`);
    return fallback;
  }
  return v;
}

export function num(args: Args, name: string, fallback: number): number {
  const v = args.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (v === true || !Number.isFinite(n)) throw new Error(`--${name} needs a number, got "${String(v)}"`);
  return n;
}

export function numList(args: Args, name: string): number[] | undefined {
  const v = args.get(name);
  if (v === undefined) return undefined;
  if (v === true) throw new Error(`--${name} needs a comma-separated list`);
  return v.split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isFinite(n)) throw new Error(`--${name}: "${s}" is not a number`);
    return n;
  });
}

export function flag(args: Args, name: string): boolean {
  return args.get(name) === true || args.get(name) === 'true';
}

/** Throws on options the tool does not know, so a typo is not silently ignored. */
export function rejectUnknown(args: Args, known: string[]): void {
  for (const k of args.keys()) if (!known.includes(k)) throw new Error(`unknown option --${k} (known: ${known.map((n) => '--' + n).join(' ')})`);
}
