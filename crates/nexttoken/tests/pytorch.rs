//! `pytorch_model.bin` from strangers: the state dicts torch.save writes load (zip64 too), and
//! what a hostile file tries (a memo bomb, declared shapes no file could hold, a call of
//! `os.system`, storages that lie about their size, compressed or big-endian entries, a file cut
//! anywhere) is an `ERR_MODEL_INVALID` naming the file, found before anything is allocated from
//! a declared size. A failure here is a test process that dies or a wrong code.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::Device;
use nexttoken::load::Weights;

/// A tensor of a state dict as torch.save pickles it: a view of `count` values of storage `key`
/// (a torch `class`), `shape` from `offset` with `stride`.
struct Pickled {
    name: String,
    class: &'static str,
    key: String,
    count: u64,
    offset: u64,
    shape: Vec<u64>,
    stride: Vec<u64>,
}

impl Pickled {
    /// A row-major tensor that is its whole storage.
    fn whole(name: &str, class: &'static str, key: &str, shape: &[u64]) -> Self {
        let mut stride = vec![1; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * shape[i + 1];
        }
        let count = shape.iter().product();
        Pickled { name: name.into(), class, key: key.into(), count, offset: 0, shape: shape.to_vec(), stride }
    }
}

fn int(out: &mut Vec<u8>, value: u64) {
    match i32::try_from(value) {
        Ok(small) => {
            out.push(b'J');
            out.extend(small.to_le_bytes());
        }
        Err(_) => {
            out.extend([0x8a, 8]);
            out.extend(value.to_le_bytes());
        }
    }
}

fn string(out: &mut Vec<u8>, text: &str) {
    out.push(b'X');
    out.extend((text.len() as u32).to_le_bytes());
    out.extend(text.as_bytes());
}

fn ints(out: &mut Vec<u8>, values: &[u64]) {
    out.push(b'(');
    values.iter().for_each(|&v| int(out, v));
    out.push(b't');
}

