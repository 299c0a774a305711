//! The central directory of a zip file as `torch.save` writes one: each entry's name and where
//! its bytes are. Only entries stored uncompressed can be read (torch.save stores every one so,
//! 64-byte aligned, so that a tensor's bytes are read in place); the caller refuses the others.
//! Every count, size and offset is checked against the file's size before anything is allocated
//! from it, and nothing is read past the file's end.

use std::collections::HashMap;

use crate::files::Source;

/// The most bytes of central directory read. An entry takes 46 bytes, its name and its extra
/// fields, about 68 as torch.save writes them: GPT-2 124M's needs about 10 KB.
pub const MAX_DIRECTORY_BYTES: u64 = 4 << 20;

/// How far from the file's end the end-of-central-directory record may start: its 22 bytes and
/// a comment of at most 65,535.
const MAX_END_RECORD_DISTANCE: u64 = 22 + 0xffff;

const END_RECORD: u32 = 0x0605_4b50;
const ZIP64_END_RECORD: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const DIRECTORY_ENTRY: u32 = 0x0201_4b50;
const LOCAL_HEADER: u32 = 0x0403_4b50;

/// An entry of the archive.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Where its local header starts in the file.
    header: u64,
    /// Its size as stored (compressed) and as it unpacks.
    stored_size: u64,
    pub size: u64,
    /// Stored uncompressed and unencrypted: its bytes are the file's from `data`.
    pub plain: bool,
}

/// The entries of a zip file, by name.
pub struct Archive {
    entries: HashMap<String, Entry>,
    /// Entries' data ends here: the central directory starts.
    data_end: u64,
}

/// Little-endian fields of a record read from the file.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.0[at], self.0[at + 1]])
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.0[at..at + 4].try_into().unwrap())
    }
    fn u64(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.0[at..at + 8].try_into().unwrap())
    }
}

fn read(file: &Source, at: u64, len: usize, what: &str) -> Result<Vec<u8>, String> {
    let mut bytes = vec![0u8; len];
    file.read_at(at, &mut bytes).map_err(|err| format!("its {what} could not be read ({err})"))?;
    Ok(bytes)
}

impl Archive {
    /// Reads the central directory of the zip file `file`.
    pub fn read(file: &Source) -> Result<Self, String> {
        let file_len = file.size().map_err(|err| err.to_string())?;
        let (end_at, mut count, mut size, mut offset) = end_record(file, file_len)?;
        // Zip64: the sizes that do not fit 16 or 32 bits are in the record the locator points to.
        if end_at >= 20 {
            let locator = read(file, end_at - 20, 20, "zip64 locator")?;
            let locator = Fields(&locator);
            if locator.u32(0) == ZIP64_LOCATOR {
                let record_at = locator.u64(8);
                if record_at.checked_add(56).is_none_or(|end| end > end_at) {
                    return Err("its zip64 end record is outside the file".into());
                }
                let record = read(file, record_at, 56, "zip64 end record")?;
                let record = Fields(&record);
                if record.u32(0) != ZIP64_END_RECORD {
                    return Err("its zip64 locator points at no zip64 end record".into());
                }
                if record.u32(16) != 0 || record.u32(20) != 0 || record.u64(24) != record.u64(32) {
                    return Err("it spans several disks".into());
                }
                (count, size, offset) = (record.u64(32), record.u64(40), record.u64(48));
            }
        }
        if offset.checked_add(size).is_none_or(|end| end > end_at) {
            return Err(format!(
                "its central directory ({size} bytes at {offset}) runs past its end record at {end_at}"
            ));
        }
        if size > MAX_DIRECTORY_BYTES {
            return Err(format!(
                "a central directory of {size} bytes; at most {MAX_DIRECTORY_BYTES} are read"
            ));
        }
        if count > size / 46 {
            return Err(format!("{count} entries cannot fit a central directory of {size} bytes"));
        }
        let directory = read(file, offset, size as usize, "central directory")?;
        let mut entries = HashMap::with_capacity(count as usize);
        let mut at = 0usize;
        for _ in 0..count {
            let (name, entry, next) = directory_entry(&directory, at)?;
            if entries.insert(name.clone(), entry).is_some() {
                return Err(format!("it holds '{name}' twice"));
            }
            at = next;
        }
        Ok(Archive { entries, data_end: offset })
    }

    /// The names of its entries, in no order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// Where the bytes of `entry` (of this archive, stored plain) start in `file`: after its local
    /// header, checked to end before the central directory.
    pub fn data_start(&self, file: &Source, name: &str, entry: &Entry) -> Result<u64, String> {
        let header = read(file, entry.header, 30, &format!("entry '{name}'"))?;
        let header = Fields(&header);
        if header.u32(0) != LOCAL_HEADER {
            return Err(format!("entry '{name}' has no local header where the directory says"));
        }
        let start = entry.header + 30 + u64::from(header.u16(26)) + u64::from(header.u16(28));
        if start.checked_add(entry.stored_size).is_none_or(|end| end > self.data_end) {
            return Err(format!(
                "entry '{name}' ({} bytes at {start}) runs into the central directory at {}",
                entry.stored_size, self.data_end
            ));
        }
        Ok(start)
    }

