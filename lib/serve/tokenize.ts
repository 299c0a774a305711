// vLLM's POST /tokenize and POST /detokenize, on the model's tokenizer.
import type { Gpt2 } from '../gpt2'
import { badField } from './errors'
import { fieldsOf, string, tokenIds } from './fields'
import type { Exchange, Route } from './http'
import { checkModel } from './request'

export function tokenize(model: Gpt2, name: string): Route {
  return async ({ body, json }: Exchange) => {
    const fields = fieldsOf(body, ['model', 'prompt', 'add_special_tokens'])
    checkModel(fields.model, name)
    if (fields.prompt === undefined) throw badField('prompt', 'is required')
    // GPT-2's tokenizer adds no special tokens, so add_special_tokens changes nothing; it is taken as vLLM takes it.
    if (fields.add_special_tokens !== undefined && typeof fields.add_special_tokens !== 'boolean')
      throw badField('add_special_tokens', 'must be a boolean')
    const tokens = [...(await model.toIds(string(fields.prompt, 'prompt')))]
    json({ count: tokens.length, max_model_len: model.config.nPositions, tokens })
  }
}

export function detokenize(model: Gpt2, name: string): Route {
  return ({ body, json }: Exchange) => {
    const fields = fieldsOf(body, ['model', 'tokens'])
    checkModel(fields.model, name)
    if (fields.tokens === undefined) throw badField('tokens', 'is required')
    json({ prompt: model.tokenizer.decode(tokenIds(fields.tokens, 'tokens')) })
  }
}
