//! The GGUF container (versions 2 and 3, little-endian): header, metadata, tensor infos. Only
//! these are read here; tensor data is read later, a few MB at a time, by `Weights`.
//!
//! Our own reader rather than candle's `quantized::gguf_file`: candle (0.11.1) allocates
//! `vec![0u8; len]` for whatever length a string field says, before reading it, so one damaged
//! or hostile length field asks for up to 16 EiB and the failed allocation aborts the process;
//! and it reads through a `Read + Seek` with no bound against the file's size. Here every length
//! and count is checked against the bytes left in the file before anything is allocated, every
//! tensor's bytes must lie inside the file, and the file is read with pread (`files::read_at`),
//! never mapped (a file truncated under a mapping is a SIGBUS). Metadata memory stays within a
//! small multiple of the bytes the file spends on it (integer arrays are widened to i64: at most
//! 8x, and at most 2^24 elements an array).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::types::GgmlType;
use super::value::{Array, Value};
use crate::error::{Error, Result};
use crate::files::Source;

/// The file's first four bytes.
const MAGIC: &[u8; 4] = b"GGUF";

/// Tensor data starts on a multiple of this unless `general.alignment` says otherwise.
const DEFAULT_ALIGNMENT: u64 = 32;

/// ggml's GGML_MAX_DIMS.
const MAX_DIMS: u32 = 4;

/// Longest tensor name taken: ggml's own limit is 64 bytes (GGML_MAX_NAME); this is lenient.
const MAX_NAME_BYTES: u64 = 256;

/// Most elements in one metadata array: far more than any tokenizer's (GPT-2: 50,257 tokens;
/// the largest vocabularies ~256k), and it bounds an integer array's memory to 128 MiB.
const MAX_ARRAY_LEN: u64 = 1 << 24;

/// Bytes read from the file at once while parsing the header.
const READ_CHUNK: usize = 1 << 16;

/// One tensor's entry in the header.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// ggml's order: `dims[0]` is the contiguous one (numpy's last).
    pub dims: Vec<u64>,
    pub ggml: GgmlType,
    /// Absolute offset of its data in the file (checked: its bytes lie within the file).
    pub start: u64,
}

impl TensorInfo {
    /// The shape in numpy's (row-major) order: ggml's dims reversed.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    pub fn len(&self) -> u64 {
        self.dims.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An open GGUF file: its metadata and tensor infos, read and checked.
pub struct GgufFile {
    pub path: PathBuf,
    pub file: Source,
    pub version: u32,
    pub metadata: HashMap<String, Value>,
    /// In the file's order.
    pub tensors: Vec<TensorInfo>,
}

impl GgufFile {
    /// Opens and checks `path`; ERR_MODEL_INVALID for anything that is not a readable GGUF.
    pub fn open(path: &Path) -> Result<Self> {
        Self::from_source(path, Source::File(crate::files::open(path, "the GGUF file")?))
    }

    /// `open` for a file's `source` (its bytes in memory for the fuzz target); `path` names it.
    pub fn from_source(path: &Path, file: Source) -> Result<Self> {
        let len = file.size().map_err(|err| Error::invalid_file(path, err))?;
        let invalid = |msg: String| Error::invalid_file(path, format!("not a valid GGUF file: {msg}"));
        let mut cursor = Cursor { file: &file, len, pos: 0, buf: Vec::new(), buf_start: 0 };
        let header = parse(&mut cursor, len).map_err(invalid)?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            version: header.version,
            metadata: header.metadata,
            tensors: header.tensors,
            file,
        })
    }

    /// The metadata value `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }
}

struct Header {
    version: u32,
    metadata: HashMap<String, Value>,
    tensors: Vec<TensorInfo>,
}

