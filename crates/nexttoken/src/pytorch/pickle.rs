//! A pickle machine for what `torch.save` writes: it builds objects and never imports or calls
//! anything. A GLOBAL is only a name and a REDUCE only the record of a call (`Object::Call`),
//! which the caller reads (torch's `_rebuild_tensor_v2`, ...); torch's own `weights_only`
//! unpickler allows no more.
//!
//! Bounded, whatever the bytes: the caller caps the pickle's size; objects live in one arena
//! (at most `MAX_OBJECTS`) and refer to each other by index, so that an object fetched from the
//! memo twice is shared, not copied (the memory bomb `]q\0` + 24 x `h\0h\0\x86q\0` makes 25
//! small objects, where a memo that copies makes 2^24); the memo holds at most `MAX_MEMO`
//! entries; and an object nests at most `MAX_DEPTH` deep. Nothing is walked recursively, so
//! neither nesting nor sharing costs stack, and the work is linear in the pickle's size.

use std::collections::HashMap;

/// An object's index in `Pickle`.
pub type Id = u32;

pub enum Object {
    /// None, a bool or a float: nothing a tensor is read from.
    Other,
    Int(i64),
    Str(String),
    /// A module's attribute, by name (GLOBAL, STACK_GLOBAL): never imported.
    Global {
        module: String,
        name: String,
    },
    Tuple(Vec<Id>),
    List(Vec<Id>),
    /// Key-value pairs in the order they were set.
    Dict(Vec<(Id, Id)>),
    /// `callable(*args)` (REDUCE, NEWOBJ), never made.
    Call {
        callable: Id,
        args: Id,
    },
    /// A persistent id (BINPERSID): in torch's pickles, a reference to a storage.
    PersistentId(Id),
}

/// The most objects a pickle may make. A state dict as torch.save writes it makes about 16 a
/// tensor (GPT-2 XL's 581 tensors: about 9,300).
pub const MAX_OBJECTS: usize = 1 << 18;

/// The most memo entries.
pub const MAX_MEMO: usize = 1 << 18;

/// The deepest an object may nest (a state dict nests 5 deep: dict, call, arguments, persistent
/// id, its tuple).
pub const MAX_DEPTH: u8 = 32;

/// The objects a pickle made.
pub struct Pickle {
    objects: Vec<Object>,
    /// How deep each object nests: 0 for a scalar, else one more than its deepest part.
    depths: Vec<u8>,
}

impl Pickle {
    /// Runs the pickle `bytes`: what it made, and the object it returned.
    pub fn load(bytes: &[u8]) -> Result<(Pickle, Id), String> {
        let mut machine = Machine {
            bytes,
            at: 0,
            pickle: Pickle { objects: Vec::new(), depths: Vec::new() },
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
        };
        let result = machine.run().map_err(|err| format!("{err} (pickle byte {})", machine.at))?;
        Ok((machine.pickle, result))
    }

    pub fn get(&self, id: Id) -> &Object {
        &self.objects[id as usize]
    }
}

struct Machine<'a> {
    bytes: &'a [u8],
    /// The next byte to read.
    at: usize,
    pickle: Pickle,
    stack: Vec<Id>,
    /// Where each open MARK was on the stack.
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
}

