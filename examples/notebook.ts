// The notebook this library replaces, step by step, in Node:
//   1. load the tokenizer and the model;
//   2. the next-token probabilities after a sentence, as a top-5 table;
//   3. greedy decoding by hand: append the most likely token, again and again;
//   4. model.generate with max_length=100, then the same as a stream, sampled, with an abort.
//
//   npx tsx examples/notebook.ts [repo id or model dir]   (defaults to the tiny test model: random weights)
import { join } from 'node:path'

import { AbortError, Gpt2, Tokenizer } from 'nexttoken'

const modelDir = process.argv[2] ?? join(__dirname, '..', '__test__', 'fixtures', 'tiny-gpt2')

async function main() {
  // Step 1: tokenizer and model.
  const tokenizer = await Tokenizer.fromPretrained(modelDir)
  await using model = await Gpt2.fromPretrained(modelDir, { device: 'cpu' })
  const sentence = "I am learning about generative ai and LLM's"
  console.log('Step 1: token ids of', JSON.stringify(sentence))
  console.log(' ', Array.from(tokenizer.encode(sentence)).join(', '))

  // Step 2: the five most likely next tokens.
  console.log('\nStep 2: next-token probabilities')
  console.table((await model.topK(sentence, 5)).map(({ id, token, p }) => ({ id, token, p: p.toFixed(4) })))

  // Step 3: greedy steps by hand (each call re-reads the whole text; generate() below caches).
  console.log('Step 3: greedy, one token at a time')
  let text = 'Once upon a time, generative models'
  for (let i = 0; i < 8; i++) {
    const next = await model.nextToken(text)
    text += next.token
    console.log(`  + ${JSON.stringify(next.token).padEnd(16)} p=${next.p.toFixed(3)}`)
  }

  // Step 4: generate, as model.generate(**inputs, max_length=100, pad_token_id=eos).
  console.log('\nStep 4: generate (greedy, max_length=100)')
  const result = await model.generate('Once upon a time, generative models', { maxLength: 100 })
  console.log(`  ${JSON.stringify(result.text.slice(0, 200))}...`)
  console.log(`  stopReason=${result.stopReason}, ${result.newIds.length} new tokens`)

  // GPT-2 repeats itself when greedy: sample instead, and stream the text as it comes.
  console.log('\n  sampled and streamed (temperature 0.8, topP 0.9, noRepeatNgramSize 3), aborted after 1 s:')
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), 1000)
  process.stdout.write('  ')
  try {
    const options = { maxNewTokens: 60, doSample: true, temperature: 0.8, topP: 0.9, noRepeatNgramSize: 3, seed: 1 }
    for await (const step of model.stream('Once upon a time, generative models', {
      ...options,
      signal: controller.signal,
    })) {
      process.stdout.write(step.text)
    }
  } catch (err) {
    if (!(err instanceof AbortError)) throw err
    process.stdout.write(' [aborted]')
  } finally {
    clearTimeout(timer)
  }
  console.log()
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