fn parse(c: &mut Cursor, file_len: u64) -> std::result::Result<Header, String> {
    if c.bytes(4, "the magic")? != MAGIC {
        return Err("it does not start with 'GGUF'".into());
    }
    let version = c.u32("the version")?;
    match version {
        2 | 3 => {}
        1 => return Err("GGUF version 1 is not supported (versions 2 and 3 are)".into()),
        v if matches!(v.swap_bytes(), 2 | 3) => return Err("big-endian GGUF files are not supported".into()),
        v => return Err(format!("GGUF version {v} is not supported (versions 2 and 3 are)")),
    }
    let tensor_count = c.u64("the tensor count")?;
    let kv_count = c.u64("the metadata count")?;
    // Smallest entries: a key of 0 bytes (8-byte length), a type and a 1-byte value; a tensor
    // name of 0 bytes, its dimension count, type and offset.
    c.check_count(kv_count, 13, "metadata entries")?;
    c.check_count(tensor_count, 24, "tensors")?;

    let mut metadata = HashMap::new();
    for _ in 0..kv_count {
        let key = c.string("a metadata key")?;
        let kind = c.u32("a metadata type")?;
        let value = value(c, kind, &key)?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(format!("metadata key '{key}' appears twice"));
        }
    }
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a.is_power_of_two() => a,
            _ => return Err(format!("general.alignment is {v:?}; it must be a power of two")),
        },
    };

    let mut infos = Vec::new();
    let mut names = std::collections::HashSet::new();
    for _ in 0..tensor_count {
        let name_len = c.u64("a tensor name's length")?;
        if name_len > MAX_NAME_BYTES {
            return Err(format!("a tensor name of {name_len} bytes (at most {MAX_NAME_BYTES})"));
        }
        let name = c.string_of(name_len, "a tensor name")?;
        let n_dims = c.u32("a tensor's dimension count")?;
        if n_dims > MAX_DIMS {
            return Err(format!("tensor '{name}' has {n_dims} dimensions (at most {MAX_DIMS})"));
        }
        let dims =
            (0..n_dims).map(|_| c.u64("a tensor dimension")).collect::<std::result::Result<Vec<_>, _>>()?;
        let type_id = c.u32("a tensor type")?;
        let ggml = GgmlType::from_id(type_id).map_err(|name_of_type| {
            format!(
                "tensor '{name}' is stored as {name_of_type}; nexttoken reads F32, F16, BF16, Q8_0 and Q4_0"
            )
        })?;
        let offset = c.u64("a tensor offset")?;
        if !offset.is_multiple_of(alignment) {
            return Err(format!(
                "tensor '{name}' starts at offset {offset}, not a multiple of the alignment {alignment}"
            ));
        }
        if !names.insert(name.clone()) {
            return Err(format!("tensor '{name}' appears twice"));
        }
        infos.push((name, dims, ggml, offset));
    }

    let data_start = c.pos.next_multiple_of(alignment);
    let mut tensors = Vec::with_capacity(infos.len());
    for (name, dims, ggml, offset) in infos {
        let count = dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
        let bytes = count
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| format!("tensor '{name}' has dimensions {dims:?}, too many values"))?;
        if dims.first().is_some_and(|&d| !d.is_multiple_of(ggml.block_values() as u64)) {
            return Err(format!(
                "tensor '{name}' is {} with rows of {} values, not whole blocks of {}",
                ggml.name(),
                dims[0],
                ggml.block_values()
            ));
        }
        let size = ggml.bytes_of(bytes).ok_or_else(|| format!("tensor '{name}' is too large"))?;
        let start = data_start.checked_add(offset);
        if start.and_then(|s| s.checked_add(size)).is_none_or(|end| end > file_len) {
            return Err(format!(
                "tensor '{name}' ({size} bytes at offset {offset} of the data) ends beyond the file's {file_len} bytes"
            ));
        }
        tensors.push(TensorInfo { name, dims, ggml, start: start.unwrap_or_default() });
    }
    Ok(Header { version, metadata, tensors })
}

/// Reads a value of GGUF type `kind`.
fn value(c: &mut Cursor, kind: u32, key: &str) -> std::result::Result<Value, String> {
    Ok(match kind {
        0 => Value::U8(c.bytes(1, key)?[0]),
        1 => Value::I8(c.bytes(1, key)?[0] as i8),
        2 => Value::U16(u16::from_le_bytes(c.array(key)?)),
        3 => Value::I16(i16::from_le_bytes(c.array(key)?)),
        4 => Value::U32(c.u32(key)?),
        5 => Value::I32(i32::from_le_bytes(c.array(key)?)),
        6 => Value::F32(f32::from_le_bytes(c.array(key)?)),
        7 => Value::Bool(bool_of(c.bytes(1, key)?[0], key)?),
        8 => Value::String(c.string(key)?),
        9 => Value::Array(array(c, key)?),
        10 => Value::U64(c.u64(key)?),
        11 => Value::I64(i64::from_le_bytes(c.array(key)?)),
        12 => Value::F64(f64::from_le_bytes(c.array(key)?)),
        other => return Err(format!("metadata '{key}' has unknown value type {other}")),
    })
}

fn bool_of(byte: u8, key: &str) -> std::result::Result<bool, String> {
    match byte {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(format!("metadata '{key}' is a bool of value {other}")),
    }
}

