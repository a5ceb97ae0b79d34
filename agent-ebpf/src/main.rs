//! Warrant's kernel side: BPF-LSM programs that confine subjects.
//!
//! One module per hook family. Every hook starts with one task-storage
//! lookup; a task without a subject marker leaves at once.
#![no_std]
#![no_main]
// The atomic types of core have no read-modify-write on the BPF target; the
// intrinsics lower to BPF_ATOMIC instructions (see atomics.rs).
#![feature(core_intrinsics)]
#![allow(internal_features)]
// Map keys go by reference, as aya's examples do: a by-value key would be
// one more stack copy for the verifier to track.
#![allow(clippy::needless_borrows_for_generic_args)]

mod atomics;
mod attributes;
mod files;
mod held;
mod ioctls;
mod ipc;
mod legacy;
mod local;
mod mappings;
mod maps;
mod marks;
mod mounts;
mod names;
mod netfilter;
mod netns;
mod overflow;
mod passes;
mod policy;
mod rtnetlink;
mod selfprotect;
mod subjects;
mod sysfs;
mod uapi;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program; the verifier rejects any path here.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
