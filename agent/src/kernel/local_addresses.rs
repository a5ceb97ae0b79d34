//! The LOCAL_ADDRESSES map as the daemon sees it (see
//! `crate::local_addresses`).

use std::collections::BTreeSet;

use aya::maps::{
    MapData,
    lpm_trie::{Key, LpmTrie},
};
use warrant_common::LocalAddress;

use super::{Kernel, KernelError, map_err};
use crate::local_addresses::LocalPrefix;

const MAP: &str = "LOCAL_ADDRESSES";

/// What a change of LOCAL_ADDRESSES did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LocalAddressesChange {
    pub added: usize,
    pub removed: usize,
    /// Prefixes the kernel took no entry for (the map is full).
    pub left_out: usize,
}

impl Kernel {
    /// Makes LOCAL_ADDRESSES hold exactly `prefixes` (a prefix in both is
    /// not touched). Gone ones are removed first, so that a full map has
    /// room for the new.
    pub fn set_local_addresses(
        &mut self,
        prefixes: &BTreeSet<LocalPrefix>,
    ) -> Result<LocalAddressesChange, KernelError> {
        let map = self.maps.map_mut(MAP).ok_or(KernelError::MissingMap(MAP))?;
        let mut trie: LpmTrie<&mut MapData, LocalAddress, u32> = LpmTrie::try_from(map).map_err(map_err(MAP))?;
        // An entry removed during the walk is simply not there.
        let held: BTreeSet<LocalPrefix> =
            trie.keys().flatten().map(|key| LocalPrefix { len: key.prefix_len() as u8, address: key.data() }).collect();
        let mut change = LocalAddressesChange::default();
        for prefix in held.difference(prefixes) {
            trie.remove(&Key::new(u32::from(prefix.len), prefix.address)).map_err(map_err(MAP))?;
            change.removed += 1;
        }
        for prefix in prefixes.difference(&held) {
            match trie.insert(&Key::new(u32::from(prefix.len), prefix.address), 1, 0) {
                Ok(()) => change.added += 1,
                Err(_) => change.left_out += 1,
            }
        }
        Ok(change)
    }
}
