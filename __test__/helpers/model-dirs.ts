// Temporary model directories: a copy of the tiny fixture with some files changed.
import { copyFileSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { TINY_MODEL } from './fixtures'
import { readSafetensors, type StoredTensor, writeSafetensors } from './safetensors'

/** A fresh directory holding the fixture's files except `omit`. */
export function copyOfTinyModel(omit: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), 'nexttoken-'))
  for (const file of readdirSync(TINY_MODEL)) {
    if (!omit.includes(file)) copyFileSync(join(TINY_MODEL, file), join(dir, file))
  }
  return dir
}

/** A copy of the fixture whose weights are `edit(tensors)`. */
export function tinyModelWithWeights(edit: (tensors: Map<string, StoredTensor>) => Map<string, StoredTensor>): string {
  const dir = copyOfTinyModel()
  const tensors = readSafetensors(join(TINY_MODEL, 'model.safetensors'))
  writeSafetensors(join(dir, 'model.safetensors'), edit(tensors))
  return dir
}

/** A copy of the fixture with `file` replaced by `content`. */
export function tinyModelWithFile(file: string, content: string | Buffer): string {
  const dir = copyOfTinyModel()
  writeFileSync(join(dir, file), content)
  return dir
}
