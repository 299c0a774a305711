//! A GPT-2 checkpoint's tensors, handed out by their canonical name (`wte.weight`,
//! `h.0.attn.c_attn.weight`, ...), checked against the expected shape before anything is built
//! from them, and read from their file only then. A directory's checkpoint files are filed here
//! by `checkpoint_files`, a GGUF file's tensors by `gguf_to_gpt2`, under the same names.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use half::{bf16, f16, slice::HalfFloatSliceExt};

use super::packed_cache::PackedCache;
use crate::dtype::WeightDtype;
use crate::error::{Error, Result};
use crate::files::Source;
use crate::gguf::{GgmlType, TensorInfo};
use crate::ops::{PackError, PackedMatrix};

/// Tensors of a GPT-2 checkpoint, keyed by their name without the optional `transformer.` prefix.
/// Safetensors and PyTorch files are read, not mapped (a file truncated under a mapping kills the
/// process with SIGBUS), and only the header (the zip directory and the pickle) up front: each
/// tensor's bytes are read when it is taken, a few MB at a time for a matrix that is packed, so a
/// load never holds the file and the model at once.
pub struct Weights {
    files: Vec<OpenFile>,
    tensors: HashMap<String, Stored>,
    device: Device,
    /// Where packed matrices are found or recorded, if the load asked for a cache.
    packed_cache: Option<PackedCache>,
}

/// A checkpoint file (safetensors, pytorch_model.bin or GGUF) held open for reads at offsets.
struct OpenFile {
    path: PathBuf,
    file: Source,
}

/// A tensor's shape and where its values are.
struct Stored {
    shape: Vec<usize>,
    /// The file it came from, for messages.
    path: PathBuf,
    values: Values,
}

enum Values {
    /// In `files[file]` from byte `start`, row-major, stored as `dtype` (F32, F16 or BF16).
    InFile { file: usize, dtype: DType, start: u64 },
    /// In `files[file]` from byte `start`, as ggml stores `ggml`: row-major in the file's shape,
    /// which is the canonical shape reversed when `transposed` (a Conv1D weight kept (out, in)).
    Gguf { file: usize, ggml: GgmlType, start: u64, transposed: bool },
}

/// A GGUF file's tensor under its Hugging Face name and shape (`gguf_to_gpt2`).
pub(crate) struct GgufTensor {
    pub name: String,
    /// Its name in the file, for messages.
    pub file_name: String,
    pub shape: Vec<usize>,
    pub info: TensorInfo,
    /// Stored as the transpose of `shape`.
    pub transposed: bool,
}

