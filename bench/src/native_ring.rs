//! The audit pipeline on this machine's own CPU, kernel and disk: a small
//! socket-filter program, run by `BPF_PROG_TEST_RUN`, copies a decision
//! event onto the daemon's event ring (`bpf_ringbuf_output`) at a paced
//! rate, and the daemon's own reader and state's owner record what they
//! read (`warrant::daemon::time_ring_records`). The host cannot attach
//! Warrant's LSM programs, but it runs this one: the ring, its wake-ups
//! and the records are the daemon's; what the ring had no room for the
//! program counts, as the kernel's hooks do.

use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use warrant::daemon::RingSource;
use warrant_common::Event;

const BPF_MAP_CREATE: i64 = 0;
const BPF_MAP_LOOKUP_ELEM: i64 = 1;
const BPF_MAP_UPDATE_ELEM: i64 = 2;
const BPF_PROG_LOAD: i64 = 5;
const BPF_PROG_TEST_RUN: i64 = 10;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
const BPF_FUNC_RINGBUF_OUTPUT: i32 = 130;
/// `src_reg` of a 64-bit immediate load that names a map by fd.
const BPF_PSEUDO_MAP_FD: u8 = 1;
/// How many times one test run may run the program.
const MOST_PER_RUN: u32 = 1000;

// The instructions and attributes below are laid out for little-endian hosts.
const _: () = assert!(cfg!(target_endian = "little"), "native_ring encodes BPF for little-endian hosts");

/// The program that copies an event onto the ring, and its maps.
pub struct Producer {
    program: OwnedFd,
    /// One u64: how many copies the ring had no room for.
    dropped: OwnedFd,
    /// The template keeps the program's map reference alive with it.
    _template: OwnedFd,
}

impl Producer {
    /// Loads the program for `source`'s ring and event.
    pub fn new(source: &RingSource) -> io::Result<Self> {
        let template = array_map(size_of::<Event>() as u32)?;
        // SAFETY: Event is plain data of that size.
        let event =
            unsafe { std::slice::from_raw_parts(std::ptr::from_ref(&source.event).cast::<u8>(), size_of::<Event>()) };
        update(&template, event)?;
        let dropped = array_map(8)?;
        update(&dropped, &0u64.to_ne_bytes())?;
        let program = load_program(template.as_raw_fd(), source.ring.as_raw_fd(), dropped.as_raw_fd())?;
        Ok(Self { program, dropped, _template: template })
    }

    /// Puts copies of the event on the ring at `rate` a second (0: as fast
    /// as the runs go) for `seconds`; returns how many it offered and how
    /// many of those the ring had no room for.
    pub fn offer(&self, rate: u64, seconds: f64) -> io::Result<(u64, u64)> {
        let dropped_before = self.dropped()?;
        let started = Instant::now();
        let length = Duration::from_secs_f64(seconds);
        let mut offered = 0u64;
        while started.elapsed() < length {
            let due = if rate == 0 {
                offered + u64::from(MOST_PER_RUN)
            } else {
                (started.elapsed().as_secs_f64() * rate as f64) as u64
            };
            let mut behind = due.saturating_sub(offered);
            while behind > 0 {
                let runs = behind.min(u64::from(MOST_PER_RUN)) as u32;
                test_run(self.program.as_raw_fd(), runs)?;
                offered += u64::from(runs);
                behind -= u64::from(runs);
            }
            if rate != 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok((offered, self.dropped()? - dropped_before))
    }

    fn dropped(&self) -> io::Result<u64> {
        let key = 0u32;
        let mut value = 0u64;
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&(self.dropped.as_raw_fd() as u32).to_ne_bytes());
        attr[8..16].copy_from_slice(&(std::ptr::from_ref(&key) as u64).to_ne_bytes());
        attr[16..24].copy_from_slice(&(std::ptr::from_mut(&mut value) as u64).to_ne_bytes());
        bpf(BPF_MAP_LOOKUP_ELEM, &mut attr)?;
        Ok(value)
    }
}

/// A one-entry array of `value_size` bytes a value.
fn array_map(value_size: u32) -> io::Result<OwnedFd> {
    let mut attr = [0u8; 128];
    for (at, value) in [(0, BPF_MAP_TYPE_ARRAY), (4, 4), (8, value_size), (12, 1)] {
        attr[at..at + 4].copy_from_slice(&value.to_ne_bytes());
    }
    // SAFETY: a successful BPF_MAP_CREATE returns a new fd, ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(bpf(BPF_MAP_CREATE, &mut attr)?) })
}

