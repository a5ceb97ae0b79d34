//! rtnetlink, xfrm and every other netlink protocol but netfilter: each
//! message a subject sends is classified (`warrant_common::netlink_protocols`)
//! and decided like a netfilter batch. A program of its own on the same
//! hook, so that the verifier checks each protocol family's walk apart and
//! netfilter's instruction budget is not shared.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use warrant_common::{netlink::NETLINK_NETFILTER, netlink_protocols::OtherProtocol};

use crate::{
    netfilter::{SkbData, decide_sendmsg, protocol_of},
    subjects,
};

const EPERM: i32 = 1;

#[lsm(hook = "netlink_send")]
pub fn rtnetlink_send(ctx: LsmContext) -> i32 {
    let earlier_verdict: i32 = ctx.arg(2);
    if earlier_verdict != 0 {
        return earlier_verdict;
    }
    let Some(subject) = subjects::current() else {
        return 0;
    };
    let sock: *const u8 = ctx.arg(0);
    let skb: *const u8 = ctx.arg(1);
    let protocol = match protocol_of(sock) {
        Some(NETLINK_NETFILTER) => return 0,
        Some(protocol) => protocol,
        None => return -EPERM,
    };
    match SkbData::of(skb) {
        Some(buffer) => decide_sendmsg(&subject, &buffer, &OtherProtocol { protocol }),
        None => -EPERM,
    }
}
