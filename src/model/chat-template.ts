// Chat templates (tokenizer_config.json's chat_template) rendered with @huggingface/jinja: the chat
// page and the OpenAI-compatible API (src/app/api-relay.ts) turn messages into a prompt here.
import { Template } from '@huggingface/jinja';

/** One turn of a conversation. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

function tokenText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return '';
}

/** A model's chat template, ready to render a conversation (with the generation prompt appended). */
export interface ChatTemplate {
  render(messages: readonly ChatMessage[]): string;
}

/**
 * The model's chat template, or null for a plain-continuation model. Handles both shapes HF uses:
 * a string, or a list of named templates (the one named "default" is used).
 */
export function chatTemplateOf(tokenizerConfig: unknown): ChatTemplate | null {
  if (typeof tokenizerConfig !== 'object' || tokenizerConfig === null) return null;
  const cfg = tokenizerConfig as Record<string, unknown>;
  let source: unknown = cfg.chat_template;
  if (Array.isArray(source)) {
    const named = source as { name?: unknown; template?: unknown }[];
    source = (named.find((t) => t.name === 'default') ?? named[0])?.template;
  }
  if (typeof source !== 'string' || source.trim() === '') return null;
  let template: Template;
  try {
    template = new Template(source);
  } catch (e) {
    throw new Error(`tokenizer_config.json: the chat template does not parse (${(e as Error).message})`);
  }
  const bos = tokenText(cfg.bos_token);
  const eos = tokenText(cfg.eos_token);
  return {
    render: (messages) => template.render({ messages, bos_token: bos, eos_token: eos, add_generation_prompt: true }),
  };
}
