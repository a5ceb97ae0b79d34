//! Rule contents the kernel sent, rendered, by content digest, until the
//! decisions that name them are recorded. A sendmsg's contents all reach
//! the ring before its decisions (the kernel classifies the whole batch
//! first), so what is kept must hold at least a full batch's: two
//! generations of a batch's size each, the older dropped whole when the
//! newer fills, so the last MESSAGE_SLOTS contents at least are always here.

use std::collections::HashMap;

use warrant_common::decision::MESSAGE_SLOTS;

#[derive(Debug, Default)]
pub(super) struct RuleContents {
    newer: HashMap<u64, String>,
    older: HashMap<u64, String>,
}

impl RuleContents {
    pub(super) fn insert(&mut self, digest: u64, text: String) {
        if self.newer.len() >= MESSAGE_SLOTS {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(digest, text);
    }

    pub(super) fn get(&self, digest: u64) -> Option<&String> {
        self.newer.get(&digest).or_else(|| self.older.get(&digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_batch_of_contents_is_kept_whatever_came_before() {
        let mut contents = RuleContents::default();
        // Contents of earlier batches, then one of the largest batch.
        for digest in 0..(MESSAGE_SLOTS as u64 + 700) {
            contents.insert(digest, format!("earlier {digest}"));
        }
        let batch = 10_000..10_000 + MESSAGE_SLOTS as u64 - 1;
        for digest in batch.clone() {
            contents.insert(digest, format!("rule {digest}"));
        }
        for digest in batch {
            assert_eq!(contents.get(digest), Some(&format!("rule {digest}")));
        }
        assert_eq!(contents.get(0), None, "older generations are dropped");
    }
}
