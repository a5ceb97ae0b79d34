//! The MARKS map as the daemon sees it (see `warrant_common::Mark`).

use std::collections::HashMap as StdHashMap;

use aya::maps::{Array, HashMap, MapData};
use warrant_common::{FileKey, Mark};

use super::{Kernel, KernelError, map_err};

impl Kernel {
    fn marks_map(&self) -> Result<HashMap<&MapData, FileKey, Mark>, KernelError> {
        HashMap::try_from(self.maps.map("MARKS").ok_or(KernelError::MissingMap("MARKS"))?).map_err(map_err("MARKS"))
    }

    /// Every mark the kernel holds.
    pub fn marks(&self) -> Result<StdHashMap<FileKey, Mark>, KernelError> {
        let map = self.marks_map()?;
        // An entry removed during the walk is simply not there.
        Ok(map.iter().flatten().collect())
    }

    /// The mark on inode `key`, if any (whatever its generation).
    pub fn mark_of(&self, key: &FileKey) -> Option<Mark> {
        self.marks_map().ok()?.get(key, 0).ok()
    }

    /// Puts back marks saved before a reboot, leaving those the kernel has.
    pub fn restore_marks(&mut self, marks: &StdHashMap<FileKey, Mark>) -> Result<usize, KernelError> {
        // Marks where there were none void no pass; raised all the same.
        self.raise_file_state()?;
        let mut map: HashMap<&mut MapData, FileKey, Mark> = self.hash_map("MARKS")?;
        let mut restored = 0;
        for (key, mark) in marks {
            if map.get(key, 0).is_err() {
                map.insert(key, mark, 0).map_err(map_err("MARKS"))?;
                restored += 1;
            }
        }
        self.raise_file_state()?;
        Ok(restored)
    }

    /// Clears the mark on inode `key`; returns it, if there was one.
    pub fn remove_mark(&mut self, key: &FileKey) -> Result<Option<Mark>, KernelError> {
        let Ok(mark) = self.hash_map::<FileKey, Mark>("MARKS")?.get(key, 0) else {
            return Ok(None);
        };
        self.raise_file_state()?;
        self.hash_map::<FileKey, Mark>("MARKS")?.remove(key).map_err(map_err("MARKS"))?;
        self.raise_file_state()?;
        Ok(Some(mark))
    }

    /// How many times the kernel has added or removed a mark since the
    /// programs were loaded: the daemon saves the marks when it moves.
    pub fn mark_changes(&self) -> Result<u64, KernelError> {
        let map = self.maps.map("MARK_CHANGES").ok_or(KernelError::MissingMap("MARK_CHANGES"))?;
        let counter: Array<&MapData, u64> = Array::try_from(map).map_err(map_err("MARK_CHANGES"))?;
        counter.get(&0, 0).map_err(map_err("MARK_CHANGES"))
    }
}
