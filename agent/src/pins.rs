//! The maps pinned under PIN_ROOT outlive the daemon, and so outlive an
//! upgrade. Before reusing them a daemon checks each against its own BPF
//! object (type, key and value sizes, entries) and the layout version word
//! pinned beside them. Pins that do not match are never reused: they are
//! set aside, the subjects they mark and the inodes they protect and mark
//! are carried into fresh maps, and the daemon's state files restore the
//! rest (policy, warrants, digest key).

use std::os::fd::{AsFd as _, AsRawFd as _};
use std::path::{Path, PathBuf};

use warrant_common::PIN_LAYOUT_VERSION;

use crate::kernel::is_directory;

/// Where mismatched pins wait while their replacement is attached.
const SET_ASIDE: &str = "maps-replaced";
/// Beside them, the maps each unfinished start made, `unfinished-N` (see
/// [`SetAside::new`]).
const UNFINISHED: &str = "unfinished";

/// Why pinned maps cannot be reused, one entry per difference.
pub fn mismatches(maps_dir: &Path, object: &[u8], names: &[&str]) -> Vec<String> {
    // Whatever `maps_dir` holds then, an earlier start made it (maybe in
    // part) and failed: the programs still attached use the set-aside maps.
    if is_directory(&maps_dir.with_file_name(SET_ASIDE)) {
        return vec![format!("an earlier start replaced the pinned maps and did not finish ({SET_ASIDE} is there)")];
    }
    if !maps_dir.join("SUBJECTS").exists() {
        return Vec::new();
    }
    let mut found = Vec::new();
    match read_layout_version(&maps_dir.join("PIN_LAYOUT")) {
        Some(PIN_LAYOUT_VERSION) => {}
        Some(other) => found.push(format!("layout version {other} pinned, {PIN_LAYOUT_VERSION} in this Warrant")),
        None => found.push(format!("no layout version pinned (a Warrant from before version {PIN_LAYOUT_VERSION})")),
    }
    let parsed = match aya_obj::Object::parse(object) {
        Ok(parsed) => parsed,
        Err(e) => {
            found.push(format!("cannot read this Warrant's own BPF object: {e}"));
            return found;
        }
    };
    for name in names {
        let (Some(wanted), true) = (parsed.maps.get(*name), maps_dir.join(name).exists()) else {
            continue;
        };
        let Ok(pinned) = aya::maps::MapData::from_pin(maps_dir.join(name)).and_then(|map| map.info()) else {
            found.push(format!("{name}: the pin cannot be opened"));
            continue;
        };
        let shape = |t: u32, k: u32, v: u32, n: u32| format!("type {t}, key {k} B, value {v} B, {n} entries");
        let ours = shape(wanted.map_type(), wanted.key_size(), wanted.value_size(), wanted.max_entries());
        let theirs = shape(pinned_type(&pinned), pinned.key_size(), pinned.value_size(), pinned.max_entries());
        // Local storage maps report max_entries 0 in the object and the kernel alike.
        if ours != theirs {
            found.push(format!("{name}: pinned {theirs}, this Warrant {ours}"));
        }
    }
    found
}

fn pinned_type(info: &aya::maps::MapInfo) -> u32 {
    info.map_type().map(|t| t as u32).unwrap_or(u32::MAX)
}

fn read_layout_version(pin: &Path) -> Option<u32> {
    let map = aya::maps::MapData::from_pin(pin).ok()?;
    let array: aya::maps::Array<_, u32> = aya::maps::Array::try_from(aya::maps::Map::Array(map)).ok()?;
    array.get(&0, 0).ok()
}

/// Pins moved aside, with the subjects they marked and the entries
/// `Kernel::load` copies from them.
pub struct SetAside {
    dir: PathBuf,
    /// Why they were replaced.
    pub reasons: Vec<String>,
}

impl SetAside {
    /// Moves `maps_dir` aside (its maps stay alive while their programs are
    /// attached, and readable through the moved pins). Pins an unfinished
    /// start set aside are kept, never replaced: the attached programs use
    /// them, or (links that start moved before it failed) the ones it
    /// made, which go beside them as `unfinished-N`.
    pub fn new(maps_dir: &Path, reasons: Vec<String>) -> std::io::Result<Self> {
        let dir = maps_dir.with_file_name(SET_ASIDE);
        if is_directory(&dir) {
            // Each unfinished start's subjects under a name of their own: a
            // link such a start moved may still use its maps. Its other maps'
            // pins go (the ring and batch scratches alone are megabytes: a
            // start failing again and again would pin a set each time).
            let unfinished = (0u32..)
                .map(|n| dir.join(format!("{UNFINISHED}-{n}")))
                .find(|d| std::fs::symlink_metadata(d).is_err())
                .ok_or_else(|| std::io::Error::other("no free name for the unfinished start's maps"))?;
            match std::fs::rename(maps_dir, &unfinished) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            for entry in std::fs::read_dir(&unfinished).into_iter().flatten().flatten() {
                if entry.file_name() != "SUBJECTS" {
                    let _ = crate::kernel::clear_pin(&entry.path());
                }
            }
        } else {
            // Not a directory of set-aside maps: nothing of Warrant's.
            crate::kernel::clear_pin(&dir)?;
            std::fs::rename(maps_dir, &dir)?;
        }
        std::fs::create_dir_all(maps_dir)?;
        Ok(Self { dir, reasons })
    }

    /// Each running process the set-aside SUBJECTS map marks, with its
    /// profile id. A process's threads all share its leader's profile (a
    /// mark is inherited and never changed), so the leader answers for
    /// them; the profile id is the first word of every marker layout.
    pub fn subjects(&self) -> Vec<(u32, u32)> {
        let unfinished = std::fs::read_dir(&self.dir).into_iter().flatten().flatten().map(|entry| entry.path());
        let maps: Vec<_> = std::iter::once(self.dir.clone())
            .chain(unfinished.filter(|path| is_directory(path)))
            .filter_map(|dir| aya::maps::MapData::from_pin(dir.join("SUBJECTS")).ok())
            .collect();
        crate::subjects::all_pids()
            .into_iter()
            .filter_map(|pid| {
                let marked =
                    |map: &aya::maps::MapData| crate::kernel::raw_subject_profile(map.fd().as_fd().as_raw_fd(), pid);
                maps.iter().find_map(marked).map(|profile| (pid, profile))
            })
            .collect()
    }

    /// The set-aside map `name` (the one the replaced programs used) as a
    /// hash map of `K` to `V`, if that is its shape; else why not.
    pub fn hash_map<K: aya::Pod, V: aya::Pod>(
        &self,
        name: &str,
    ) -> Result<aya::maps::HashMap<aya::maps::MapData, K, V>, String> {
        let map = aya::maps::MapData::from_pin(self.dir.join(name)).map_err(|e| e.to_string())?;
        let kind = map.info().map(|info| pinned_type(&info)).map_err(|e| e.to_string())?;
        if kind != aya::maps::MapType::Hash as u32 {
            return Err(format!("a map of type {kind}, not a hash map"));
        }
        aya::maps::HashMap::try_from(aya::maps::Map::HashMap(map)).map_err(|e| e.to_string())
    }

    /// Drops the set-aside pins: their maps go with their last program.
    pub fn remove(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
