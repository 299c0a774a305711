//! `pytorch_model.bin` as `torch.save` writes a state dict since PyTorch 1.6: a zip (`zip.rs`)
//! holding the pickled dict (`<name>/data.pkl`, run by `pickle.rs`, which calls nothing) and one
//! entry per storage (`<name>/data/<key>`), stored uncompressed. Each tensor is a call of
//! `torch._utils._rebuild_tensor_v2(storage, offset, shape, stride, ...)` that is never made:
//! its arguments are checked against the storage's zip entry (its type, its size, the shape's
//! values inside it, row-major), and the tensor is handed back as where its values are in the
//! file, to be read as a safetensors tensor is (`crate::load::Weights`), after its shape has been
//! checked against config.json. Nothing is allocated from a declared size.

mod pickle;
mod zip;

use candle_core::DType;

use crate::files::Source;
use pickle::{Id, Object, Pickle};
use zip::Archive;

/// The largest `data.pkl` read. torch.save writes about 91 bytes a tensor (GPT-2 XL's 581
/// tensors: about 53 KB); the pickle machine's memory is bounded by a few times this.
pub const MAX_PICKLE_BYTES: u64 = 4 << 20;

/// The most dimensions a tensor may have (GPT-2's causal-mask buffers have 4).
const MAX_RANK: usize = 8;

/// A tensor of the state dict: where its values are, not the values.
pub struct PickledTensor {
    pub name: String,
    /// Its storage's class (`FloatStorage`), for messages.
    pub storage: String,
    /// What it holds, if a weight type (F32, F16, BF16).
    pub dtype: Option<DType>,
    pub shape: Vec<usize>,
    /// Where its first value is in the file; the others follow, row-major.
    pub start: u64,
}

/// The tensors of the state dict in the checkpoint `file`, in the dict's order.
pub fn tensors(file: &Source) -> Result<Vec<PickledTensor>, String> {
    let archive = Archive::read(file)?;
    let mut pickles =
        archive.names().filter(|name| name.ends_with("/data.pkl") && name.matches('/').count() == 1);
    let pickle_name = match (pickles.next(), pickles.next()) {
        (Some(name), None) => name.to_string(),
        (None, _) => return Err("it has no <name>/data.pkl, as torch.save writes".into()),
        (Some(_), Some(_)) => return Err("it has more than one <name>/data.pkl".into()),
    };
    let prefix = &pickle_name[..pickle_name.len() - "data.pkl".len()];
    let byteorder = format!("{prefix}byteorder");
    if archive.entry(&byteorder).is_some() {
        let order = archive.read_entry(file, &byteorder, 16)?;
        if order != b"little" {
            let order = String::from_utf8_lossy(&order);
            return Err(format!("its byteorder is '{order}': only little-endian checkpoints are read"));
        }
    }
    let bytes = archive.read_entry(file, &pickle_name, MAX_PICKLE_BYTES)?;
    let (pickle, root) = Pickle::load(&bytes).map_err(|err| format!("its {pickle_name}: {err}"))?;
    let Object::Dict(pairs) = pickle.get(root) else {
        return Err(format!("its {pickle_name} holds no state dict (a dict of tensors)"));
    };
    let reader = Reader { pickle: &pickle, archive: &archive, file, prefix };
    pairs
        .iter()
        .map(|&(key, value)| {
            let Object::Str(name) = pickle.get(key) else {
                return Err(format!("its {pickle_name} has a state dict key that is not a string"));
            };
            reader.tensor(name, value).map_err(|err| format!("tensor '{name}': {err}"))
        })
        .collect()
}

/// The size in bytes of an element of torch's storage class `name` and, for the weight types
/// read, its dtype.
fn storage_type(name: &str) -> Option<(u64, Option<DType>)> {
    Some(match name {
        "FloatStorage" => (4, Some(DType::F32)),
        "HalfStorage" => (2, Some(DType::F16)),
        "BFloat16Storage" => (2, Some(DType::BF16)),
        "DoubleStorage" | "LongStorage" | "ComplexFloatStorage" => (8, None),
        "ComplexDoubleStorage" => (16, None),
        "IntStorage" | "QInt32Storage" => (4, None),
        "ShortStorage" => (2, None),
        "CharStorage" | "ByteStorage" | "BoolStorage" | "QInt8Storage" | "QUInt8Storage" => (1, None),
        _ => return None,
    })
}

struct Reader<'a> {
    pickle: &'a Pickle,
    archive: &'a Archive,
    file: &'a Source,
    /// `<name>/`, the folder of data.pkl.
    prefix: &'a str,
}

