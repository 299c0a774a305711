// pytorch_model.bin as torch.save writes a state dict: a zip of a pickle (`archive/data.pkl`,
// protocol 2) and one stored entry per storage (`archive/data/<key>`), so that tests can write
// hostile checkpoints (a pickle that lies, a memo bomb) without PyTorch. CRCs are left 0: nexttoken
// does not read them.
import { readSafetensors } from './safetensors'

/** A tensor of a state dict: a row-major view of `count` values of storage `key`, of a torch `storage` class. */
export interface PickledTensor {
  name: string
  storage: string
  key: string
  count: bigint
  shape: bigint[]
  offset?: bigint
  /** Default: row-major for `shape`. */
  stride?: bigint[]
}

function int(value: bigint): Buffer {
  if (value >= -(2n ** 31n) && value < 2n ** 31n) {
    const out = Buffer.alloc(5)
    out[0] = 0x4a // BININT
    out.writeInt32LE(Number(value), 1)
    return out
  }
  const out = Buffer.alloc(10)
  out[0] = 0x8a // LONG1, 8 bytes
  out[1] = 8
  out.writeBigInt64LE(value, 2)
  return out
}

function string(text: string): Buffer {
  const data = Buffer.from(text, 'utf8')
  const length = Buffer.alloc(4)
  length.writeUInt32LE(data.length)
  return Buffer.concat([Buffer.from('X'), length, data])
}

const ascii = (text: string) => Buffer.from(text, 'latin1')
const ints = (values: bigint[]) => Buffer.concat([ascii('('), ...values.map(int), ascii('t')])

function rowMajor(shape: bigint[]): bigint[] {
  const stride = shape.map(() => 1n)
  for (let i = shape.length - 2; i >= 0; i--) stride[i] = stride[i + 1] * shape[i + 1]
  return stride
}

/** The pickle torch.save writes for a state dict of `tensors`. */
export function stateDictPickle(tensors: PickledTensor[]): Buffer {
  const parts = [ascii('\x80\x02}(')]
  for (const t of tensors) {
    parts.push(string(t.name), ascii('ctorch._utils\n_rebuild_tensor_v2\n(('))
    parts.push(
      string('storage'),
      ascii(`ctorch\n${t.storage}\n`),
      string(t.key),
      string('cpu'),
      int(t.count),
      ascii('tQ'),
    )
    parts.push(int(t.offset ?? 0n), ints(t.shape), ints(t.stride ?? rowMajor(t.shape)))
    parts.push(ascii('\x89ccollections\nOrderedDict\n)RtR'))
  }
  parts.push(ascii('u.'))
  return Buffer.concat(parts)
}

/** A zip of `entries`, each stored as it is. */
export function storedZip(entries: [name: string, data: Buffer][]): Buffer {
  const local: Buffer[] = []
  const directory: Buffer[] = []
  let offset = 0
  for (const [name, data] of entries) {
    const nameBytes = Buffer.from(name, 'utf8')
    const header = Buffer.alloc(30)
    header.writeUInt32LE(0x04034b50, 0)
    header.writeUInt16LE(20, 4)
    header.writeUInt32LE(data.length, 18)
    header.writeUInt32LE(data.length, 22)
    header.writeUInt16LE(nameBytes.length, 26)
    const entry = Buffer.alloc(46)
    entry.writeUInt32LE(0x02014b50, 0)
    entry.writeUInt16LE(20, 4)
    entry.writeUInt16LE(20, 6)
    entry.writeUInt32LE(data.length, 20)
    entry.writeUInt32LE(data.length, 24)
    entry.writeUInt16LE(nameBytes.length, 28)
    entry.writeUInt32LE(offset, 42)
    local.push(header, nameBytes, data)
    directory.push(entry, nameBytes)
    offset += 30 + nameBytes.length + data.length
  }
  const directoryBytes = Buffer.concat(directory)
  const end = Buffer.alloc(22)
  end.writeUInt32LE(0x06054b50, 0)
  end.writeUInt16LE(entries.length, 8)
  end.writeUInt16LE(entries.length, 10)
  end.writeUInt32LE(directoryBytes.length, 12)
  end.writeUInt32LE(offset, 16)
  return Buffer.concat([...local, directoryBytes, end])
}

/** pytorch_model.bin of `pickle` and `storages` (key, bytes), as torch.save lays it out. */
export function pytorchCheckpoint(pickle: Buffer, storages: [key: string, data: Buffer][] = []): Buffer {
  return storedZip([
    ['archive/data.pkl', pickle],
    ['archive/byteorder', Buffer.from('little')],
    ...storages.map(([key, data]): [string, Buffer] => [`archive/data/${key}`, data]),
  ])
}

/** The safetensors file `path` (F16 or F32 tensors) as pytorch_model.bin. */
export function pytorchFromSafetensors(path: string): Buffer {
  const tensors = [...readSafetensors(path)]
  const storage = (dtype: string) => ({ F16: 'HalfStorage', F32: 'FloatStorage' })[dtype] ?? `${dtype}?`
  const size = (dtype: string) => (dtype === 'F32' ? 4n : 2n)
  const pickled = tensors.map(([name, t], i) => ({
    name,
    storage: storage(t.dtype),
    key: String(i),
    count: BigInt(t.data.length) / size(t.dtype),
    shape: t.shape.map(BigInt),
  }))
  return pytorchCheckpoint(
    stateDictPickle(pickled),
    tensors.map(([, t], i) => [String(i), t.data]),
  )
}