    /// The bytes of the plain entry `name`, at most `max` of them.
    pub fn read_entry(&self, file: &Source, name: &str, max: u64) -> Result<Vec<u8>, String> {
        let entry = self.entry(name).ok_or_else(|| format!("it has no '{name}'"))?;
        if !entry.plain {
            return Err(format!(
                "'{name}' is compressed or encrypted; torch.save stores entries as they are"
            ));
        }
        if entry.size > max {
            return Err(format!("'{name}' holds {} bytes; at most {max} are read", entry.size));
        }
        let start = self.data_start(file, name, entry)?;
        read(file, start, entry.size as usize, &format!("entry '{name}'"))
    }
}

/// The end-of-central-directory record, the last in the file whose comment runs exactly to the
/// file's end: where it starts, and the entry count, size and offset of the central directory.
fn end_record(file: &Source, file_len: u64) -> Result<(u64, u64, u64, u64), String> {
    const NOT_A_ZIP: &str = "not a zip file (no end of central directory): torch.save has written \
                             zips since PyTorch 1.6, older formats are not read";
    if file_len < 22 {
        return Err(NOT_A_ZIP.into());
    }
    let tail_len = file_len.min(MAX_END_RECORD_DISTANCE);
    let tail_at = file_len - tail_len;
    let tail = read(file, tail_at, tail_len as usize, "end")?;
    let found = (0..=tail.len() - 22).rev().find(|&at| {
        let record = Fields(&tail[at..]);
        record.u32(0) == END_RECORD && usize::from(record.u16(20)) == tail.len() - at - 22
    });
    let Some(at) = found else { return Err(NOT_A_ZIP.into()) };
    let record = Fields(&tail[at..]);
    if record.u16(4) != 0 || record.u16(6) != 0 || record.u16(8) != record.u16(10) {
        return Err("it spans several disks".into());
    }
    let count = u64::from(record.u16(10));
    Ok((tail_at + at as u64, count, u64::from(record.u32(12)), u64::from(record.u32(16))))
}

/// The central directory entry at `at` of `directory`: its name, what it says, and where the
/// next one starts.
fn directory_entry(directory: &[u8], at: usize) -> Result<(String, Entry, usize), String> {
    let fixed = directory.get(at..at + 46).ok_or("its central directory ends inside an entry")?;
    let fixed = Fields(fixed);
    if fixed.u32(0) != DIRECTORY_ENTRY {
        return Err(format!("its central directory has no entry at byte {at}"));
    }
    let (flags, method) = (fixed.u16(8), fixed.u16(10));
    let (name_len, extra_len, comment_len) =
        (usize::from(fixed.u16(28)), usize::from(fixed.u16(30)), usize::from(fixed.u16(32)));
    let name_at = at + 46;
    let next = name_at + name_len + extra_len + comment_len;
    let name =
        directory.get(name_at..name_at + name_len).ok_or("its central directory ends inside a name")?;
    let name = std::str::from_utf8(name).map_err(|_| "an entry's name is not UTF-8".to_string())?.to_string();
    let extra = directory.get(name_at + name_len..name_at + name_len + extra_len);
    let extra = extra.ok_or_else(|| format!("its central directory ends inside entry '{name}'"))?;
    if next > directory.len() {
        return Err(format!("its central directory ends inside entry '{name}'"));
    }
    let mut stored_size = u64::from(fixed.u32(20));
    let mut size = u64::from(fixed.u32(24));
    let mut header = u64::from(fixed.u32(42));
    // Zip64: each field that is all ones is in the extra field 0x0001, in this order.
    if [stored_size, size, header].contains(&0xffff_ffff) {
        let mut values = zip64_extra(extra).ok_or_else(|| format!("entry '{name}' lacks its zip64 sizes"))?;
        for field in [&mut size, &mut stored_size, &mut header] {
            if *field == 0xffff_ffff {
                *field = values.next().ok_or_else(|| format!("entry '{name}' lacks its zip64 sizes"))?;
            }
        }
    }
    let plain = method == 0 && flags & 1 == 0 && stored_size == size;
    Ok((name, Entry { header, stored_size, size, plain }, next))
}

/// The 64-bit values of the zip64 extra field (id 1) among `extra`'s fields.
fn zip64_extra(mut extra: &[u8]) -> Option<impl Iterator<Item = u64> + '_> {
    while extra.len() >= 4 {
        let (id, len) =
            (u16::from_le_bytes([extra[0], extra[1]]), usize::from(u16::from_le_bytes([extra[2], extra[3]])));
        let body = extra.get(4..4 + len)?;
        if id == 1 {
            return Some(body.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().unwrap())));
        }
        extra = &extra[4 + len..];
    }
    None
}
