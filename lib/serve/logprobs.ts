// Log-probabilities in OpenAI's two shapes: the legacy completions' parallel arrays (`tokens`,
// `token_logprobs`, `top_logprobs`, `text_offset`, what lm-evaluation-harness reads) and chat's
// list of `{ token, logprob, bytes, top_logprobs }`. The numbers are the library's: a prompt's
// from `model.score`, a generated token's from its step (`logprob`, `alternatives`), all under
// the model's own distribution, as vLLM's default.
import type { GenerateStep } from '../generate-options'
import type { Gpt2, ScoredToken } from '../gpt2'

/** The most alternatives a request may ask for at each position (OpenAI's chat limit; vLLM's default `max_logprobs`). */
export const MAX_LOGPROBS = 20

/** A token with its log-probability (null for a text's first, which has no context) and the most likely tokens in its place. */
export interface TokenLogprob {
  token: string
  logprob: number | null
  top: { token: string; logprob: number }[] | null
}

export interface CompletionLogprobs {
  tokens: string[]
  token_logprobs: (number | null)[]
  top_logprobs: (Record<string, number> | null)[]
  /** Where each token starts, in characters (code points, as Python counts them) of prompt + completion. */
  text_offset: number[]
}

/** The prompt's tokens scored (`model.score`, its `k` most likely tokens at each position). */
export async function promptLogprobs(model: Gpt2, ids: Uint32Array, k: number): Promise<TokenLogprob[]> {
  // score needs a context to score against; a lone token has only its own null entry.
  const scored: ScoredToken[] =
    ids.length >= 2
      ? (await model.score(ids, { topK: k })).tokens
      : [...ids].map((id) => ({ id, token: model.tokenizer.decode([id]), logprob: null }))
  return scored.map((t) => ({
    token: t.token,
    logprob: t.logprob,
    top: t.logprob === null ? null : (t.alternatives ?? []),
  }))
}

/** A generated token, with its step's alternatives. */
export function stepLogprob(model: Gpt2, step: GenerateStep): TokenLogprob {
  const top = (step.alternatives ?? []).map(({ token, logprob }) => ({ token, logprob }))
  return { token: model.tokenizer.decode([step.id]), logprob: step.logprob, top }
}

/** Characters of `text` as `text_offset` counts them: code points, as Python's `len`. */
export function characters(text: string): number {
  let n = 0
  for (const _ of text) n++
  return n
}

/** The completions shape of `tokens`, their offsets counted from `offset` (characters before the first). */
export function completionLogprobs(tokens: TokenLogprob[], offset: number): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] }
  for (const t of tokens) {
    out.tokens.push(t.token)
    out.token_logprobs.push(t.logprob)
    // Tokens whose texts coincide (pieces of one UTF-8 character) share a key: the likeliest stays.
    out.top_logprobs.push(t.top && Object.fromEntries([...t.top].reverse().map((a) => [a.token, a.logprob])))
    out.text_offset.push(offset)
    offset += characters(t.token)
  }
  return out
}

const bytes = (token: string) => [...Buffer.from(token, 'utf8')]

/** The chat shape of generated tokens. */
export function chatLogprobs(tokens: TokenLogprob[]) {
  return tokens.map((t) => ({
    token: t.token,
    logprob: t.logprob,
    bytes: bytes(t.token),
    top_logprobs: (t.top ?? []).map((a) => ({ token: a.token, logprob: a.logprob, bytes: bytes(a.token) })),
  }))
}
