//! The audit pipeline on this machine's own CPU, kernel and disk: a small
//! socket-filter program, run by `BPF_PROG_TEST_RUN`, copies a decision
//! event onto the daemon's event ring (`bpf_ringbuf_output`) at a paced
//! rate, and the daemon's own reader and state's owner record what they
//! read (`warrant::daemon::time_ring_records`). The host cannot attach
//! Warrant's LSM programs, but it runs this one: the ring, its wake-ups
//! and the records are the daemon's.

use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use warrant::daemon::RingSource;
use warrant_common::Event;

const BPF_MAP_CREATE: i64 = 0;
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

/// Puts copies of `source.event` on the ring at `rate` a second (0: as
/// fast as the runs go) for `seconds`; returns how many it put or tried
/// to (a full ring drops them: the caller counts what was written).
pub fn offer(source: &RingSource, rate: u64, seconds: f64) -> io::Result<u64> {
    let template = event_template(&source.event)?;
    let program = load_program(template.as_raw_fd(), source.ring.as_raw_fd())?;
    let period = Duration::from_millis(1);
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
            test_run(program.as_raw_fd(), runs)?;
            offered += u64::from(runs);
            behind -= u64::from(runs);
        }
        if rate != 0 {
            std::thread::sleep(period);
        }
    }
    Ok(offered)
}

/// A one-entry array holding the event's bytes, for the program to copy.
fn event_template(event: &Event) -> io::Result<OwnedFd> {
    let size = size_of::<Event>() as u32;
    let mut attr = [0u8; 128];
    for (at, value) in [(0, BPF_MAP_TYPE_ARRAY), (4, 4), (8, size), (12, 1)] {
        attr[at..at + 4].copy_from_slice(&value.to_ne_bytes());
    }
    let map = unsafe { OwnedFd::from_raw_fd(bpf(BPF_MAP_CREATE, &mut attr)?) };
    let key = 0u32;
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&(map.as_raw_fd() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(std::ptr::from_ref(&key) as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(std::ptr::from_ref(event) as u64).to_ne_bytes());
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr)?;
    Ok(map)
}

/// The program: look up the template, `bpf_ringbuf_output` it, return 0.
fn load_program(template: RawFd, ring: RawFd) -> io::Result<OwnedFd> {
    let size = size_of::<Event>() as i32;
    let insns: Vec<u64> = vec![
        insn(0x62, 10, 0, -4, 0),                      // *(u32 *)(r10 - 4) = 0
        insn(0xbf, 2, 10, 0, 0),                       // r2 = r10
        insn(0x07, 2, 0, 0, -4),                       // r2 += -4
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, template), // r1 = template map
        0,                                             // (its upper half)
        insn(0x85, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM), // r0 = lookup(r1, r2)
        insn(0x15, 0, 0, 6, 0),                        // if r0 == 0 goto exit
        insn(0xbf, 2, 0, 0, 0),                        // r2 = r0
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, ring),     // r1 = ring
        0,                                             // (its upper half)
        insn(0xb7, 3, 0, 0, size),                     // r3 = size
        insn(0xb7, 4, 0, 0, 0),                        // r4 = 0 (wake-up as the kernel decides)
        insn(0x85, 0, 0, 0, BPF_FUNC_RINGBUF_OUTPUT),  // ringbuf_output(r1, r2, r3, r4)
        insn(0xb7, 0, 0, 0, 0),                        // exit: r0 = 0
        insn(0x95, 0, 0, 0, 0),                        // return
    ];
    let license = c"GPL";
    let mut log = vec![0u8; 4096];
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_SOCKET_FILTER.to_ne_bytes());
    attr[4..8].copy_from_slice(&(insns.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[24..28].copy_from_slice(&1u32.to_ne_bytes());
    attr[28..32].copy_from_slice(&(log.len() as u32).to_ne_bytes());
    attr[32..40].copy_from_slice(&(log.as_mut_ptr() as u64).to_ne_bytes());
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
        Err(e) => {
            let text = String::from_utf8_lossy(&log);
            Err(io::Error::new(e.kind(), format!("{e}: {}", text.trim_end_matches('\0').trim())))
        }
    }
}

/// One instruction as the kernel reads it (little-endian hosts).
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

fn bpf(command: i64, attr: &mut [u8; 128]) -> io::Result<RawFd> {
    let rc = unsafe { libc::syscall(libc::SYS_bpf, command, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc as RawFd) }
}