/// The pickle torch.save writes for a state dict of `tensors` (protocol 2).
fn state_dict(tensors: &[Pickled]) -> Vec<u8> {
    let mut out = vec![0x80, 2, b'}', b'('];
    for t in tensors {
        string(&mut out, &t.name);
        out.extend(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        string(&mut out, "storage");
        out.extend(format!("ctorch\n{}\n", t.class).as_bytes());
        string(&mut out, &t.key);
        string(&mut out, "cpu");
        int(&mut out, t.count);
        out.extend(b"tQ");
        int(&mut out, t.offset);
        ints(&mut out, &t.shape);
        ints(&mut out, &t.stride);
        out.push(0x89);
        out.extend(b"ccollections\nOrderedDict\n)RtR");
    }
    out.extend(b"u.");
    out
}

/// A zip of `entries` stored as they are (method 0, or `method` for the entry named so), with
/// a zip64 directory when `zip64`. CRCs are left 0: nexttoken does not read them.
fn zip(entries: &[(String, Vec<u8>)], zip64: bool, method: Option<(&str, u16)>) -> Vec<u8> {
    let (mut out, mut directory) = (Vec::new(), Vec::new());
    for (name, data) in entries {
        let method = method.filter(|(n, _)| n == name).map_or(0, |(_, m)| m);
        let offset = out.len() as u64;
        out.extend(0x0403_4b50u32.to_le_bytes());
        out.extend([20, 0, 0, 0]);
        out.extend(method.to_le_bytes());
        out.extend([0; 8]); // time, date, crc
        out.extend((data.len() as u32).to_le_bytes().repeat(2));
        out.extend((name.len() as u16).to_le_bytes());
        out.extend(3u16.to_le_bytes()); // an extra field of 3 bytes, as torch pads to align
        out.extend(name.as_bytes());
        out.extend([0xfe, 0xca, 0]);
        out.extend(data);
        directory.extend(0x0201_4b50u32.to_le_bytes());
        directory.extend([20, 0, 20, 0, 0, 0]);
        directory.extend(method.to_le_bytes());
        directory.extend([0; 8]);
        let extra = match zip64 {
            true => {
                directory.extend([0xff; 8]); // both sizes in the zip64 extra field
                let mut extra = vec![1, 0, 24, 0];
                extra.extend((data.len() as u64).to_le_bytes().repeat(2));
                extra.extend(offset.to_le_bytes());
                extra
            }
            false => {
                directory.extend((data.len() as u32).to_le_bytes().repeat(2));
                Vec::new()
            }
        };
        directory.extend((name.len() as u16).to_le_bytes());
        directory.extend((extra.len() as u16).to_le_bytes());
        directory.extend([0; 6]); // comment length, disk, internal attributes
        directory.extend(0u32.to_le_bytes());
        directory.extend(if zip64 { u32::MAX } else { offset as u32 }.to_le_bytes());
        directory.extend(name.as_bytes());
        directory.extend(extra);
    }
    let (directory_at, count) = (out.len() as u64, entries.len() as u64);
    out.extend(&directory);
    if zip64 {
        let record_at = out.len() as u64;
        out.extend(0x0606_4b50u32.to_le_bytes());
        out.extend(44u64.to_le_bytes());
        out.extend([45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for value in [count, count, directory.len() as u64, directory_at] {
            out.extend(value.to_le_bytes());
        }
        out.extend(0x0706_4b50u32.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend(record_at.to_le_bytes());
        out.extend(1u32.to_le_bytes());
        out.extend(0x0605_4b50u32.to_le_bytes());
        out.extend([0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        out.extend([0xff; 8]);
    } else {
        out.extend(0x0605_4b50u32.to_le_bytes());
        out.extend([0; 4]);
        out.extend((count as u16).to_le_bytes().repeat(2));
        out.extend((directory.len() as u32).to_le_bytes());
        out.extend((directory_at as u32).to_le_bytes());
    }
    out.extend([0, 0]);
    out
}

/// pytorch_model.bin of `pickle` and the storages `storages` (key, bytes), in folder `archive`.
fn checkpoint(pickle: Vec<u8>, storages: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut entries = vec![("archive/data.pkl".to_string(), pickle)];
    entries.extend(storages.iter().map(|(key, bytes)| (format!("archive/data/{key}"), bytes.clone())));
    entries.push(("archive/byteorder".into(), b"little".to_vec()));
    zip(&entries, false, None)
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures")
}

/// The fixture's tensors (name, shape, f16 bytes), as torch.save would store them.
fn fixture_tensors() -> Vec<(String, Vec<u64>, Vec<u8>)> {
    let bytes = std::fs::read(fixtures().join("tiny-gpt2/model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<_> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.shape().iter().map(|&d| d as u64).collect(), view.data().to_vec()))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

/// The fixture as a pytorch_model.bin written here, in a zip64 directory when `zip64`.
fn fixture_checkpoint(zip64: bool) -> Vec<u8> {
    let tensors = fixture_tensors();
    let pickled: Vec<_> = tensors
        .iter()
        .enumerate()
        .map(|(i, (name, shape, _))| Pickled::whole(name, "HalfStorage", &i.to_string(), shape))
        .collect();
    let mut entries = vec![("gpt2/data.pkl".to_string(), state_dict(&pickled))];
    entries.extend(tensors.into_iter().enumerate().map(|(i, (_, _, data))| (format!("gpt2/data/{i}"), data)));
    zip(&entries, zip64, None)
}

fn model_dir(name: &str, bin: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nexttoken-pytorch-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["config.json", "tokenizer.json", "generation_config.json"] {
        std::fs::copy(fixtures().join("tiny-gpt2").join(file), dir.join(file)).unwrap();
    }
    std::fs::write(dir.join("pytorch_model.bin"), bin).unwrap();
    dir
}

fn logits_of(dir: &Path) -> Vec<f32> {
    let model = nexttoken::Pretrained::load(dir.to_str().unwrap(), "cpu").unwrap();
    model.logits(&[464, 3290, 318, 257], nexttoken::Positions::All).unwrap()
}

/// Reads `bytes` as pytorch_model.bin: the error it must be, its message.
fn refused(bytes: &[u8]) -> String {
    let path = Path::new("/models/evil/pytorch_model.bin");
    let err = match Weights::from_pytorch_bytes(path, bytes.to_vec(), &Device::Cpu) {
        Ok(_) => panic!("loaded"),
        Err(err) => err,
    };
    let message = err.to_string();
    assert_eq!(err.code(), "ERR_MODEL_INVALID", "{message}");
    assert!(message.starts_with("/models/evil/pytorch_model.bin: "), "{message}");
    message
}

#[test]
fn state_dicts_written_as_torch_writes_them_load_in_a_zip64_directory_too() {
    let expected = logits_of(&fixtures().join("tiny-gpt2"));
    for zip64 in [false, true] {
        let dir = model_dir(&format!("written-{zip64}"), &fixture_checkpoint(zip64));
        assert_eq!(logits_of(&dir), expected, "zip64 {zip64}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn the_memo_bomb_fails_at_once() {
    // `]q\0` + 24 x `h\0h\0\x86q\0`: 616 bytes that a memo which copies doubles 24 times (5.6
    // GB in 15 s with candle's reader); here 25 objects, refused as no state dict.
    let mut bomb = b"\x80\x02]q\x00".to_vec();
    for _ in 0..24 {
        bomb.extend(b"h\x00h\x00\x86q\x00");
    }
    let started = Instant::now();
    let message = refused(&checkpoint([bomb.clone(), b".".to_vec()].concat(), &[]));
    assert!(message.contains("holds no state dict"), "{message}");
    // The same as a tensor of a state dict, and nested 30 more times: past the depth cap.
    let mut as_value = b"\x80\x02}(X\x0a\x00\x00\x00wte.weight".to_vec();
    as_value.extend(&bomb[2..]);
    as_value.extend(b"u.");
    let message = refused(&checkpoint(as_value, &[]));
    assert!(message.contains("tensor 'wte.weight': not a tensor"), "{message}");
    bomb.extend(b"h\x00h\x00\x86q\x00".repeat(30));
    bomb.push(b'.');
    let message = refused(&checkpoint(bomb, &[]));
    assert!(message.contains("nested more than 32 deep"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
}

#[test]
fn declared_shapes_are_checked_against_their_storage_before_anything_is_read() {
    let storage = vec![("0", vec![0u8; 192])]; // 96 f16 values
    let huge = |shape: &[u64], count: u64| {
        let mut t = Pickled::whole("h.0.attn.c_attn.bias", "HalfStorage", "0", shape);
        t.count = count;
        checkpoint(state_dict(&[t]), &storage)
    };
    let side = (1u64 << 31) - 1;
    for (shape, count, expected) in [
        (vec![1 << 20, 1 << 20], 96, "needs more values than its storage 'archive/data/0' holds (96)"),
        (vec![1 << 20, 1 << 20], 1 << 40, "declares 1099511627776 values of 2 bytes but holds 192 bytes"),
        (vec![side, side], 96, "needs more values than its storage"),
        (vec![side, side], side * side, "values of 2 bytes but holds 192 bytes"),
        (vec![side, side, side], 96, "needs more values than its storage"),
        (vec![u64::MAX >> 1, 4], 96, "needs more values than its storage"),
        (vec![1; 9], 96, "at most 8 are read"),
    ] {
        let message = refused(&huge(&shape, count));
        assert!(message.contains(expected), "{shape:?} {count}: {message}");
        assert!(message.contains("tensor 'h.0.attn.c_attn.bias'"), "{message}");
    }
    // A view that fits its storage but is not the shape config.json implies: refused when
    // taken, before its values are read.
    let bin = huge(&[1, 96], 96);
    let path = Path::new("pytorch_model.bin");
    let mut weights = Weights::from_pytorch_bytes(path, bin, &Device::Cpu).unwrap();
    let err = weights.take("h.0.attn.c_attn.bias", &[96]).unwrap_err();
    assert!(err.to_string().contains("has shape [1, 96]; the config implies [96]"), "{err}");
}

#[test]
fn refuses_what_torch_save_does_not_write() {
    let storage = || vec![("0", vec![0u8; 192])];
    let tensor = || Pickled::whole("ln_f.bias", "HalfStorage", "0", &[96]);
    let with = |edit: &dyn Fn(&mut Pickled)| {
        let mut t = tensor();
        edit(&mut t);
        checkpoint(state_dict(&[t]), &storage())
    };
    let os_system = b"\x80\x02}(X\x01\x00\x00\x00acos\nsystem\nX\x02\x00\x00\x00ls\x85Ru.".to_vec();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (checkpoint(os_system, &[]), "tensor 'a': a call of os.system, not a tensor"),
        (with(&|t| t.stride = vec![2]), "not stored row-major"),
        (with(&|t| (t.shape, t.stride) = (vec![8, 12], vec![1, 8])), "not stored row-major"),
        (with(&|t| t.offset = 1), "from offset 1 needs more values"),
        (with(&|t| t.key = "7".into()), "its storage 'archive/data/7' is missing"),
        (with(&|t| t.key = "../0".into()), "its storage's key is not a name"),
        (with(&|t| t.class = "FancyStorage"), "an unknown storage type torch.FancyStorage"),
        (with(&|t| t.class = "FloatStorage"), "declares 96 values of 4 bytes but holds 192 bytes"),
        (with(&|t| t.class = "LongStorage"), "declares 96 values of 8 bytes"),
        (with(&|t| t.stride = vec![1, 1]), "differ in length"),
        (b"PK\x03\x04 not really a zip".to_vec(), "no end of central directory"),
        (b"PK\x03\x04 not really a zip, longer".to_vec(), "no end of central directory"),
        // The format before PyTorch 1.6: pickles one after another, the first torch's magic number.
        (
            b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03.".to_vec(),
            "older formats are not read",
        ),
    ];
    for (bytes, expected) in cases {
        let message = refused(&bytes);
        assert!(message.contains(expected), "{expected}: {message}");
    }
    // An integer weight (not a buffer nexttoken ignores), big-endian storages, a compressed
    // storage.
    let longs = checkpoint(state_dict(&[Pickled::whole("ln_f.bias", "LongStorage", "0", &[24])]), &storage());
    assert!(refused(&longs).contains("tensor 'ln_f.bias' is stored as torch.LongStorage; expected F32"));
    let mask = Pickled::whole("h.0.attn.bias", "BoolStorage", "0", &[1, 1, 12, 16]);
    Weights::from_pytorch_bytes(Path::new("x"), checkpoint(state_dict(&[mask]), &storage()), &Device::Cpu)
        .unwrap_or_else(|err| panic!("a causal-mask buffer is ignored: {err}"));
    let entries = |order: &str| {
        vec![
            ("archive/data.pkl".to_string(), state_dict(&[tensor()])),
            ("archive/data/0".to_string(), vec![0u8; 192]),
            ("archive/byteorder".to_string(), order.as_bytes().to_vec()),
        ]
    };
    assert!(refused(&zip(&entries("big"), false, None)).contains("byteorder is 'big'"));
    let deflated = zip(&entries("little"), false, Some(("archive/data/0", 8)));
    assert!(refused(&deflated).contains("'archive/data/0' is compressed"));
    let deflated = zip(&entries("little"), false, Some(("archive/data.pkl", 8)));
    assert!(refused(&deflated).contains("'archive/data.pkl' is compressed"));
    let large = vec![("archive/data.pkl".to_string(), vec![b'N'; (4 << 20) + 1])];
    assert!(refused(&zip(&large, false, None))
        .contains("'archive/data.pkl' holds 4194305 bytes; at most 4194304"));
    let two = [entries("little"), vec![("other/data.pkl".to_string(), vec![b'.'])]].concat();
    assert!(refused(&zip(&two, false, None)).contains("more than one <name>/data.pkl"));
}

#[test]
fn a_checkpoint_cut_anywhere_is_refused() {
    for zip64 in [false, true] {
        let whole = fixture_checkpoint(zip64);
        // Every length in the last 300 bytes (the directory and its end records), and 200
        // spread over the rest (inside the pickle, a storage, a local header).
        let cuts = (whole.len() - 300..whole.len()).chain((0..200).map(|i| i * (whole.len() - 300) / 200));
        for cut in cuts {
            let message = refused(&whole[..cut]);
            assert!(message.contains("not a readable PyTorch checkpoint"), "cut at {cut}: {message}");
        }
    }
}

#[test]
fn a_directory_that_lies_is_refused() {
    let whole = fixture_checkpoint(false);
    let end = whole.len() - 22;
    let edit = |at: usize, bytes: &[u8]| {
        let mut edited = whole.clone();
        edited[at..at + bytes.len()].copy_from_slice(bytes);
        edited
    };
    for (bytes, expected) in [
        (edit(end + 10, &u16::MAX.to_le_bytes()), "spans several disks"),
        (edit(end + 12, &u32::MAX.to_le_bytes()), "runs past its end record"),
        (edit(end + 16, &(end as u32 - 10).to_le_bytes()), "runs past its end record"),
        (edit(end + 16, &0u32.to_le_bytes()), "no entry at byte 0"),
        (edit(end + 20, &1u16.to_le_bytes()), "no end of central directory"),
    ] {
        let message = refused(&bytes);
        assert!(message.contains(expected), "{expected}: {message}");
    }
}