thread_local! {
    /// The bytes of the chunk a thread reads, reused: a fresh buffer of a few MB per chunk would
    /// be faulted in (and zeroed by the kernel) again for every chunk.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A tensor of a safetensors or PyTorch checkpoint file, as `checkpoint_files` finds it: its key
/// as stored, its shape, and where its values start, row-major, stored as `dtype` (F32, F16 or
/// BF16).
pub(super) struct FileTensor {
    pub key: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub start: u64,
}

impl Weights {
    pub(super) fn empty(device: &Device) -> Self {
        Weights { files: Vec::new(), tensors: HashMap::new(), device: device.clone(), packed_cache: None }
    }

    /// Takes packed matrices from the packed-cache file in `dir` for these checkpoint files and
    /// `dtype` (None: stored types) if there is one, else records them there until
    /// `finish_packed_cache` (`packed_cache`). Not for a checkpoint given as bytes:
    /// nothing to name it by.
    pub fn use_packed_cache(&mut self, dir: &Path, dtype: Option<WeightDtype>) {
        let files = self.files.iter().map(|f| matches!(f.file, Source::File(_)).then(|| f.path.clone()));
        if let Some(sources) = files.collect::<Option<Vec<_>>>().filter(|s| !s.is_empty()) {
            self.packed_cache = PackedCache::open(dir, &sources, dtype);
        }
    }

    /// Completes the packed-cache file being recorded, once the model's every matrix is taken.
    pub fn finish_packed_cache(&mut self) {
        if let Some(cache) = self.packed_cache.take() {
            cache.finish();
        }
    }

    /// The tensors of a GGUF file, already mapped and checked by `gguf_to_gpt2`.
    pub(crate) fn from_gguf(path: PathBuf, file: Source, tensors: Vec<GgufTensor>, device: &Device) -> Self {
        let tensors = tensors
            .into_iter()
            .map(|t| {
                let values = Values::Gguf {
                    file: 0,
                    ggml: t.info.ggml,
                    start: t.info.start,
                    transposed: t.transposed,
                };
                let shown = PathBuf::from(format!("{} (tensor '{}')", path.display(), t.file_name));
                (t.name, Stored { shape: t.shape, path: shown, values })
            })
            .collect();
        Weights { files: vec![OpenFile { path, file }], tensors, ..Weights::empty(device) }
    }

    /// Files the `tensors` of the checkpoint file `file` (`path` names it).
    pub(super) fn add_file(&mut self, path: &Path, file: Source, tensors: Vec<FileTensor>) -> Result<()> {
        let index = self.files.len();
        self.files.push(OpenFile { path: path.to_path_buf(), file });
        for FileTensor { key, shape, dtype, start } in tensors {
            let values = Values::InFile { file: index, dtype, start };
            self.insert(path, &key, Stored { shape, path: path.to_path_buf(), values })?;
        }
        Ok(())
    }

    /// Files a tensor under its canonical name. A name that comes twice (in two shards, or with
    /// and without the `transformer.` prefix) is refused: which copy is meant is not knowable.
    fn insert(&mut self, path: &Path, key: &str, stored: Stored) -> Result<()> {
        let name = canonical(key);
        if is_ignored(name) {
            return Ok(());
        }
        if let Some(first) = self.tensors.insert(name.to_string(), stored) {
            return Err(Error::invalid_file(
                path,
                format!("tensor '{name}' appears twice (also in {})", first.path.display()),
            ));
        }
        Ok(())
    }

    /// The device tensors are taken to.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Takes out the tensor called `name`, which must have exactly `shape`, as an f32 tensor.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.take_in(name, shape, DType::F32)
    }

    /// The same in `dtype`, converted on the host: a device receives it as it will be held.
    pub fn take_in(&mut self, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let stored = self.take_stored(name, shape)?;
        let count = shape.iter().product();
        let mut values = Vec::new();
        self.read_values(name, &stored, 0..count, &mut values)?;
        let tensor = match (&stored.values, shape) {
            (Values::Gguf { transposed: true, .. }, &[rows, cols]) => {
                Tensor::from_vec(values, (cols, rows), &Device::Cpu)?.t()?.contiguous()?
            }
            _ => Tensor::from_vec(values, shape, &Device::Cpu)?,
        };
        Ok(tensor.to_dtype(dtype)?.to_device(&self.device)?)
    }

    /// The dtype the matrix `name` is stored in, as a weight dtype (f32 when absent: `take`
    /// reports that).
    pub fn stored_dtype(&self, name: &str) -> WeightDtype {
        match self.tensors.get(name).map(|stored| &stored.values) {
            Some(Values::InFile { dtype, .. }) => WeightDtype::of_stored(*dtype),
            Some(Values::Gguf { ggml, .. }) => match ggml {
                GgmlType::F32 => WeightDtype::F32,
                GgmlType::F16 => WeightDtype::F16,
                GgmlType::Bf16 => WeightDtype::Bf16,
                GgmlType::Q8_0 => WeightDtype::Q8_0,
                GgmlType::Q4_0 => WeightDtype::Q4_0,
            },
            None => WeightDtype::F32,
        }
    }

    /// Takes out the matrix called `name`, stored `(rows, cols)`, packed in `dtype` for `x @ w`
    /// or, when `transposed`, `x @ w^T`. Its values go from the file to the packed form a few
    /// MB at a time, read by several threads at once.
    pub(crate) fn take_packed(
        &mut self,
        name: &str,
        (rows, cols): (usize, usize),
        dtype: WeightDtype,
        transposed: bool,
    ) -> Result<PackedMatrix> {
        let stored = self.take_stored(name, &[rows, cols])?;
        let (k, n) = if transposed { (cols, rows) } else { (rows, cols) };
        if let Some(found) = self.packed_cache.as_mut().and_then(|cache| cache.take(name, dtype, k, n)) {
            return Ok(found);
        }
        // A GGUF Conv1D weight is stored (out, in): the transpose of what was asked for.
        let (transposed, cols) = match stored.values {
            Values::Gguf { transposed: true, .. } => (!transposed, rows),
            _ => (transposed, cols),
        };
        let packed = match stored.values {
            // Quantized blocks kept as they are when asked for in their own type: llama.cpp's
            // blocks of a stored (n, k) row are our blocks of a column, bit for bit.
            Values::Gguf { file, ggml, start, .. }
                if transposed
                    && matches!(
                        (ggml, dtype),
                        (GgmlType::Q8_0, WeightDtype::Q8_0) | (GgmlType::Q4_0, WeightDtype::Q4_0)
                    ) =>
            {
                let row_bytes = (cols / ggml.block_values() * ggml.block_bytes()) as u64;
                let read = |rows: Range<usize>, bytes: &mut Vec<u8>| {
                    bytes.resize(rows.len() * row_bytes as usize, 0);
                    let file = &self.files[file];
                    file.file.read_at(start + rows.start as u64 * row_bytes, bytes).map_err(|err| {
                        Error::invalid_file(&stored.path, format!("could not be read ({err})"))
                    })?;
                    match crate::gguf::bad_scale(ggml, bytes) {
                        None => Ok(()),
                        Some(d) => Err(Error::invalid_file(
                            &stored.path,
                            format!("a block scale is {d}: its weights must be finite"),
                        )),
                    }
                };
                PackedMatrix::from_ggml_blocks(dtype, k, n, read)
            }
            _ => {
                let read = |rows: Range<usize>, values: &mut Vec<f32>| {
                    self.read_values(name, &stored, rows.start * cols..rows.end * cols, values)
                };
                PackedMatrix::pack(dtype, k, n, transposed, read)
            }
        };
        let packed = packed.map_err(|err| match err {
            PackError::Read(err) => err,
            PackError::Memory(err) => Error::Internal(format!("no memory for tensor '{name}' ({err})")),
            PackError::OutOfRange(value) => Error::invalid_file(
                &stored.path,
                format!(
                    "tensor '{name}' holds {value}, beyond what {dtype} can hold: load it as fp32 or bf16"
                ),
            ),
        })?;
        if let Some(cache) = &mut self.packed_cache {
            cache.record(name, &packed);
        }
        Ok(packed)
    }

    /// Takes out the matrix called `name`, stored `(rows, cols)`, as candle's quantized `dtype`
    /// (q8 or q4) on the device, for `x @ w` or, when `transposed`, `x @ w^T`: held (out, in)
    /// with its blocks along the inputs, as ggml multiplies. A GGUF file's blocks of that type
    /// and layout (a Conv1D weight as llama.cpp stores it, the token embeddings) are uploaded as
    /// they are; anything else is quantized on the device from its f32 values.
    pub(crate) fn take_quantized(
        &mut self,
        name: &str,
        (rows, cols): (usize, usize),
        dtype: WeightDtype,
        transposed: bool,
    ) -> Result<QTensor> {
        let ggml_dtype = match dtype {
            WeightDtype::Q8_0 => GgmlDType::Q8_0,
            WeightDtype::Q4_0 => GgmlDType::Q4_0,
            other => return Err(Error::Internal(format!("take_quantized: {other} is not quantized"))),
        };
        let (out, inputs) = if transposed { (rows, cols) } else { (cols, rows) };
        let as_stored = match self.tensors.get(name).map(|stored| &stored.values) {
            Some(&Values::Gguf { file, ggml, start, transposed: stored_transposed }) => {
                let same_type = matches!(
                    (ggml, dtype),
                    (GgmlType::Q8_0, WeightDtype::Q8_0) | (GgmlType::Q4_0, WeightDtype::Q4_0)
                );
                (same_type && stored_transposed != transposed).then_some((file, ggml, start))
            }
            _ => None,
        };
        if let Some((file, ggml, start)) = as_stored {
            let stored = self.take_stored(name, &[rows, cols])?;
            let mut bytes = vec![0u8; out * inputs / ggml.block_values() * ggml.block_bytes()];
            self.files[file]
                .file
                .read_at(start, &mut bytes)
                .map_err(|err| Error::invalid_file(&stored.path, format!("could not be read ({err})")))?;
            if let Some(d) = crate::gguf::bad_scale(ggml, &bytes) {
                return Err(Error::invalid_file(
                    &stored.path,
                    format!("a block scale is {d}: its weights must be finite"),
                ));
            }
            return Ok(qtensor_from_ggml(ggml_dtype, &bytes, vec![out, inputs], &self.device)?);
        }
        let values = self.take(name, &[rows, cols])?;
        let values = if transposed { values } else { values.t()?.contiguous()? };
        Ok(QTensor::quantize(&values, ggml_dtype)?)
    }

    /// Values `range` (flat, row-major) of `stored` as f32 into `values`, checked finite.
    fn read_values(
        &self,
        name: &str,
        stored: &Stored,
        range: Range<usize>,
        values: &mut Vec<f32>,
    ) -> Result<()> {
        match &stored.values {
            Values::InFile { file, dtype: DType::F32, start } if cfg!(target_endian = "little") => {
                // Read straight into `values`: stored f32 are already what they hold. Not cleared
                // first, so that a buffer reused for chunks of one size is not zeroed each time.
                values.truncate(range.len());
                values.resize(range.len(), 0.0);
                // SAFETY: the bytes of `values`' initialised f32s; every bit pattern is an f32.
                let bytes = unsafe {
                    std::slice::from_raw_parts_mut(values.as_mut_ptr().cast::<u8>(), values.len() * 4)
                };
                let file = &self.files[*file];
                file.file.read_at(start + (range.start * 4) as u64, bytes).map_err(|err| {
                    Error::invalid_file(&file.path, format!("tensor '{name}' could not be read ({err})"))
                })?;
            }
            Values::InFile { file, dtype, start } => READ_BUFFER.with_borrow_mut(|bytes| {
                values.clear();
                let size = dtype.size_in_bytes();
                bytes.resize(range.len() * size, 0);
                let file = &self.files[*file];
                file.file.read_at(start + (range.start * size) as u64, bytes).map_err(|err| {
                    Error::invalid_file(&file.path, format!("tensor '{name}' could not be read ({err})"))
                })?;
                values.resize(range.len(), 0.0);
                widen(*dtype, bytes, values);
                Ok::<_, Error>(())
            })?,
            Values::Gguf { file, ggml, start, .. } => {
                values.clear();
                // Ranges are whole rows (or whole 1-D tensors), and rows are whole blocks (the
                // reader checked).
                let block = ggml.block_values();
                debug_assert!(range.start.is_multiple_of(block) && range.len().is_multiple_of(block));
                let mut bytes = vec![0u8; range.len() / block * ggml.block_bytes()];
                let file = &self.files[*file];
                let at = start + (range.start / block * ggml.block_bytes()) as u64;
                file.file
                    .read_at(at, &mut bytes)
                    .map_err(|err| Error::invalid_file(&stored.path, format!("could not be read ({err})")))?;
                values.resize(range.len(), 0.0);
                crate::gguf::to_f32(*ggml, &bytes, values);
            }
        }
        check_finite(name, &stored.path, values, range.start)
    }

    /// Where the checkpoint is, for messages: its (first) file.
    fn path(&self) -> PathBuf {
        self.files.first().map_or_else(|| PathBuf::from("the checkpoint"), |f| f.path.clone())
    }

    fn take_stored(&mut self, name: &str, shape: &[usize]) -> Result<Stored> {
        let stored = self
            .tensors
            .remove(name)
            .ok_or_else(|| Error::invalid_file(&self.path(), format!("tensor '{name}' is missing")))?;
        if stored.shape != shape {
            return Err(Error::invalid_file(
                &stored.path,
                format!("tensor '{name}' has shape {:?}; the config implies {shape:?}", stored.shape),
            ));
        }
        Ok(stored)
    }
}

