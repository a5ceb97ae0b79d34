//! Memory mappings of files: a shared writable mapping is a write (decided
//! as one, through `files`), an executable one of a file a subject wrote is
//! `marks`'s to decide; `file_mprotect` catches either made after the fact.

use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    files::{check_write_through, file_facts},
    maps::offset,
    marks,
    policy::{as_number, btf_load, read_kernel},
    subjects,
};

const VM_SHARED: u64 = 0x8;
const PROT_WRITE: u64 = 2;
const PROT_EXEC: u64 = 4;
const MAP_SHARED: u64 = 1;

#[lsm(hook = "mmap_file")]
pub fn mmap_file(ctx: LsmContext) -> i32 {
    let earlier_verdict: i32 = ctx.arg(4);
    if earlier_verdict != 0 {
        return earlier_verdict;
    }
    decide_mmap(ctx.arg(0), ctx.arg(2), ctx.arg(3))
}

/// `mmap_file` in fmod_ret mode, on `security_mmap_file(file, prot,
/// flags)`: the function has no `reqprot`, so the verdict so far sits in
/// the fourth slot, not the fifth. Never attached as an LSM program.
#[lsm(hook = "security_mmap_file")]
pub fn mmap_file_fmod_ret(ctx: LsmContext) -> i32 {
    let earlier_verdict: i32 = ctx.arg(3);
    if earlier_verdict != 0 {
        return earlier_verdict;
    }
    decide_mmap(ctx.arg(0), ctx.arg(1), ctx.arg(2))
}

/// A mapping of `file` with `prot` and `flags`: executable (see `marks`), or
/// shared and writable (a write through memory).
#[inline(always)]
fn decide_mmap(file: *const u8, prot: u64, flags: u64) -> i32 {
    if file.is_null() {
        return 0;
    }
    if prot & PROT_EXEC != 0 {
        let verdict = marks::check_exec_map(file);
        if verdict != 0 {
            return verdict;
        }
    }
    if prot & PROT_WRITE == 0 || flags & MAP_SHARED == 0 {
        return 0;
    }
    write_mapping(file)
}

/// A subject's shared writable mapping of `file`: decided like a write,
/// and marked (an fd it did not open itself, a memfd, writes no
/// `file_open` saw).
#[inline(always)]
fn write_mapping(file: *const u8) -> i32 {
    let Some(subject) = subjects::current() else {
        return 0;
    };
    // Shared anonymous memory has no file: `mmap_file`'s is NULL then,
    // though a kernel whose BTF does not say it may be (6.12's) may take
    // it for a trusted pointer, drop a plain NULL check (`decide_mmap`'s)
    // as dead code, and not guard the facts' loads through it. Not seen on
    // the kernel tier's 6.12 (a subject's shared anonymous mapping works
    // there without this); a number the verifier cannot reason about keeps
    // the check whatever it infers, on this rare path of subjects only.
    if as_number(file) == 0 {
        return 0;
    }
    let facts = file_facts(file, true);
    let (verdict, _) = check_write_through(&subject, file, &facts);
    if verdict != 0 {
        return verdict;
    }
    marks::note_write_of(&subject, &facts)
}

/// `file_mprotect(vma, reqprot, prot)`: a shared mapping made writable
/// after the fact (mmap read-only, then mprotect), or a mapping of a file a
/// subject wrote made executable (see `marks`).
#[lsm(hook = "file_mprotect")]
pub fn file_mprotect(ctx: LsmContext) -> i32 {
    let earlier_verdict: i32 = ctx.arg(3);
    if earlier_verdict != 0 {
        return earlier_verdict;
    }
    let vma: *const u8 = ctx.arg(0);
    let prot: u64 = ctx.arg(2);
    if prot & (PROT_WRITE | PROT_EXEC) == 0 {
        return 0;
    }
    // A BTF load: `file_facts` reads the file by BTF loads, which the
    // verifier allows only from a pointer it knows the type of.
    let file = btf_load::<u64>(vma, offset!(vm_area_struct_vm_file)) as *const u8;
    let vm_flags = read_kernel::<u64>(vma, offset!(vm_area_struct_vm_flags)).unwrap_or(VM_SHARED);
    decide_mmap(file, prot, if vm_flags & VM_SHARED != 0 { MAP_SHARED } else { 0 })
}