/// An array: its element type, its length, its elements (read one by one: memory grows only
/// with bytes actually read from the file).
fn array(c: &mut Cursor, key: &str) -> std::result::Result<Array, String> {
    let kind = c.u32(key)?;
    let len = c.u64(key)?;
    let element_bytes = match kind {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => return Err(format!("metadata '{key}' is an array of arrays, which nexttoken does not read")),
        other => return Err(format!("metadata '{key}' is an array of unknown type {other}")),
    };
    if len > MAX_ARRAY_LEN {
        return Err(format!("metadata '{key}' is an array of {len} elements (at most {MAX_ARRAY_LEN})"));
    }
    c.check_count(len, element_bytes, key)?;
    Ok(match kind {
        6 => Array::Floats(
            (0..len)
                .map(|_| Ok(f32::from_le_bytes(c.array(key)?) as f64))
                .collect::<std::result::Result<_, String>>()?,
        ),
        12 => Array::Floats(
            (0..len)
                .map(|_| Ok(f64::from_le_bytes(c.array(key)?)))
                .collect::<std::result::Result<_, String>>()?,
        ),
        7 => Array::Bools(
            (0..len).map(|_| bool_of(c.bytes(1, key)?[0], key)).collect::<std::result::Result<_, _>>()?,
        ),
        8 => Array::Strings((0..len).map(|_| c.string(key)).collect::<std::result::Result<_, _>>()?),
        _ => Array::Ints((0..len).map(|_| int(c, kind, key)).collect::<std::result::Result<_, _>>()?),
    })
}

/// One integer array element of GGUF type `kind`.
fn int(c: &mut Cursor, kind: u32, key: &str) -> std::result::Result<i64, String> {
    Ok(match kind {
        0 => c.bytes(1, key)?[0] as i64,
        1 => c.bytes(1, key)?[0] as i8 as i64,
        2 => u16::from_le_bytes(c.array(key)?) as i64,
        3 => i16::from_le_bytes(c.array(key)?) as i64,
        4 => c.u32(key)? as i64,
        5 => i32::from_le_bytes(c.array(key)?) as i64,
        10 => {
            i64::try_from(c.u64(key)?).map_err(|_| format!("metadata '{key}' holds an integer beyond i64"))?
        }
        _ => i64::from_le_bytes(c.array(key)?),
    })
}

/// Reads the header from a file with pread, a chunk at a time, never past its end.
struct Cursor<'a> {
    file: &'a Source,
    len: u64,
    pos: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl Cursor<'_> {
    fn left(&self) -> u64 {
        self.len - self.pos
    }

    /// Fails unless `count` items of at least `min_bytes` each fit in what is left of the file.
    fn check_count(&self, count: u64, min_bytes: u64, what: &str) -> std::result::Result<(), String> {
        match count.checked_mul(min_bytes) {
            Some(bytes) if bytes <= self.left() => Ok(()),
            _ => Err(format!(
                "it claims {count} {what} at offset {}, more than its remaining {} bytes can hold",
                self.pos,
                self.left()
            )),
        }
    }

    /// The next `n` bytes; `what` names them if the file ends first.
    fn bytes(&mut self, n: u64, what: &str) -> std::result::Result<&[u8], String> {
        if n > self.left() {
            return Err(format!("it ends inside {what} (offset {}, {} bytes)", self.pos, self.len));
        }
        let n = n as usize; // at most the file's length, which is in memory's range
        let buffered =
            self.pos >= self.buf_start && self.pos + n as u64 <= self.buf_start + self.buf.len() as u64;
        if !buffered {
            let want = n.max(READ_CHUNK).min(self.left() as usize);
            self.buf.resize(want, 0);
            self.file
                .read_at(self.pos, &mut self.buf)
                .map_err(|err| format!("reading {what} at offset {} failed ({err})", self.pos))?;
            self.buf_start = self.pos;
        }
        let at = (self.pos - self.buf_start) as usize;
        self.pos += n as u64;
        Ok(&self.buf[at..at + n])
    }

    fn array<const N: usize>(&mut self, what: &str) -> std::result::Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N as u64, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A string: u64 length, then UTF-8 bytes.
    fn string(&mut self, what: &str) -> std::result::Result<String, String> {
        let len = self.u64(what)?;
        self.string_of(len, what)
    }

    fn string_of(&mut self, len: u64, what: &str) -> std::result::Result<String, String> {
        let bytes = self.bytes(len, what)?.to_vec();
        String::from_utf8(bytes).map_err(|_| format!("{what} is not UTF-8"))
    }
}