/// Little-endian `bytes` stored as `dtype` (F32, F16 or BF16) into `out` as f32.
fn widen(dtype: DType, bytes: &[u8], out: &mut [f32]) {
    match dtype {
        DType::F16 => {
            let halves: Vec<f16> = bytes.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]])).collect();
            halves.convert_to_f32_slice(out);
        }
        DType::BF16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = bf16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        _ => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
    }
}

/// A weight that is NaN or infinite makes every logit NaN (and greedy decoding pick id 0 forever):
/// refused at load, naming the tensor, rather than discovered in the output. `values` start at
/// flat index `first` of the tensor.
fn check_finite(name: &str, path: &Path, values: &[f32], first: usize) -> Result<()> {
    // v * 0 is 0 for every finite v and NaN for NaN or an infinity: the sums are 0 exactly when
    // all are finite. Summed in LANES independent lanes, which vectorises (one running sum would
    // be a chain of dependent additions, 4 cycles a value); searching would not.
    const LANES: usize = 16;
    let mut sums = [0f32; LANES];
    let lanes = values.chunks_exact(LANES);
    let rest: f32 = lanes.remainder().iter().map(|v| v * 0.0).sum();
    lanes.for_each(|chunk| sums.iter_mut().zip(chunk).for_each(|(s, v)| *s += v * 0.0));
    if sums.iter().sum::<f32>() + rest == 0.0 {
        return Ok(());
    }
    let (index, value) = values.iter().enumerate().find(|(_, v)| !v.is_finite()).unwrap_or((0, &f32::NAN));
    let index = first + index;
    Err(Error::invalid_file(
        path,
        format!("tensor '{name}' holds {value} at index {index}: its weights must be finite"),
    ))
}

/// A checkpoint key without the `transformer.` prefix that GPT2LMHeadModel adds.
pub(super) fn canonical(key: &str) -> &str {
    key.strip_prefix("transformer.").unwrap_or(key)
}

/// Buffers some checkpoints carry that are not weights: the causal mask (`attn.bias`,
/// `attn.masked_bias`), and `lm_head.weight`, which GPT-2 ties to `wte`.
pub(super) fn is_ignored(name: &str) -> bool {
    name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") || name == "lm_head.weight"
}
