// Pure pieces of the chat page: settings, live stats, the pipeline picture, chat templates, room links.
import { describe, expect, it } from 'vitest';
import { parseSettings, SettingsError } from '../src/ui/settings.ts';
import { LiveStats, statsLaw, statsLine } from '../src/app/live-stats.ts';
import { pipelineSvg } from '../src/ui/pipeline-view.ts';
import { chatTemplateOf } from '../src/model/chat-template.ts';
import { joinLink, roomParams } from '../src/ui/room.ts';

const FORM: Record<string, string> = {
  mode: 'specpipe', placement: 'tab', stages: '4', 'hop-delay': '0', width: '2', depth: '4', draft: 'model',
  temperature: '0.7', 'top-p': '0.9', 'top-k': '40', seed: '7', 'max-tokens': '64', context: '1024',
};
const get = (over: Record<string, string> = {}) => (name: string) => ({ ...FORM, ...over })[name] ?? '';

describe('parseSettings', () => {
  it('reads every field', () => {
    const s = parseSettings(get());
    expect(s).toEqual({
      mode: 'specpipe', placement: 'tab', stages: 4, hopDelayMs: 0, width: 2, depth: 4, draft: 'model',
      sampling: { temperature: 0.7, topP: 0.9, topK: 40, seed: 7 }, maxTokens: 64, context: 1024, emulation: null, quant: null,
    });
  });
  it('reads the weight quantization (none: as stored) and rejects unknown formats', () => {
    expect(parseSettings(get({ quant: 'none' })).quant).toBeNull();
    expect(parseSettings(get({ quant: 'q4_0' })).quant).toBe('q4_0');
    expect(() => parseSettings(get({ quant: 'q4_k' }))).toThrow(/quant must be one of q8_0, q4_0/);
  });
  it('reads emulated device costs (off when empty or 0) and rejects malformed ones', () => {
    expect(parseSettings(get({ 'stage-ms': '0', 'draft-ms': '' })).emulation).toBeNull();
    expect(parseSettings(get({ 'stage-ms': '50', 'draft-ms': '10:0.5' })).emulation).toEqual({ stageMs: { fixedMs: 50, perRowMs: 0 }, draftMs: { fixedMs: 10, perRowMs: 0.5 } });
    expect(parseSettings(get({ 'stage-ms': '50' })).emulation).toEqual({ stageMs: { fixedMs: 50, perRowMs: 0 }, draftMs: null });
    expect(() => parseSettings(get({ 'stage-ms': '50ms' }))).toThrow(SettingsError);
    expect(() => parseSettings(get({ 'draft-ms': '-1' }))).toThrow(/draft-ms must be A or A:B/);
  });
  it('single mode always runs one stage in this tab', () => {
    const s = parseSettings(get({ mode: 'single', stages: '8', placement: 'mesh' }));
    expect(s.stages).toBe(1);
    expect(s.placement).toBe('tab');
  });
  it('rejects out-of-range and malformed values with the field name', () => {
    expect(() => parseSettings(get({ width: '9' }))).toThrow(/width must be a whole number from 1 to 8/);
    expect(() => parseSettings(get({ temperature: '' }))).toThrow(SettingsError);
    expect(() => parseSettings(get({ 'top-p': '1.5' }))).toThrow(/top-p/);
    expect(() => parseSettings(get({ mode: 'fast' }))).toThrow(/mode must be one of/);
    expect(() => parseSettings(get({ stages: '2.5' }))).toThrow(/stages/);
  });
});

describe('LiveStats', () => {
  it('counts a hit when the token it announced arrives, and gives rate, gaps and the bound', () => {
    const s = new LiveStats(4, 'specpipe');
    s.token(1000, true);
    s.packet({ step: 3, epoch: 0, rowsComputed: 2, rowsDropped: 0, startMs: 1000, endMs: 1010 });
    s.token(1010, false);
    s.packet({ step: 4, epoch: 0, rowsComputed: 2, rowsDropped: 0, startMs: 1010, endMs: 1030 });
    s.packet({ step: 5, epoch: 1, rowsComputed: 0, rowsDropped: 2, startMs: 1030, endMs: 1030 });
    s.token(1050, true);
    const snap = s.snapshot();
    expect(snap.tokens).toBe(3);
    expect(snap.hits).toBe(1);
    expect(snap.misses).toBe(1);
    expect(snap.hitRate).toBe(0.5);
    expect(snap.tokensPerSecond).toBeCloseTo(2000 / 50);
    expect(snap.tbtMeanMs).toBe(25); // (1050 - 1000) / (3 - 1)
    expect(snap.tbtP50Ms).toBe(10);
    expect(snap.tbtP95Ms).toBe(40);
    expect(snap.stepMs).toBe(15); // empty packets do not count as steps
    expect(snap.tokensPerStep).toBeCloseTo((40 * 15) / 1000);
    expect(snap.boundTokensPerStep).toBeCloseTo(1 / (0.5 + 0.5 * 4));
    expect(statsLine(snap)).toContain('hit 50%');
  });
  it('leaves the prefill out of the step time and gives pp its 1/S bound', () => {
    const s = new LiveStats(2, 'pipeline');
    s.packet({ step: 0, epoch: 0, rowsComputed: 40, rowsDropped: 0, startMs: 0, endMs: 500 });
    expect(s.snapshot().stepMs).toBeNull();
    s.token(600, false);
    expect(s.snapshot().hitRate).toBeNull();
    expect(s.snapshot().boundTokensPerStep).toBe(0.5);
  });
  it('gives a static tree no SpecPipe bound (its law is per round)', () => {
    const s = new LiveStats(4, 'tree');
    s.token(0, true);
    s.token(10, false);
    s.token(30, true);
    expect(s.snapshot().hitRate).toBe(0.5);
    expect(s.snapshot().boundTokensPerStep).toBeNull();
    expect(statsLaw('tree', 'model')).toBe('tree');
    expect(statsLaw('specpipe', 'none')).toBe('pipeline');
    expect(statsLaw('pp', 'model')).toBe('pipeline');
  });
  it('does not count unknown hits (tokens from stage tabs)', () => {
    const s = new LiveStats(2, 'specpipe');
    s.token(0, null);
    s.token(10, null);
    expect(s.snapshot().hitRate).toBeNull();
  });
});

