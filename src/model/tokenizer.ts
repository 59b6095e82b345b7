// tokenizer.json (+ tokenizer_config.json) through @huggingface/tokenizers, behind a small interface.
import { Tokenizer } from '@huggingface/tokenizers';
import type { ModelSource } from './source.ts';
import { ModelFormatError } from '../common/errors.ts';

export interface EncodeOptions {
  /** Add BOS etc. as the tokenizer's post-processor says (default true). */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens such as BOS/EOS from the text (default true). */
  skipSpecialTokens?: boolean;
}

/** Turns a growing list of token ids into text pieces, holding back incomplete UTF-8 sequences. */
export interface StreamDecoder {
  /** Adds tokens; returns the text they completed (may be '' while a character is incomplete). */
  push(...ids: number[]): string;
  /** All text emitted so far. */
  readonly text: string;
  /** Every id pushed so far. */
  readonly ids: readonly number[];
}

export interface TextTokenizer {
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /** A decoder for streaming generation: push ids as they come, print what it returns. */
  stream(options?: DecodeOptions): StreamDecoder;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  /** Ids of the chat/end markers the tokenizer config names (eos_token, pad_token ...), where known. */
  readonly eosTokenId: number | null;
  readonly bosTokenId: number | null;
}

/** tokenizer.json is not a tokenizer this runtime can load. */
export class TokenizerError extends ModelFormatError {
  override name = 'TokenizerError';
}

function specialTokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

/** Wraps parsed tokenizer.json + tokenizer_config.json. */
export function createTokenizer(tokenizerJson: unknown, tokenizerConfig: unknown = {}): TextTokenizer {
  if (typeof tokenizerJson !== 'object' || tokenizerJson === null || !('model' in tokenizerJson)) {
    throw new TokenizerError('tokenizer.json: not a Hugging Face tokenizers file (no "model")');
  }
  const config = typeof tokenizerConfig === 'object' && tokenizerConfig !== null ? (tokenizerConfig as Record<string, unknown>) : {};
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(tokenizerJson, config);
  } catch (e) {
    throw new TokenizerError(`tokenizer.json: ${(e as Error).message}`, { cause: e });
  }
  const idOf = (v: unknown): number | null => {
    const content = specialTokenContent(v);
    return content === null ? null : (tok.token_to_id(content) ?? null);
  };

  const decode = (ids: readonly number[], options: DecodeOptions = {}): string =>
    ids.length === 0 ? '' : tok.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? true });

  return {
    encode: (text, options = {}) => tok.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids,
    decode,
    tokenToId: (t) => tok.token_to_id(t),
    idToToken: (id) => tok.id_to_token(id),
    eosTokenId: idOf(config.eos_token),
    bosTokenId: idOf(config.bos_token),
    stream(options = {}) {
      // Decode a window that starts a few tokens back (so leading-space rules see context) and
      // emit what grew beyond the window's previous text; hold back a trailing U+FFFD, which means
      // a character's bytes are still arriving.
      const ids: number[] = [];
      let text = '';
      let prefixOffset = 0;
      let readOffset = 0;
      return {
        get text() {
          return text;
        },
        get ids() {
          return ids;
        },
        push(...more: number[]) {
          ids.push(...more);
          const prefixText = decode(ids.slice(prefixOffset, readOffset), options);
          const newText = decode(ids.slice(prefixOffset), options);
          if (newText.length > prefixText.length && !newText.endsWith('\uFFFD') && newText.startsWith(prefixText)) {
            const piece = newText.slice(prefixText.length);
            text += piece;
            prefixOffset = readOffset;
            readOffset = ids.length;
            return piece;
          }
          if (!newText.startsWith(prefixText) && !newText.endsWith('\uFFFD')) {
            // The decoder rewrote earlier text (rare); resynchronise on the full decode.
            const full = decode(ids, options);
            const piece = full.startsWith(text) ? full.slice(text.length) : '';
            text += piece;
            prefixOffset = readOffset = ids.length;
            return piece;
          }
          return '';
        },
      };
    },
  };
}

/** Loads tokenizer.json (+ tokenizer_config.json) from a model source; null when there is none. */
export async function loadTokenizer(source: ModelSource, signal?: AbortSignal): Promise<TextTokenizer | null> {
  const [json, config] = await Promise.all([source.readOptionalJson('tokenizer.json', signal), source.readOptionalJson('tokenizer_config.json', signal)]);
  if (json === null) return null;
  return createTokenizer(json, config ?? {});
}
