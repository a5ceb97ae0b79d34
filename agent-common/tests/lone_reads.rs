//! Plain tier: a subject's sendmsg of one read is let through before any
//! batch is claimed (`lone_message`, `read_by_header`). The shortcut must
//! never pass what the batch walk would decide: checked here over every
//! message type, on rtnetlink and the protocols the walk knows reads of.

mod common;

use common::FakeMaps;
use warrant_common::{
    decision::{BatchOutcome, BatchScratch, decide_batch},
    mode,
    netlink::{NLM_F_DUMP, NLM_F_REQUEST, SliceBuffer, lone_message},
    netlink_protocols::{OtherProtocol, protocol, read_by_header},
};

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_GETDCB: u16 = 78;

/// One message: a netlink header of `msg_type` and `flags`, then `body`.
fn message(msg_type: u16, flags: u16, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 16];
    out.extend_from_slice(body);
    let len = out.len() as u32;
    out[0..4].copy_from_slice(&len.to_ne_bytes());
    out[4..6].copy_from_slice(&msg_type.to_ne_bytes());
    out[6..8].copy_from_slice(&flags.to_ne_bytes());
    out
}

/// The batch walk's outcome for `bytes` on `protocol`, under no policy.
fn walked(protocol: u16, bytes: &[u8]) -> BatchOutcome {
    let mut scratch = Box::new(BatchScratch::zeroed());
    let classifier = OtherProtocol::plain(protocol);
    decide_batch(&SliceBuffer(bytes), &classifier, &FakeMaps::default(), 0, mode::ENFORCE, &mut scratch)
}

#[test]
fn every_message_the_shortcut_passes_the_batch_walk_finds_no_action_in() {
    let bodies: [&[u8]; 2] = [&[], &[0xff; 64]];
    let all_flags = [0, NLM_F_REQUEST, NLM_F_REQUEST | NLM_F_DUMP, 0x100, 0x200, 0x400, 0x600, 0xffff];
    let protocols = [
        protocol::ROUTE,
        protocol::SOCK_DIAG,
        protocol::XFRM,
        protocol::AUDIT,
        protocol::KOBJECT_UEVENT,
        protocol::GENERIC,
        2,
    ];
    let mut passed = [0usize; 7];
    for msg_type in 0..=u16::MAX {
        for flags in all_flags {
            for body in bodies {
                let bytes = message(msg_type, flags, body);
                let header = lone_message(&SliceBuffer(&bytes)).expect("one message");
                for (at, &protocol) in protocols.iter().enumerate() {
                    if read_by_header(protocol, &header) {
                        passed[at] += 1;
                        let outcome = walked(protocol, &bytes);
                        assert_eq!(outcome, BatchOutcome::NoAction, "protocol {protocol}, type {msg_type}, {flags:#x}");
                    }
                }
            }
        }
    }
    // rtnetlink's GET kind only (RTM_GETDCB aside): types 18, 22, ...
    let gets = (16..=u16::MAX).filter(|t| t % 4 == 2).count() - 1;
    assert_eq!(passed, [gets * all_flags.len() * bodies.len(), 0, 0, 0, 0, 0, 0]);
}

#[test]
fn the_dumps_ip_and_getifaddrs_send_are_reads_a_write_or_a_dcb_command_is_not() {
    let header = |msg_type, flags| lone_message(&SliceBuffer(&message(msg_type, flags, &[0; 16]))).unwrap();
    assert!(read_by_header(protocol::ROUTE, &header(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP)));
    assert!(read_by_header(protocol::ROUTE, &header(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP)));
    assert!(read_by_header(protocol::ROUTE, &header(RTM_GETLINK, NLM_F_REQUEST)));
    // dcbnl's set commands come as RTM_GETDCB: its body decides.
    assert!(!read_by_header(protocol::ROUTE, &header(RTM_GETDCB, NLM_F_REQUEST)));
    // Flags never make a write a read.
    assert!(!read_by_header(protocol::ROUTE, &header(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_DUMP)));
    // Control types are left to the walk.
    assert!(!read_by_header(protocol::ROUTE, &header(2, NLM_F_REQUEST)));
    // xfrm's GETSA is a read too, but not by this shortcut.
    assert!(!read_by_header(protocol::XFRM, &header(18, NLM_F_REQUEST)));
}

#[test]
fn only_a_sendmsg_of_exactly_one_message_is_lone() {
    let read = message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, &[0; 16]);
    assert!(lone_message(&SliceBuffer(&read)).is_some());
    // A second message, even a read, is the batch walk's.
    let two = [read.clone(), read.clone()].concat();
    assert_eq!(lone_message(&SliceBuffer(&two)), None);
    // A write after a read: never passed on the first one's header.
    let read_then_write = [read.clone(), message(RTM_NEWLINK, NLM_F_REQUEST, &[0; 16])].concat();
    assert_eq!(lone_message(&SliceBuffer(&read_then_write)), None);
    // Fewer bytes after it than a header: the kernel stops there too.
    let trailing = [read.clone(), vec![0xff; 15]].concat();
    assert!(lone_message(&SliceBuffer(&trailing)).is_some());
    assert_eq!(walked(protocol::ROUTE, &trailing), BatchOutcome::NoAction);
    // A header after it that does not fit: handled by neither.
    let mut bad_second = message(RTM_NEWLINK, NLM_F_REQUEST, &[0; 16]);
    bad_second[0..4].copy_from_slice(&64u32.to_ne_bytes());
    let cut = [read.clone(), bad_second].concat();
    assert!(lone_message(&SliceBuffer(&cut)).is_some());
    assert_eq!(walked(protocol::ROUTE, &cut), BatchOutcome::NoAction);
    // A header that claims more than was sent, or less than itself: none.
    let mut long = read.clone();
    long[0..4].copy_from_slice(&(read.len() as u32 + 4).to_ne_bytes());
    assert_eq!(lone_message(&SliceBuffer(&long)), None);
    let mut short = read.clone();
    short[0..4].copy_from_slice(&8u32.to_ne_bytes());
    assert_eq!(lone_message(&SliceBuffer(&short)), None);
    assert_eq!(lone_message(&SliceBuffer(&[])), None);
}

#[test]
fn a_messages_length_is_rounded_up_to_four_as_the_kernel_steps() {
    // A 17-byte message is followed by 3 bytes of padding, then the next.
    let odd = message(RTM_GETLINK, NLM_F_REQUEST, &[7]);
    let padded = [odd.clone(), vec![0; 3], message(RTM_NEWADDR, NLM_F_REQUEST, &[0; 8])].concat();
    assert_eq!(lone_message(&SliceBuffer(&padded)), None);
    assert_ne!(walked(protocol::ROUTE, &padded), BatchOutcome::NoAction);
    let lone = [odd, vec![0; 3]].concat();
    assert!(lone_message(&SliceBuffer(&lone)).is_some());
    assert_eq!(walked(protocol::ROUTE, &lone), BatchOutcome::NoAction);
}