describe('pipelineSvg', () => {
  it('draws one cell per stage and level, marks dropped levels, and one dot per commit', () => {
    const svg = pipelineSvg({
      stages: 2,
      packets: [
        { stage: 0, packet: { step: 1, epoch: 0, rowsComputed: 2, rowsDropped: 0, startMs: 0, endMs: 5 } },
        { stage: 1, packet: { step: 1, epoch: 0, rowsComputed: 2, rowsDropped: 0, startMs: 5, endMs: 9 } },
        { stage: 1, packet: { step: 2, epoch: 1, rowsComputed: 0, rowsDropped: 1, startMs: 9, endMs: 9 } },
      ],
      commits: [true, false, true],
    });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.match(/data-stage="0"/g)).toHaveLength(1);
    expect(svg.match(/data-stage="1"/g)).toHaveLength(2);
    expect(svg).toContain('×');
    expect(svg.match(/<circle/g)).toHaveLength(3);
    expect(svg.match(/<title>hit<\/title>/g)).toHaveLength(2);
  });
  it('keeps only the last columns', () => {
    const packets = Array.from({ length: 50 }, (_, i) => ({ stage: 0, packet: { step: i, epoch: 0, rowsComputed: 1, rowsDropped: 0, startMs: i, endMs: i + 1 } }));
    const svg = pipelineSvg({ stages: 1, packets, commits: [] }, 10);
    expect(svg.match(/data-stage="0"/g)).toHaveLength(10);
    expect(svg).toContain('data-step="49"');
    expect(svg).not.toContain('data-step="39"');
  });
});

describe('chatTemplateOf', () => {
  it('is null for a plain-continuation model', () => {
    expect(chatTemplateOf({ bos_token: '<s>' })).toBeNull();
    expect(chatTemplateOf(null)).toBeNull();
  });
  it('renders a ChatML template with the generation prompt', () => {
    const t = chatTemplateOf({
      eos_token: { content: '<|im_end|>' },
      chat_template: "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    });
    expect(t!.render([{ role: 'user', content: 'hi' }])).toBe('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
  });
  it('picks the "default" of named templates and passes bos_token', () => {
    const t = chatTemplateOf({ bos_token: '<s>', chat_template: [{ name: 'tool_use', template: 'x' }, { name: 'default', template: '{{ bos_token }}{{ messages[0].content }}' }] });
    expect(t!.render([{ role: 'user', content: 'q' }])).toBe('<s>q');
  });
  it('reports a template that does not parse', () => {
    expect(() => chatTemplateOf({ chat_template: '{% for %}' })).toThrow(/chat template does not parse/);
  });
});

describe('room links', () => {
  it('keeps a valid room and the fragment secret, and builds the stage link', () => {
    const p = roomParams(new URL('https://10.0.0.2:8443/?room=lan#secret=s3'));
    expect(p).toEqual({ room: 'lan', secret: 's3', isStage: false });
    expect(joinLink(new URL('https://10.0.0.2:8443/?room=lan'), p.room, p.secret)).toBe('https://10.0.0.2:8443/?room=lan&stage#secret=s3');
  });
  it('recognises stage tabs and makes up a room when there is none (or a bad one)', () => {
    expect(roomParams(new URL('http://x/?room=a&stage')).isStage).toBe(true);
    expect(roomParams(new URL('http://x/?room=a&role=stage')).isStage).toBe(true);
    expect(roomParams(new URL('http://x/?room=bad%20room')).room).toMatch(/^mesh-[a-z2-9]{6}$/);
  });
});
