//! Legacy x_tables: iptables-legacy, ip6tables-legacy, arptables and
//! ebtables replace whole tables through setsockopt on a raw socket.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use warrant_common::legacy;

use crate::{policy::decide_action, subjects};

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
    decide_action(&subject, action, family, 0, [0, 0])
}