impl Machine<'_> {
    fn run(&mut self) -> Result<Id, String> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.u64()?; // FRAME: a hint for buffering
                }
                b'.' => return self.pop(), // STOP
                b'(' => self.marks.push(self.stack.len()),
                b'N' | 0x88 | 0x89 => self.push(Object::Other, 0)?, // None, True, False
                b'J' => {
                    let value = i32::from_le_bytes(self.array()?);
                    self.push(Object::Int(value.into()), 0)?
                }
                b'K' => {
                    let value = self.u8()?;
                    self.push(Object::Int(value.into()), 0)?
                }
                b'M' => {
                    let value = u16::from_le_bytes(self.array()?);
                    self.push(Object::Int(value.into()), 0)?
                }
                0x8a => {
                    // LONG1: a two's-complement little-endian integer of n bytes.
                    let n = usize::from(self.u8()?);
                    if n > 8 {
                        return Err(format!("an integer of {n} bytes"));
                    }
                    let bytes = self.take(n)?;
                    let mut full = [if bytes.last().is_some_and(|b| b & 0x80 != 0) { 0xff } else { 0 }; 8];
                    full[..n].copy_from_slice(bytes);
                    self.push(Object::Int(i64::from_le_bytes(full)), 0)?
                }
                b'G' => {
                    self.take(8)?; // BINFLOAT
                    self.push(Object::Other, 0)?
                }
                b'X' => {
                    let len = u32::from_le_bytes(self.array()?) as usize;
                    self.string(len)?
                }
                0x8c => {
                    let len = usize::from(self.u8()?);
                    self.string(len)?
                }
                0x8d => {
                    let len = usize::try_from(self.u64()?).unwrap_or(usize::MAX);
                    self.string(len)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Object::Global { module, name }, 0)?
                }
                0x93 => {
                    // STACK_GLOBAL
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (self.pickle.get(module), self.pickle.get(name)) {
                        (Object::Str(module), Object::Str(name)) => {
                            let (module, name) = (module.clone(), name.clone());
                            self.push(Object::Global { module, name }, 0)?
                        }
                        _ => return Err("STACK_GLOBAL of what is not two strings".into()),
                    }
                }
                b')' => self.push(Object::Tuple(Vec::new()), 1)?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.container(Object::Tuple(items))?
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let items = self.pop_n(n)?;
                    self.container(Object::Tuple(items))?
                }
                b']' => self.push(Object::List(Vec::new()), 1)?,
                b'l' => {
                    let items = self.pop_mark()?;
                    self.container(Object::List(items))?
                }
                b'a' | b'e' => {
                    let items = if op == b'a' { self.pop_n(1)? } else { self.pop_mark()? };
                    let list = self.top()?;
                    self.deepen(list, &items)?;
                    match &mut self.pickle.objects[list as usize] {
                        Object::List(list) => list.extend(items),
                        _ => return Err("APPEND to what is not a list".into()),
                    }
                }
                b'}' => self.push(Object::Dict(Vec::new()), 1)?,
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(&items)?;
                    self.container(Object::Dict(pairs))?
                }
                b's' | b'u' => {
                    let items = if op == b's' { self.pop_n(2)? } else { self.pop_mark()? };
                    let dict = self.top()?;
                    self.deepen(dict, &items)?;
                    let new = pairs(&items)?;
                    match &mut self.pickle.objects[dict as usize] {
                        Object::Dict(pairs) => pairs.extend(new),
                        _ => return Err("SETITEM on what is not a dict".into()),
                    }
                }
                b'q' => {
                    let key = self.u8()?.into();
                    self.put(key)?
                }
                b'r' => {
                    let key = u32::from_le_bytes(self.array()?);
                    self.put(key)?
                }
                0x94 => self.put(self.memo.len() as u32)?, // MEMOIZE
                b'h' => {
                    let key = self.u8()?.into();
                    self.get(key)?
                }
                b'j' => {
                    let key = u32::from_le_bytes(self.array()?);
                    self.get(key)?
                }
                b'Q' => {
                    let id = self.pop()?;
                    self.container_of(Object::PersistentId(id), &[id])?
                }
                b'R' | 0x81 => {
                    // REDUCE, NEWOBJ: recorded, not called. `OrderedDict()` is a dict, which
                    // SETITEMS then fills.
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let ordered_dict = matches!(self.pickle.get(callable), Object::Global { module, name }
                        if module == "collections" && name == "OrderedDict");
                    let no_args = matches!(self.pickle.get(args), Object::Tuple(items) if items.is_empty());
                    if ordered_dict && no_args {
                        self.push(Object::Dict(Vec::new()), 1)?
                    } else {
                        self.container_of(Object::Call { callable, args }, &[callable, args])?
                    }
                }
                b'b' => {
                    // BUILD: the state would set the object's attributes (a state dict's
                    // `_metadata`), which nothing here reads.
                    self.pop()?;
                    self.top()?;
                }
                other => return Err(format!("opcode 0x{other:02x}, which torch.save does not write")),
            }
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| format!("it ends inside an opcode's {n}-byte argument"))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().unwrap())
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Text up to the next newline (GLOBAL's arguments).
    fn line(&mut self) -> Result<String, String> {
        let rest = &self.bytes[self.at..];
        let len = rest.iter().position(|&b| b == b'\n').ok_or("it ends inside a GLOBAL's name")?;
        let line = self.take(len + 1)?;
        let line = std::str::from_utf8(&line[..len]).map_err(|_| "a GLOBAL's name is not UTF-8")?;
        Ok(line.to_string())
    }

    /// A string of `len` bytes, pushed.
    fn string(&mut self, len: usize) -> Result<(), String> {
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes).map_err(|_| "a string that is not UTF-8")?.to_string();
        self.push(Object::Str(text), 0)
    }

    /// Makes `object`, which nests `depth` deep, and pushes it.
    fn push(&mut self, object: Object, depth: u8) -> Result<(), String> {
        if self.pickle.objects.len() >= MAX_OBJECTS {
            return Err(format!("more than {MAX_OBJECTS} objects"));
        }
        if depth > MAX_DEPTH {
            return Err(format!("objects nested more than {MAX_DEPTH} deep"));
        }
        self.stack.push(self.pickle.objects.len() as Id);
        self.pickle.objects.push(object);
        self.pickle.depths.push(depth);
        Ok(())
    }

    /// Pushes `object`, which holds `parts`.
    fn container_of(&mut self, object: Object, parts: &[Id]) -> Result<(), String> {
        let depth = parts.iter().map(|&id| self.pickle.depths[id as usize]).max().unwrap_or(0);
        self.push(object, depth.saturating_add(1))
    }

    /// Pushes a tuple, list or dict.
    fn container(&mut self, object: Object) -> Result<(), String> {
        let parts = match &object {
            Object::Tuple(items) | Object::List(items) => items.clone(),
            Object::Dict(pairs) => pairs.iter().flat_map(|&(k, v)| [k, v]).collect(),
            _ => Vec::new(),
        };
        self.container_of(object, &parts)
    }

    /// Records that `container` now holds `parts` too.
    fn deepen(&mut self, container: Id, parts: &[Id]) -> Result<(), String> {
        let deepest = parts.iter().map(|&id| self.pickle.depths[id as usize]).max().unwrap_or(0);
        let depth = &mut self.pickle.depths[container as usize];
        *depth = (*depth).max(deepest.saturating_add(1));
        match *depth > MAX_DEPTH {
            true => Err(format!("objects nested more than {MAX_DEPTH} deep")),
            false => Ok(()),
        }
    }

    /// The stack's top, which stays; not below the open MARK.
    fn top(&self) -> Result<Id, String> {
        match self.stack.len() > self.marks.last().copied().unwrap_or(0) {
            true => Ok(self.stack[self.stack.len() - 1]),
            false => Err("an opcode needs an object the stack lacks".into()),
        }
    }

    fn pop(&mut self) -> Result<Id, String> {
        let top = self.top()?;
        self.stack.pop();
        Ok(top)
    }

    /// The top `n` objects, deepest first.
    fn pop_n(&mut self, n: usize) -> Result<Vec<Id>, String> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() < floor + n {
            return Err("an opcode needs more objects than the stack holds".into());
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    /// The objects above the last MARK, which closes.
    fn pop_mark(&mut self) -> Result<Vec<Id>, String> {
        let mark = self.marks.pop().ok_or("an opcode needs a MARK and there is none")?;
        Ok(self.stack.split_off(mark))
    }

    /// Files the stack's top in the memo under `key`.
    fn put(&mut self, key: u32) -> Result<(), String> {
        let top = self.top()?;
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&key) {
            return Err(format!("more than {MAX_MEMO} memo entries"));
        }
        self.memo.insert(key, top);
        Ok(())
    }

    /// Pushes the object the memo holds under `key`: the same object, not a copy.
    fn get(&mut self, key: u32) -> Result<(), String> {
        let id = *self.memo.get(&key).ok_or_else(|| format!("memo entry {key} is not there"))?;
        self.stack.push(id);
        Ok(())
    }
}

