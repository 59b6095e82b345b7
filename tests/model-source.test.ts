import { describe, expect, it } from 'vitest';
import { urlSource, fileSource, ModelSourceError } from '../src/model/source.ts';
import { ModelFormatError, SpecpipeError } from '../src/common/errors.ts';
import { loadModel, loadStageTensors } from '../src/model/index.ts';
import { readFileSync } from 'node:fs';

type Mode = 'ranges' | 'no-head-length' | 'ignore-range';

/** A fake HTTP server over the tiny-llama fixture, recording what it was asked. */
function fakeServer(mode: Mode): { fetch: typeof fetch; log: string[] } {
  const dir = 'public/fixtures/tiny-llama/';
  const log: string[] = [];
  const fake = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input));
    const name = url.pathname.split('/').pop() as string;
    const method = init?.method ?? 'GET';
    const range = new Headers(init?.headers).get('range');
    log.push(`${method} ${name}${range ? ` ${range}` : ''}`);
    let body: Uint8Array<ArrayBuffer>;
    try {
      body = new Uint8Array(readFileSync(dir + name));
    } catch {
      return new Response('not found', { status: 404, statusText: 'Not Found' });
    }
    if (method === 'HEAD') {
      return new Response(null, { status: 200, headers: mode === 'no-head-length' ? {} : { 'content-length': String(body.byteLength), etag: '"v1"' } });
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(range ?? '');
    if (m && mode !== 'ignore-range') {
      const [s, e] = [Number(m[1]), Math.min(Number(m[2]) + 1, body.byteLength)];
      return new Response(body.slice(s, e), { status: 206, headers: { 'content-range': `bytes ${s}-${e - 1}/${body.byteLength}` } });
    }
    return new Response(body, { status: 200 });
  };
  return { fetch: fake as typeof fetch, log };
}

const role = { layers: { start: 0, end: 3 }, embed: true, head: true };

describe('urlSource', () => {
  it('reads headers then tensor ranges with Range requests', async () => {
    const server = fakeServer('ranges');
    const source = urlSource('http://example.test/m', { fetch: server.fetch });
    const model = await loadModel(source);
    expect(model.spec.numLayers).toBe(3);
    expect(server.log).toContain('GET model.safetensors bytes=0-7');
    const t = await loadStageTensors(source, model.spec, role);
    expect(t.size).toBe(3 + 3 * 9);
    expect(source.warnings).toEqual([]);
  });

  it('finds the size from Content-Range when HEAD has no Content-Length', async () => {
    const server = fakeServer('no-head-length');
    const source = urlSource('http://example.test/m/', { fetch: server.fetch });
    expect((await source.stat('model.safetensors')).size).toBe(readFileSync('public/fixtures/tiny-llama/model.safetensors').byteLength);
    expect(server.log).toEqual(['HEAD model.safetensors', 'GET model.safetensors bytes=0-0']);
  });

  it('downloads once and slices when the server ignores Range', async () => {
    const server = fakeServer('ignore-range');
    const source = urlSource('http://example.test/m/', { fetch: server.fetch });
    const model = await loadModel(source);
    await loadStageTensors(source, model.spec, role);
    expect(server.log.filter((l) => /^GET model\.safetensors( |$)/.test(l)), server.log.join('\n')).toHaveLength(1);
    expect(model.warnings.join()).toMatch(/ignored the Range header/);
  });

  it('names the URL of a missing file', async () => {
    const server = fakeServer('ranges');
    const source = urlSource('http://example.test/nope/', { fetch: server.fetch });
    await expect(source.readJson('nothing.json')).rejects.toThrow('http://example.test/nope/nothing.json: HTTP 404 Not Found');
    await expect(source.stat('nothing.safetensors')).rejects.toThrow(ModelSourceError);
    const e = await source.readJson('nothing.json').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SpecpipeError);
    expect((e as SpecpipeError).code).toBe('model-source');
    expect(await source.readOptionalJson('nothing.json')).toBeNull();
  });

  it('a file that is read but malformed or short: ModelFormatError', async () => {
    const files = fileSource({ 'config.json': new Blob(['{"hidden_size": 4,']), 'w.safetensors': new Blob([new Uint8Array(10)]) });
    await expect(files.readJson('config.json')).rejects.toThrow(ModelFormatError);
    await expect(files.readJson('config.json')).rejects.toThrow(/config\.json: not valid JSON/);
    await expect(files.readRange('w.safetensors', 8, 20)).rejects.toThrow(ModelFormatError);
    await expect(files.readJson('absent.json')).rejects.toThrow(ModelSourceError);
  });

  it('refuses a relative URL outside a page', () => {
    expect(() => urlSource('/models/x/')).toThrow(/not absolute/);
  });
});
