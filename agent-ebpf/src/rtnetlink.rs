//! rtnetlink, xfrm and every other netlink protocol but netfilter: each
//! message a subject sends is classified (`warrant_common::netlink_protocols`)
//! and decided like a netfilter batch, but a sendmsg of one rtnetlink read
//! (`read_by_header`), which passes at once. A program of its own on the same
//! hook, so that the verifier checks each protocol family's walk apart and
//! netfilter's instruction budget is not shared.

use aya_ebpf::{helpers::generated::bpf_probe_read_kernel_str, macros::lsm, programs::LsmContext};
use warrant_common::{
    NAME_LEN,
    action::IFNAME_LEN,
    netlink::{NETLINK_NETFILTER, lone_message},
    netlink_protocols::{Interfaces, OtherProtocol, read_by_header},
};

use crate::{
    maps::offset,
    netfilter::{SkbData, decide_sendmsg, protocol_of},
    policy::read_kernel,
    subjects,
};

const EPERM: i32 = 1;
/// `NETDEV_HASHENTRIES`: the buckets of `net->dev_index_head`.
const INDEX_BUCKETS: u32 = 1 << 8;
/// Links looked at in one bucket before the index counts as unnamed (a
/// bucket holds the links whose indexes agree in their low 8 bits).
const BUCKET_STEPS: u32 = 16;

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
    let Some(buffer) = SkbData::of(skb) else {
        return -EPERM;
    };
    // A lone read (a dump, a get): no action, so no batch slot, policy or
    // record. The commonest message a subject sends here.
    if warrant_lone_read(buffer.data as u64, buffer.len, protocol as u32) != 0 {
        return 0;
    }
    let interfaces = SocketNet::of(sock);
    decide_sendmsg(&subject, &buffer, &OtherProtocol { protocol, interfaces })
}

/// Whether the `len` bytes at `data` (a netlink skb's) are one message
/// that [`read_by_header`] takes as a read on `protocol`. A global
/// function: the verifier checks it once, on its own. Inlined, its reads
/// kept the batch walk's states from matching on 6.12 and 7.2, whose
/// `rtnetlink_send` then took 425k and 962k of the verifier's 1M
/// instructions (140k and 176k before).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn warrant_lone_read(data: u64, len: u32, protocol: u32) -> u32 {
    let buffer = SkbData { data: data as *const u8, len };
    u32::from(lone_message(&buffer).is_some_and(|header| read_by_header(protocol as u16, &header)))
}

/// The namespace a netlink socket acts in (`sock_net`), whose interfaces
/// name the targets of link, address and neighbour messages.
struct SocketNet {
    net: *const u8,
    inum: u64,
}

impl SocketNet {
    fn of(sock: *const u8) -> Self {
        let net = read_kernel::<u64>(sock, offset!(sock_net)).unwrap_or(0) as *const u8;
        let inum = if net.is_null() { 0 } else { read_kernel::<u32>(net, offset!(net_ns_inum)).unwrap_or(0) as u64 };
        Self { net, inum }
    }
}

impl Interfaces for SocketNet {
    fn netns(&self) -> u64 {
        self.inum
    }

    /// `dev_get_by_index`'s walk: the bucket of `index` in the namespace's
    /// index hash, link by link.
    fn name_of(&self, index: u32, out: &mut [u8; NAME_LEN]) -> bool {
        if self.net.is_null() {
            return false;
        }
        let Some(heads) = read_kernel::<u64>(self.net, offset!(net_dev_index_head)) else {
            return false;
        };
        let bucket = heads + 8 * (index % INDEX_BUCKETS) as u64;
        let mut node = read_kernel::<u64>(bucket as *const u8, 0).unwrap_or(0);
        for _ in 0..BUCKET_STEPS {
            if node == 0 {
                return false;
            }
            let device = (node - offset!(net_device_index_hlist) as u64) as *const u8;
            if read_kernel::<i32>(device, offset!(net_device_ifindex)) == Some(index as i32) {
                // The name is NUL-terminated but not NUL-padded after a
                // rename: the string read stops at the NUL, and `out` is zero.
                let rc = unsafe {
                    bpf_probe_read_kernel_str(
                        out.as_mut_ptr().cast(),
                        IFNAME_LEN as u32,
                        device.add(offset!(net_device_name) as usize).cast(),
                    )
                };
                return rc > 1;
            }
            // hlist_node's first member is `next`.
            node = read_kernel::<u64>(node as *const u8, 0).unwrap_or(0);
        }
        false
    }
}
