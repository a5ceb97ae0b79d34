//! The object's maps, made (or reopened from their pins) with aya's map
//! types but without aya's loader: `EbpfLoader::new` parses the kernel's
//! BTF whether or not it is used (~18 MB at its peak, most of the daemon's),
//! and Warrant loads its programs itself ([`super::program_loader`]).

use std::collections::HashMap as StdHashMap;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd};
use std::path::PathBuf;

use aya::maps::{Map, MapData};
use aya_obj::EbpfSectionKind;
use aya_obj::generated::{bpf_attr, bpf_cmd, bpf_map_type};

use super::KernelError;

/// The object's maps by name.
#[derive(Default)]
pub struct ObjectMaps(StdHashMap<String, Map>);

impl ObjectMaps {
    pub fn map(&self, name: &str) -> Option<&Map> {
        self.0.get(name)
    }

    pub fn map_mut(&mut self, name: &str) -> Option<&mut Map> {
        self.0.get_mut(name)
    }

    /// Takes map `name` out, for a typed handle that owns it.
    pub fn take_map(&mut self, name: &str) -> Option<Map> {
        self.0.remove(name)
    }

    pub fn maps(&self) -> impl Iterator<Item = (&str, &Map)> {
        self.0.iter().map(|(name, map)| (name.as_str(), map))
    }
}

/// Makes every map of `object` (whose globals are already patched): a map
/// named in `pins` is reopened from its pin if there is one, else made and
/// pinned there. `btf_fd` is the object's BTF, which maps with BTF-typed
/// keys and values (task storage) name.
pub fn create(
    object: &aya_obj::Object,
    btf_fd: Option<BorrowedFd<'_>>,
    pins: &[(&str, PathBuf)],
) -> Result<ObjectMaps, KernelError> {
    let mut maps = StdHashMap::new();
    for (name, definition) in &object.maps {
        let map_err = |what: &str, e: &dyn std::error::Error| {
            KernelError::Object(format!("map {name}: {what}: {}", super::error_chain(e)))
        };
        let mut definition = definition.clone();
        if definition.map_type() == bpf_map_type::BPF_MAP_TYPE_RINGBUF as u32 {
            // The kernel takes a ring's size in max_entries and no value size.
            definition.set_value_size(0);
        }
        let pin = pins.iter().find(|(pinned, _)| pinned == name).map(|(_, path)| path);
        let data = match pin {
            Some(path) if path.exists() => MapData::from_pin(path).map_err(|e| map_err("reopening its pin", &e))?,
            _ => {
                let made = MapData::create(definition.clone(), name, btf_fd).map_err(|e| map_err("making it", &e))?;
                fill_data_section(&made, &definition).map_err(|e| map_err("writing its initial data", &e))?;
                if let Some(path) = pin {
                    made.pin(path).map_err(|e| map_err("pinning it", &e))?;
                }
                made
            }
        };
        let map = Map::from_map_data(data).map_err(|e| map_err("its type", &e))?;
        maps.insert(name.clone(), map);
    }
    Ok(ObjectMaps(maps))
}

/// A global-data map (`.rodata`, `.data`, `.bss`) gets its section's bytes
/// (the globals as patched); `.rodata` is then frozen, so that the verifier
/// may treat its values as constants.
fn fill_data_section(map: &MapData, definition: &aya_obj::Map) -> std::io::Result<()> {
    let fd = map.fd().as_fd();
    if !definition.data().is_empty() {
        let key = 0u32;
        // SAFETY: an all-zero bpf_attr is valid; the map-element member is set below.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        // SAFETY: the map-element member of a zeroed attr, plain integers.
        let element = unsafe { &mut attr.__bindgen_anon_2 };
        element.map_fd = fd.as_raw_fd() as u32;
        element.key = (&raw const key) as u64;
        element.__bindgen_anon_1.value = definition.data().as_ptr() as u64;
        super::program_loader::bpf_status(bpf_cmd::BPF_MAP_UPDATE_ELEM, &mut attr)?;
    }
    if definition.section_kind() == EbpfSectionKind::Rodata {
        // SAFETY: an all-zero bpf_attr is valid.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        attr.__bindgen_anon_2.map_fd = fd.as_raw_fd() as u32;
        super::program_loader::bpf_status(bpf_cmd::BPF_MAP_FREEZE, &mut attr)?;
    }
    Ok(())
}
