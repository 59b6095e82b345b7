// The stage host's command line (src/cli/stage-host-args.ts).
import { describe, expect, it } from 'vitest';
import { parseJoinLink, parseStageHostArgs } from '../src/cli/stage-host-args.ts';

describe('stage host arguments', () => {
  it('reads the signalling URL, room and secret from a join link', () => {
    expect(parseJoinLink('https://10.0.0.5:8443/?room=lab&stage#secret=a%20b')).toEqual({ signalUrl: 'wss://10.0.0.5:8443/signal', room: 'lab', secret: 'a b' });
    expect(parseJoinLink('http://127.0.0.1:5197/?room=r1')).toEqual({ signalUrl: 'ws://127.0.0.1:5197/signal', room: 'r1' });
    expect(() => parseJoinLink('https://host:8443/')).toThrow('no ?room=NAME');
    expect(() => parseJoinLink('ftp://host/?room=x')).toThrow('expected an https://');
    expect(() => parseJoinLink('host:8443')).toThrow();
  });

  it('takes the options, --secret over the link\'s, with defaults', () => {
    const o = parseStageHostArgs(['--join', 'https://h:8443/?room=r#secret=link', '--secret', 'flag', '--memory-gb', '2.5', '--name', 'box', '--cache-dir', '/tmp/c', '--swiftshader']);
    expect(o).toEqual({ signalUrl: 'wss://h:8443/signal', room: 'r', secret: 'flag', name: 'box', memoryBytes: 2.5e9, cacheDir: '/tmp/c', swiftshader: true, insecure: false });
    const d = parseStageHostArgs(['--join', 'http://h/?room=r'])!;
    expect(d.secret).toBeUndefined();
    expect(d.memoryBytes).toBe(0);
    expect(d.name).toMatch(/ \(node\)$/);
    expect(d.cacheDir).toMatch(/\.cache\/specpipe-mesh$/);
    expect(parseStageHostArgs(['--help'])).toBeNull();
    expect(() => parseStageHostArgs([])).toThrow('--join is required');
    expect(() => parseStageHostArgs(['--join', 'http://h/?room=r', '--memroy-gb', '1'])).toThrow('unknown option --memroy-gb');
  });
});
