//! The clock Warrant checks validity against (warrants' windows, policy
//! expiry): the wall clock as it read when this boot's first daemon
//! started, carried forward by CLOCK_BOOTTIME, which nothing can set.
//! Setting the wall clock after that (root's `date -s`, a subject's is
//! refused as `system.clock`) moves nothing Warrant checks; the skew between
//! the two is reported (`status`, a `clock.skew` record). The anchor is kept
//! in the state directory with the boot's id, so a daemon restarted later in
//! the same boot keeps it; a reboot takes a new one. NTP slews CLOCK_BOOTTIME's
//! rate with the wall clock's, so the two agree on a healthy host.

use std::{
    path::Path,
    sync::OnceLock,
    time::{SystemTime, UNIX_EPOCH},
};

/// The file under the state directory.
pub const FILE_NAME: &str = "clock-anchor";

/// Skew past which the daemon records `clock.skew`.
pub const SKEW_REPORTED_SECS: i64 = 60;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// `/proc/sys/kernel/random/boot_id` when the anchor was taken.
    pub boot_id: String,
    /// The wall clock then, in ns since the epoch.
    pub unix_ns: i128,
    /// CLOCK_BOOTTIME then, in ns.
    pub boot_ns: u64,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

/// CLOCK_BOOTTIME now, in ns.
pub fn boot_now_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).expect("CLOCK_BOOTTIME");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

fn wall_now_ns() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0)
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_owned()).unwrap_or_default()
}

impl Anchor {
    /// The anchor kept under `state_dir` if it is this boot's, else a new
    /// one taken now and kept there. `true` with a new one.
    pub fn load_or_take(state_dir: &Path) -> std::io::Result<(Self, bool)> {
        let path = state_dir.join(FILE_NAME);
        let boot_id = boot_id();
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Some(anchor) = Self::parse(&text)
            && anchor.boot_id == boot_id
            && !boot_id.is_empty()
        {
            return Ok((anchor, false));
        }
        let anchor = Self { boot_id, unix_ns: wall_now_ns(), boot_ns: boot_now_ns() };
        crate::durable::write_atomic(&path, anchor.render().as_bytes())?;
        Ok((anchor, true))
    }

    pub fn render(&self) -> String {
        format!("{} {} {}\n", self.boot_id, self.unix_ns, self.boot_ns)
    }

    pub fn parse(text: &str) -> Option<Self> {
        let mut words = text.split_whitespace();
        let anchor = Self {
            boot_id: words.next()?.to_owned(),
            unix_ns: words.next()?.parse().ok()?,
            boot_ns: words.next()?.parse().ok()?,
        };
        words.next().is_none().then_some(anchor)
    }

    /// The anchored time at CLOCK_BOOTTIME `boot_ns`, in ns since the epoch.
    pub fn unix_ns_at(&self, boot_ns: u64) -> i128 {
        self.unix_ns + boot_ns as i128 - self.boot_ns as i128
    }

    /// CLOCK_BOOTTIME at anchored time `unix` (seconds), clamped to u64.
    pub fn boot_ns_at(&self, unix: u64) -> u64 {
        (self.boot_ns as i128 + unix as i128 * 1_000_000_000 - self.unix_ns).clamp(0, u64::MAX as i128) as u64
    }
}

/// Makes `anchor` the one [`now_unix`] reads (the daemon, at start).
pub fn install(anchor: Anchor) {
    let _ = ANCHOR.set(anchor);
}

/// Now, in seconds since the epoch, by the anchor (the wall clock before
/// one is installed: the CLI).
pub fn now_unix() -> u64 {
    let ns = match ANCHOR.get() {
        Some(anchor) => anchor.unix_ns_at(boot_now_ns()),
        None => wall_now_ns(),
    };
    (ns / 1_000_000_000).max(0) as u64
}

/// CLOCK_BOOTTIME at `unix` (seconds), by the anchor.
pub fn boot_ns_at(unix: u64) -> u64 {
    match ANCHOR.get() {
        Some(anchor) => anchor.boot_ns_at(unix),
        None => boot_ns_at_wall(unix),
    }
}

/// The CLOCK_BOOTTIME window of a validity from `not_before` to
/// `expires_at` (unix seconds): the narrower of the anchored clock's and
/// the wall clock's, so that neither alone extends it.
pub fn boot_window_ns(not_before: u64, expires_at: u64) -> (u64, u64) {
    (boot_ns_at(not_before).max(boot_ns_at_wall(not_before)), boot_ns_at(expires_at).min(boot_ns_at_wall(expires_at)))
}

/// CLOCK_BOOTTIME at `unix` (seconds), by the wall clock as it reads now.
pub fn boot_ns_at_wall(unix: u64) -> u64 {
    let delta = unix as i128 * 1_000_000_000 - wall_now_ns();
    (boot_now_ns() as i128 + delta).clamp(0, u64::MAX as i128) as u64
}

/// The wall clock now, in seconds since the epoch.
pub fn wall_now_unix() -> u64 {
    (wall_now_ns() / 1_000_000_000).max(0) as u64
}

/// The wall clock minus the anchored time, in whole seconds.
pub fn skew_secs() -> i64 {
    ANCHOR.get().map(|anchor| ((wall_now_ns() - anchor.unix_ns_at(boot_now_ns())) / 1_000_000_000) as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anchor_carries_the_time_forward_by_the_boot_clock() {
        let anchor = Anchor { boot_id: "b".into(), unix_ns: 1_700_000_000_000_000_000, boot_ns: 5_000_000_000 };
        assert_eq!(anchor.unix_ns_at(65_000_000_000), 1_700_000_060_000_000_000);
        assert_eq!(anchor.boot_ns_at(1_700_000_060), 65_000_000_000);
        assert_eq!(anchor.boot_ns_at(0), 0, "clamped");
        assert_eq!(Anchor::parse(&anchor.render()), Some(anchor));
        assert_eq!(Anchor::parse("b 1 2 3"), None);
        assert_eq!(Anchor::parse("b x 2"), None);
    }

    #[test]
    fn an_anchor_is_kept_within_a_boot() {
        let dir = std::env::temp_dir().join(format!("warrant-clock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (first, new) = Anchor::load_or_take(&dir).unwrap();
        assert!(new);
        let (again, new) = Anchor::load_or_take(&dir).unwrap();
        assert!(!new);
        assert_eq!(again, first);
        std::fs::write(dir.join(FILE_NAME), "another-boot 1 2\n").unwrap();
        let (fresh, new) = Anchor::load_or_take(&dir).unwrap();
        assert!(new && fresh.boot_id == first.boot_id);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
