// `nexttoken serve`: the OpenAI-compatible server (lib/serve) until Ctrl-C.
import { once } from 'node:events'
import { serve as startServer } from '../serve/index'
import { type Io, numberOption, UsageError, type Values } from './args'
import { loadModel } from './commands'

export async function serve(values: Values, text: string[], io: Io): Promise<void> {
  if (text.length > 0) throw new UsageError(`serve takes no text; got '${text[0]}'`)
  const load = {
    maxBatchSize: numberOption(values, 'max-batch-size'),
    maxQueueLength: numberOption(values, 'max-queue-length'),
  }
  await using model = await loadModel(values, io, load)
  await using server = await startServer(model, {
    host: values.host as string | undefined,
    port: numberOption(values, 'port'),
    apiKey: values['api-key'] as string | undefined,
    modelName: (values['served-model-name'] as string | undefined) ?? String(values.model),
  })
  io.stderr.write(`nexttoken: serving ${String(values.model)} at ${server.url}/v1 (Ctrl-C stops)\n`)
  if (!io.signal.aborted) await once(io.signal, 'abort')
}
