//! Legacy x_tables: iptables-legacy, ip6tables-legacy, arptables and
//! ebtables replace whole tables through setsockopt on a raw socket.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use warrant_common::{
    decision::{self, BatchOutcome},
    legacy,
};

use crate::{
    netfilter::{KernelPolicy, emit_events, profile_mode},
    maps::BATCH_SCRATCH,
    subjects,
};

const EPERM: i32 = 1;

#[lsm(hook = "socket_setsockopt")]
pub fn socket_setsockopt(ctx: LsmContext) -> i32 {
    let earlier_verdict: i32 = ctx.arg(3);
    if earlier_verdict != 0 {
        return earlier_verdict;
    }
    let Some(subject) = subjects::current() else {
        return 0;
    };
    let level: i32 = ctx.arg(1);
    let optname: i32 = ctx.arg(2);
    let Some((action, family)) = legacy::classify(level, optname) else {
        return 0;
    };
    let Some(scratch) = BATCH_SCRATCH.get_ptr_mut(0) else {
        return -EPERM;
    };
    let scratch = unsafe { &mut *scratch };
    let key = &mut scratch.messages[0].key;
    key.clear_table();
    key.clear_object();
    key.profile_id = subject.profile_id;
    key.action = action;
    key.family = family;
    let outcome = decision::decide_single(&KernelPolicy, profile_mode(&subject), scratch);
    emit_events(&subject, scratch);
    if outcome == BatchOutcome::Deny { -EPERM } else { 0 }
}
