//! Prompt prefixes the scheduler has already computed, kept with their KV cache so that a later
//! prompt starting with the same tokens (a shared system prompt, few-shot examples, the rows of a
//! batch) copies them instead of computing them again. Bounded by a memory budget, least
//! recently used first out. Only the scheduler thread touches it.

use crate::error::Result;
use crate::network::KvCache;

/// Prefixes shorter than this are not worth a copy of their cache (and a lookup's comparisons).
pub const MIN_PREFIX: usize = 32;

struct Entry {
    ids: Vec<u32>,
    cache: KvCache,
    bytes: usize,
    last_used: u64,
}

pub struct PrefixStore {
    entries: Vec<Entry>,
    budget_bytes: usize,
    used_bytes: usize,
    clock: u64,
}

/// How many leading tokens `a` and `b` share.
fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl PrefixStore {
    pub fn new(budget_bytes: usize) -> Self {
        PrefixStore { entries: Vec::new(), budget_bytes, used_bytes: 0, clock: 0 }
    }

    /// True when the budget is 0: nothing is stored, and nothing waits for a prefix.
    pub fn is_off(&self) -> bool {
        self.budget_bytes == 0
    }

    /// The longest stored prefix of `prompt` (at least `MIN_PREFIX` tokens, and leaving at least
    /// one token of the prompt to feed), as a cache of its own.
    pub fn lookup(&mut self, prompt: &[u32]) -> Result<Option<KvCache>> {
        let best = self
            .entries
            .iter_mut()
            .map(|entry| (common_prefix(&entry.ids, prompt).min(prompt.len().saturating_sub(1)), entry))
            .filter(|(shared, _)| *shared >= MIN_PREFIX)
            .max_by_key(|(shared, _)| *shared);
        let Some((shared, entry)) = best else { return Ok(None) };
        self.clock += 1;
        entry.last_used = self.clock;
        let mut cache = entry.cache.deep_copy()?;
        cache.truncate(shared);
        Ok(Some(cache))
    }

    /// Whether `prompt` shares at least `MIN_PREFIX` tokens with `other`.
    pub fn shares_prefix(prompt: &[u32], other: &[u32]) -> bool {
        common_prefix(prompt, other) >= MIN_PREFIX
    }

    /// Keeps a copy of `cache`, which holds exactly `ids`, unless a stored prefix covers it; the
    /// least recently used entries leave to make room.
    pub fn insert(&mut self, ids: &[u32], cache: &KvCache) -> Result<()> {
        let bytes = cache.copy_bytes();
        if ids.len() < MIN_PREFIX || bytes > self.budget_bytes {
            return Ok(());
        }
        if self.entries.iter().any(|e| e.ids.len() >= ids.len() && common_prefix(&e.ids, ids) == ids.len()) {
            return Ok(()); // already known
        }
        // An entry this one extends is now redundant.
        let (covered, kept): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|e| common_prefix(&e.ids, ids) == e.ids.len());
        self.used_bytes -= covered.iter().map(|e| e.bytes).sum::<usize>();
        self.entries = kept;
        while self.used_bytes + bytes > self.budget_bytes {
            let oldest = (0..self.entries.len()).min_by_key(|&i| self.entries[i].last_used);
            let Some(oldest) = oldest else { break };
            self.used_bytes -= self.entries.swap_remove(oldest).bytes;
        }
        self.clock += 1;
        self.entries.push(Entry {
            ids: ids.to_vec(),
            cache: cache.deep_copy()?,
            bytes,
            last_used: self.clock,
        });
        self.used_bytes += bytes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefixes() {
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4]), 2);
        assert_eq!(common_prefix(&[], &[1]), 0);
        let long: Vec<u32> = (0..40).collect();
        assert!(PrefixStore::shares_prefix(&long, &[&long[..], &[99]].concat()));
        assert!(!PrefixStore::shares_prefix(&long[..10], &long[..10]));
    }
}
