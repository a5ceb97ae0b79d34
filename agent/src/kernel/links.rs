//! Detaching the daemon's programs and attaching them again without loading
//! (and so verifying) them again. `warrant-bench` measures its baseline so,
//! in the same boot as the figures it is compared with. Root only; a subject
//! cannot reach the pins (the self-protection hooks refuse it).

use std::os::fd::{AsFd as _, OwnedFd};
use std::path::{Path, PathBuf};

use aya::programs::{
    ProgramInfo,
    links::{FdLink, PinnedLink},
    loaded_programs,
};

use super::{KernelError, PIN_ROOT, error_chain, program_loader};

/// A pinned program, detached, with what attaches it again.
pub struct DetachedProgram {
    pin: PathBuf,
    program: OwnedFd,
}

/// Every program pinned under PIN_ROOT/links, detached.
pub struct Detached(Vec<DetachedProgram>);

/// The programs under PIN_ROOT/links: pin name and program.
pub fn pinned_programs() -> Result<Vec<(String, ProgramInfo)>, KernelError> {
    let mut programs = Vec::new();
    for pin in link_pins()? {
        let link = PinnedLink::from_pin(&pin).map_err(|e| pin_err(&pin, error_chain(&e)))?;
        let name = pin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        programs.push((name, program_of(&FdLink::from(link), &pin)?));
    }
    Ok(programs)
}

/// Detaches every pinned program: each link's pin is removed and its last
/// descriptor closed, which detaches it; the program stays loaded. The
/// links are closed all at once: each waits for a grace period of its own.
pub fn detach_all() -> Result<Detached, KernelError> {
    let mut detached = Vec::new();
    let mut links = Vec::new();
    for pin in link_pins()? {
        let link = PinnedLink::from_pin(&pin)
            .map_err(|e| pin_err(&pin, error_chain(&e)))?
            .unpin()
            .map_err(|e| pin_err(&pin, e.to_string()))?;
        let program = program_of(&link, &pin)?
            .fd()
            .map_err(|e| pin_err(&pin, error_chain(&e)))?
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| pin_err(&pin, e.to_string()))?;
        links.push(link);
        detached.push(DetachedProgram { pin, program });
    }
    std::thread::scope(|scope| {
        for link in links {
            scope.spawn(move || drop(link));
        }
    });
    Ok(Detached(detached))
}

impl Detached {
    /// Attaches every program again and pins its new link where the old was.
    pub fn attach_again(self) -> Result<(), KernelError> {
        for DetachedProgram { pin, program } in self.0 {
            program_loader::attach_and_pin(&program, &pin).map_err(|e| pin_err(&pin, e.to_string()))?;
        }
        Ok(())
    }
}

fn link_pins() -> Result<Vec<PathBuf>, KernelError> {
    let dir = Path::new(PIN_ROOT).join("links");
    let entries = std::fs::read_dir(&dir).map_err(|e| pin_err(&dir, e.to_string()))?;
    let mut pins: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    pins.sort();
    Ok(pins)
}

/// The program `link` (pinned at `pin`) attaches.
fn program_of(link: &FdLink, pin: &Path) -> Result<ProgramInfo, KernelError> {
    let id = link.info().map_err(|e| pin_err(pin, error_chain(&e)))?.program_id();
    loaded_programs()
        .filter_map(Result::ok)
        .find(|program| program.id() == id)
        .ok_or_else(|| pin_err(pin, format!("its program {id} is not loaded")))
}

fn pin_err(path: &Path, reason: String) -> KernelError {
    KernelError::Pin { path: path.display().to_string(), reason }
}