/// Sets the array's one value to `value` (its whole size).
fn update(map: &OwnedFd, value: &[u8]) -> io::Result<()> {
    let key = 0u32;
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&(map.as_raw_fd() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(std::ptr::from_ref(&key) as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(value.as_ptr() as u64).to_ne_bytes());
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// The program: look up the template and `bpf_ringbuf_output` it; when the
/// ring has no room, add one to `dropped`'s value; return 0.
fn load_program(template: RawFd, ring: RawFd, dropped: RawFd) -> io::Result<OwnedFd> {
    let size = size_of::<Event>() as i32;
    let insns: Vec<u64> = vec![
        insn(0x62, 10, 0, -4, 0),                      // 0: *(u32 *)(r10 - 4) = 0
        insn(0xbf, 2, 10, 0, 0),                       // 1: r2 = r10
        insn(0x07, 2, 0, 0, -4),                       // 2: r2 += -4
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, template), // 3: r1 = template map
        0,                                             // 4: (its upper half)
        insn(0x85, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM), // 5: r0 = lookup(r1, r2)
        insn(0x15, 0, 0, 15, 0),                       // 6: if r0 == 0 goto 22
        insn(0xbf, 2, 0, 0, 0),                        // 7: r2 = r0
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, ring),     // 8: r1 = ring
        0,                                             // 9
        insn(0xb7, 3, 0, 0, size),                     // 10: r3 = size
        insn(0xb7, 4, 0, 0, 0),                        // 11: r4 = 0 (wake-up as the kernel decides)
        insn(0x85, 0, 0, 0, BPF_FUNC_RINGBUF_OUTPUT),  // 12: r0 = ringbuf_output(r1, r2, r3, r4)
        insn(0x15, 0, 0, 8, 0),                        // 13: if r0 == 0 goto 22
        insn(0xbf, 2, 10, 0, 0),                       // 14: r2 = r10
        insn(0x07, 2, 0, 0, -4),                       // 15: r2 += -4
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, dropped),  // 16: r1 = dropped map
        0,                                             // 17
        insn(0x85, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM), // 18: r0 = lookup(r1, r2)
        insn(0x15, 0, 0, 2, 0),                        // 19: if r0 == 0 goto 22
        insn(0xb7, 1, 0, 0, 1),                        // 20: r1 = 1
        insn(0xdb, 0, 1, 0, 0),                        // 21: lock *(u64 *)(r0 + 0) += r1
        insn(0xb7, 0, 0, 0, 0),                        // 22: r0 = 0
        insn(0x95, 0, 0, 0, 0),                        // 23: return
    ];
    let license = c"GPL";
    let load = |log: Option<&mut Vec<u8>>| {
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&BPF_PROG_TYPE_SOCKET_FILTER.to_ne_bytes());
        attr[4..8].copy_from_slice(&(insns.len() as u32).to_ne_bytes());
        attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
        attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
        if let Some(log) = log {
            attr[24..28].copy_from_slice(&1u32.to_ne_bytes());
            attr[28..32].copy_from_slice(&(log.len() as u32).to_ne_bytes());
            attr[32..40].copy_from_slice(&(log.as_mut_ptr() as u64).to_ne_bytes());
        }
        bpf(BPF_PROG_LOAD, &mut attr)
    };
    // Without the verifier's log first: a log longer than its buffer fails a load.
    let fd = match load(None) {
        Ok(fd) => fd,
        Err(e) => {
            let mut log = vec![0u8; 1 << 16];
            let _ = load(Some(&mut log));
            let text = String::from_utf8_lossy(&log);
            return Err(io::Error::new(e.kind(), format!("{e}: {}", text.trim_end_matches('\0').trim())));
        }
    };
    // SAFETY: a successful BPF_PROG_LOAD returns a new fd, ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One instruction as the kernel reads it.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | u64::from(dst & 0xf) << 8
        | u64::from(src & 0xf) << 12
        | u64::from(off as u16) << 16
        | u64::from(imm as u32) << 32
}

/// Runs the program `runs` times on a zeroed packet.
fn test_run(program: RawFd, runs: u32) -> io::Result<()> {
    let packet = [0u8; 64];
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&(program as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&(packet.len() as u32).to_ne_bytes());
    attr[16..24].copy_from_slice(&(packet.as_ptr() as u64).to_ne_bytes());
    attr[32..36].copy_from_slice(&runs.to_ne_bytes());
    bpf(BPF_PROG_TEST_RUN, &mut attr).map(drop)
}

/// The bpf(2) call `command` with `attr`, whose pointers point at memory
/// that outlives the call.
fn bpf(command: i64, attr: &mut [u8; 128]) -> io::Result<RawFd> {
    // SAFETY: `attr` is a whole bpf_attr-sized buffer; the kernel reads and
    // writes only within it and where its pointers say.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, command, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc as RawFd) }
}