impl Reader<'_> {
    /// The tensor `id` holds: `_rebuild_tensor_v2(storage, offset, shape, stride, ...)`, maybe
    /// inside `_rebuild_parameter(tensor, ...)`.
    fn tensor(&self, name: &str, id: Id) -> Result<PickledTensor, String> {
        let (mut function, mut args) = self.call(id)?;
        if function == ("torch._utils", "_rebuild_parameter") {
            let first = self.tuple(args)?.first().copied().ok_or("_rebuild_parameter without arguments")?;
            (function, args) = self.call(first)?;
        }
        if !matches!(function, ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor")) {
            return Err(format!(
                "a call of {}.{}, not a tensor as torch.save writes one",
                function.0, function.1
            ));
        }
        let &[storage, offset, shape, stride, ..] = self.tuple(args)? else {
            return Err(format!("{} with fewer than 4 arguments", function.1));
        };
        // The storage: ('storage', torch.<Type>Storage, key, location, number of elements).
        let Object::PersistentId(storage) = self.pickle.get(storage) else {
            return Err("its storage is not a persistent id".into());
        };
        let &[kind, class, key, _location, count] = self.tuple(*storage)? else {
            return Err("its storage is not a tuple of 5".into());
        };
        if !matches!(self.pickle.get(kind), Object::Str(kind) if kind == "storage") {
            return Err("its persistent id is not a storage".into());
        }
        let class = match self.pickle.get(class) {
            Object::Global { module, name } if module == "torch" => name.as_str(),
            _ => return Err("its storage's type is not a torch storage class".into()),
        };
        let (element, dtype) =
            storage_type(class).ok_or_else(|| format!("an unknown storage type torch.{class}"))?;
        let key = match self.pickle.get(key) {
            Object::Str(key) if !key.is_empty() && !key.contains('/') => key,
            _ => return Err("its storage's key is not a name".into()),
        };
        let count = self.count(count, "its storage's size")?;
        let entry_name = format!("{}data/{key}", self.prefix);
        let entry = self
            .archive
            .entry(&entry_name)
            .ok_or_else(|| format!("its storage '{entry_name}' is missing"))?;
        if !entry.plain {
            return Err(format!(
                "'{entry_name}' is compressed or encrypted; torch.save stores entries as they are"
            ));
        }
        let bytes = count.checked_mul(element).filter(|&bytes| bytes == entry.size);
        if bytes.is_none() {
            return Err(format!(
                "its storage '{entry_name}' declares {count} values of {element} bytes but holds {} bytes",
                entry.size
            ));
        }
        let offset = self.count(offset, "its offset")?;
        let shape = self.dims(shape, "its shape")?;
        let stride = self.dims(stride, "its stride")?;
        if stride.len() != shape.len() {
            return Err(format!("shape {shape:?} and stride {stride:?} differ in length"));
        }
        // Its values, row-major from `offset`, inside the storage.
        let values = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64));
        let Some(values) =
            values.filter(|values| offset.checked_add(*values).is_some_and(|end| end <= count))
        else {
            return Err(format!(
                "shape {shape:?} from offset {offset} needs more values than its storage '{entry_name}' holds ({count})"
            ));
        };
        if values > 0 {
            let mut row_major = 1u64;
            for (&dim, &step) in shape.iter().zip(&stride).rev() {
                if dim > 1 && step as u64 != row_major {
                    return Err(format!("shape {shape:?} with stride {stride:?} is not stored row-major"));
                }
                row_major *= dim as u64; // at most `values`: no overflow
            }
        }
        let start = self.archive.data_start(self.file, &entry_name, entry)? + offset * element;
        Ok(PickledTensor { name: name.to_string(), storage: class.to_string(), dtype, shape, start })
    }

    /// The function called and the arguments of the call `id`.
    fn call(&self, id: Id) -> Result<((&str, &str), Id), String> {
        let Object::Call { callable, args } = self.pickle.get(id) else {
            return Err("not a tensor (a call of torch._utils._rebuild_tensor_v2)".into());
        };
        match self.pickle.get(*callable) {
            Object::Global { module, name } => Ok(((module, name), *args)),
            _ => Err("a call of what is not a named function".into()),
        }
    }

    fn tuple(&self, id: Id) -> Result<&[Id], String> {
        match self.pickle.get(id) {
            Object::Tuple(items) => Ok(items),
            _ => Err("arguments that are not a tuple".into()),
        }
    }

    /// A non-negative integer; `what` names it.
    fn count(&self, id: Id, what: &str) -> Result<u64, String> {
        match self.pickle.get(id) {
            Object::Int(n) if *n >= 0 => Ok(*n as u64),
            _ => Err(format!("{what} is not a non-negative integer")),
        }
    }

    /// A tuple of at most MAX_RANK sizes; `what` names it.
    fn dims(&self, id: Id, what: &str) -> Result<Vec<usize>, String> {
        let items = self.tuple(id).map_err(|_| format!("{what} is not a tuple"))?;
        if items.len() > MAX_RANK {
            return Err(format!("{what} has {} dimensions; at most {MAX_RANK} are read", items.len()));
        }
        let dim =
            |&id: &Id| usize::try_from(self.count(id, what)?).map_err(|_| format!("{what} is too large"));
        items.iter().map(dim).collect()
    }
}
