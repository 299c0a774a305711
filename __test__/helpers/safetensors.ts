// A minimal safetensors reader/writer, so tests can derive broken or re-encoded checkpoints from
// the committed fixture instead of committing each variant.
import { readFileSync, writeFileSync } from 'node:fs'

export interface StoredTensor {
  dtype: string
  shape: number[]
  data: Buffer
}

export function readSafetensors(path: string): Map<string, StoredTensor> {
  const file = readFileSync(path)
  const headerLength = Number(file.readBigUInt64LE(0))
  const header = JSON.parse(file.subarray(8, 8 + headerLength).toString('utf8'))
  const dataStart = 8 + headerLength
  const tensors = new Map<string, StoredTensor>()
  type Entry = { dtype: string; shape: number[]; data_offsets: [number, number] }
  for (const [name, info] of Object.entries<Entry>(header)) {
    if (name === '__metadata__') continue
    const [begin, end] = info.data_offsets
    tensors.set(name, {
      dtype: info.dtype,
      shape: info.shape,
      data: Buffer.from(file.subarray(dataStart + begin, dataStart + end)),
    })
  }
  return tensors
}

export function writeSafetensors(path: string, tensors: Map<string, StoredTensor>): void {
  const header: Record<string, unknown> = {}
  let offset = 0
  for (const [name, t] of tensors) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] }
    offset += t.data.length
  }
  let json = JSON.stringify(header)
  json += ' '.repeat((8 - (json.length % 8)) % 8) // the format pads the header to 8 bytes
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)))
  writeFileSync(path, Buffer.concat([length, Buffer.from(json), ...[...tensors.values()].map((t) => t.data)]))
}

/** IEEE half -> single precision (exact: every f16 value is representable in f32). */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const exponent = (h >> 10) & 0x1f
  const fraction = h & 0x3ff
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024)
  if (exponent === 31) return fraction ? NaN : sign * Infinity
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024)
}

/** The same tensor stored as F32. */
export function widenToF32(t: StoredTensor): StoredTensor {
  if (t.dtype === 'F32') return t
  if (t.dtype !== 'F16') throw new Error(`cannot widen ${t.dtype}`)
  const out = new Float32Array(t.data.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = halfToFloat(t.data.readUInt16LE(2 * i))
  return { dtype: 'F32', shape: t.shape, data: Buffer.from(out.buffer) }
}