/// `[k0, v0, k1, v1, ...]` as pairs.
fn pairs(items: &[Id]) -> Result<Vec<(Id, Id)>, String> {
    match items.len() % 2 {
        0 => Ok(items.chunks_exact(2).map(|pair| (pair[0], pair[1])).collect()),
        _ => Err("a dict's items are not in pairs".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memo_shares_what_it_holds() {
        // A list, then 24 times: a pair of what the memo holds, memoized in its place. A memo
        // that copies doubles the object each time (2^24 lists).
        let mut bomb = b"\x80\x02]q\x00".to_vec();
        for _ in 0..24 {
            bomb.extend_from_slice(b"h\x00h\x00\x86q\x00");
        }
        bomb.push(b'.');
        let (pickle, root) = Pickle::load(&bomb).unwrap();
        assert_eq!(pickle.objects.len(), 25);
        assert!(matches!(pickle.get(root), Object::Tuple(items) if items[0] == items[1]));
        // Nested 32 times the same way it is refused: past MAX_DEPTH.
        let mut deeper = b"]q\x00".to_vec();
        for _ in 0..40 {
            deeper.extend_from_slice(b"h\x00\x85q\x00");
        }
        deeper.push(b'.');
        let err = Pickle::load(&deeper).err().unwrap();
        assert!(err.contains("nested more than 32 deep"), "{err}");
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        let cases: [(&[u8], &str); 9] = [
            (b"", "ends inside"),
            (b"\x80\x02", "ends inside"),
            (b"X\xff\xff\xff\xff", "ends inside an opcode's 4294967295-byte argument"),
            (b"h\x05.", "memo entry 5 is not there"),
            (b"a.", "needs more objects"),
            (b"(.", "lacks"),
            (b"K\x01K\x02a.", "APPEND to what is not a list"),
            (b"cos\nsystem\nX\x02\x00\x00\x00ls\x85R0.", "opcode 0x30"),
            (b"\x8a\x09", "an integer of 9 bytes"),
        ];
        for (bytes, expected) in cases {
            let err = Pickle::load(bytes).err().unwrap_or_else(|| panic!("{bytes:?} loaded"));
            assert!(err.contains(expected), "{bytes:?}: {err}");
        }
        // A self-appending list deepens itself each time.
        let mut cycle = b"]q\x00".to_vec();
        cycle.extend(b"h\x00a".repeat(40));
        cycle.push(b'.');
        assert!(Pickle::load(&cycle).err().unwrap().contains("nested more than"));
    }

    #[test]
    fn objects_and_memo_entries_are_capped() {
        let nones = [b"(".to_vec(), vec![b'N'; MAX_OBJECTS], b"l.".to_vec()].concat();
        assert!(Pickle::load(&nones).err().unwrap().contains("more than 262144 objects"));
        let fewer = [b"(".to_vec(), vec![b'N'; MAX_OBJECTS - 1], b"l.".to_vec()].concat();
        let (pickle, root) = Pickle::load(&fewer).unwrap();
        assert!(matches!(pickle.get(root), Object::List(items) if items.len() == MAX_OBJECTS - 1));
        let mut puts = b"N".to_vec();
        for key in 0..=MAX_MEMO as u32 {
            puts.push(b'r');
            puts.extend(key.to_le_bytes());
        }
        puts.push(b'.');
        assert!(Pickle::load(&puts).err().unwrap().contains("more than 262144 memo entries"));
        // References cost no object: a tuple of a million of them is one object.
        let refs = [b"Nq\x00(".to_vec(), b"h\x00".repeat(1 << 20), b"t.".to_vec()].concat();
        let (pickle, root) = Pickle::load(&refs).unwrap();
        assert_eq!(pickle.objects.len(), 2);
        assert!(matches!(pickle.get(root), Object::Tuple(items) if items.len() == 1 << 20));
    }

    #[test]
    fn reads_signed_integers_and_ordered_dicts() {
        let (pickle, root) = Pickle::load(b"\x8a\x02\xff\xfe.").unwrap();
        assert!(matches!(pickle.get(root), Object::Int(-257)));
        let (pickle, root) = Pickle::load(b"\x8a\x00.").unwrap();
        assert!(matches!(pickle.get(root), Object::Int(0)));
        let ordered =
            b"ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00aK\x01u}bX\x01\x00\x00\x00b\x8c\x01cs.";
        let (pickle, root) = Pickle::load(ordered).unwrap();
        let Object::Dict(pairs) = pickle.get(root) else { panic!("not a dict") };
        assert_eq!(pairs.len(), 2);
    }
}
