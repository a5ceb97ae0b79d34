//! The one decision function: given a subject's profile and the classified
//! messages of one sendmsg, which are allowed, which consume a warrant, and
//! whether the sendmsg as a whole goes through.
//!
//! A batch is all or nothing: nftables applies a batch atomically, so one
//! denied message denies every message of it, and no warrant use is spent on
//! a batch that did not go through.

use crate::{
    FAMILY_ANY, NO_WARRANT, RuleEntry, TargetKey, action, mode,
    netlink::{self, Class, ContentSpan, MAX_MESSAGES, MessageBuffer, Step},
    tier, verdict,
};

/// What the kernel's maps answer. The BPF program implements it over its
/// hash maps; the plain test tier over in-memory fakes.
pub trait PolicyView {
    /// The rule stored under exactly `key`.
    fn rule(&self, key: &TargetKey) -> Option<RuleEntry>;
    /// The index of a warrant for exactly `key` that is valid now, has a
    /// use left and approves content `digest` (a warrant bound to no
    /// digest approves any), without taking the use.
    fn usable_warrant(&self, key: &TargetKey, digest: u64) -> Option<u32>;
    /// Takes one use of that warrant, atomically; false if none is left or
    /// it is no longer valid.
    fn consume_warrant(&self, key: &TargetKey, digest: u64) -> bool;
    /// Gives back a use taken by `consume_warrant` in this same decision.
    fn refund_warrant(&self, key: &TargetKey);
    /// Counts one action against `rule`'s rate; false once its window is full.
    fn take_rate(&self, rule: &RuleEntry) -> bool;
    /// The policy generation this decision reads rules from (read once).
    fn generation(&self) -> u8 {
        0
    }
}

/// The decision about one classified message.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageDecision {
    pub key: TargetKey,
    pub tier: u32,
    pub verdict: u32,
    pub rule_index: u32,
    pub warrant_index: u32,
    /// The content digest of the message (see `netlink::content_digest`), 0 if none.
    pub content_digest: u64,
}

/// Working memory for one sendmsg (the kernel keeps it in task-local storage, as it
/// is far larger than the BPF stack).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BatchScratch {
    /// Messages that are actions, in order.
    pub count: u32,
    /// Netlink messages seen, actions or not.
    pub seen: u32,
    /// Non-zero once a message of this batch is denied.
    pub denied: u32,
    /// The policy generation the batch was decided under.
    pub generation: u32,
    /// Where the message being classified keeps its content.
    pub content: ContentSpan,
    /// The key being probed during wildcard lookups.
    pub probe: TargetKey,
    pub messages: [MessageDecision; MAX_MESSAGES],
}

impl BatchScratch {
    pub const fn zeroed() -> Self {
        Self {
            count: 0,
            seen: 0,
            denied: 0,
            generation: 0,
            content: ContentSpan { at: 0, len: 0 },
            probe: TargetKey::zeroed(),
            messages: [MessageDecision {
                key: TargetKey::zeroed(),
                tier: 0,
                verdict: 0,
                rule_index: 0,
                warrant_index: NO_WARRANT,
                content_digest: 0,
            }; MAX_MESSAGES],
        }
    }
}

/// Whether the sendmsg goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Nothing in it is an action (reads, batch delimiters).
    NoAction,
    Allow,
    Deny,
}

/// How many rule lookups a message may need: exact, then `* ` for the object,
/// then for the table, then for the family.
pub const LOOKUP_LEVELS: usize = 4;

/// Fills `probe` with the key looked up at `level` (0 = exact) in policy
/// `generation`, given that it holds the key of `level - 1` (each level only
/// widens the previous one, so the exact key is copied once per message).
pub fn widen_key(exact: &TargetKey, level: usize, probe: &mut TargetKey, generation: u8) {
    match level {
        0 => {
            probe.copy_from(exact);
            probe.generation = generation;
        }
        1 => probe.clear_object(),
        2 => probe.clear_table(),
        _ => probe.family = FAMILY_ANY,
    }
}

/// The most specific rule covering `exact`.
pub fn match_rule<P: PolicyView>(policy: &P, exact: &TargetKey, probe: &mut TargetKey) -> Option<RuleEntry> {
    let generation = policy.generation();
    for level in 0..LOOKUP_LEVELS {
        widen_key(exact, level, probe, generation);
        if let Some(rule) = policy.rule(probe) {
            return Some(rule);
        }
    }
    None
}

/// Decides one classified message (warrant uses are only checked, not taken).
pub fn decide_message<P: PolicyView>(policy: &P, message: &mut MessageDecision, probe: &mut TargetKey) {
    message.warrant_index = NO_WARRANT;
    let Some(rule) = match_rule(policy, &message.key, probe) else {
        message.tier = tier::UNMATCHED;
        message.rule_index = 0;
        message.verdict = verdict::DENIED;
        return;
    };
    // Past its rate, an `allow` rule's action falls to the next tier.
    let tier = if rule.tier == tier::ALLOW && rule.rate_limit != 0 && !policy.take_rate(&rule) {
        tier::APPROVE
    } else {
        rule.tier
    };
    message.tier = tier;
    message.rule_index = rule.rule_index;
    message.verdict = match tier {
        tier::ALLOW => verdict::ALLOWED,
        tier::APPROVE => match policy.usable_warrant(&message.key, message.content_digest) {
            Some(index) => {
                message.warrant_index = index;
                verdict::ALLOWED_BY_WARRANT
            }
            None => verdict::DENIED_NEEDS_WARRANT,
        },
        _ => verdict::DENIED,
    };
}

fn is_allowed(verdict: u32) -> bool {
    verdict == verdict::ALLOWED || verdict == verdict::ALLOWED_BY_WARRANT
}

/// Classifies and decides every message of one sendmsg for a subject of
/// `profile_id` in `profile_mode`. Per-message results are left in `scratch`.
pub fn decide_batch<B: MessageBuffer, P: PolicyView>(
    buf: &B,
    policy: &P,
    profile_id: u32,
    profile_mode: u32,
    scratch: &mut BatchScratch,
) -> BatchOutcome {
    // Loop-carried state lives in the scratch map and is accessed volatile:
    // kept in registers, the verifier would follow every combination of
    // "action or not" and "denied or not" across iterations separately.
    set(&mut scratch.count, 0);
    set(&mut scratch.seen, 0);
    set(&mut scratch.denied, 0);
    set(&mut scratch.generation, policy.generation() as u32);
    let mut offset = 0u32;
    let mut finished = false;
    for _ in 0..MAX_MESSAGES {
        let (header, next) = match netlink::read_header(buf, offset) {
            Step::End => {
                finished = true;
                break;
            }
            Step::Message { header, next } => (header, next),
        };
        let start = offset;
        offset = next;
        let seen = get(&scratch.seen);
        set(&mut scratch.seen, seen + 1);
        let count = get(&scratch.count);
        let Some(message) = scratch.messages.get_mut(count as usize) else {
            break;
        };
        message.key.profile_id = profile_id;
        let class = netlink::classify(buf, start, &header, &mut message.key, &mut scratch.content);
        // Attribute 4 is content only in a rule; elsewhere it digests to
        // nothing (a chain's hook, a set's key type are not bound by warrants).
        let content = unsafe { core::ptr::read_volatile(&scratch.content) };
        let at = if action::has_content(message.key.action) { content.at } else { 0 };
        message.content_digest = buf.content_digest(at, content.len);
        match class {
            Class::NotAnAction => continue,
            Class::Unparseable => {
                message.tier = tier::UNMATCHED;
                message.rule_index = 0;
                message.warrant_index = NO_WARRANT;
                message.verdict = verdict::UNPARSEABLE;
            }
            Class::Action => decide_message(policy, message, &mut scratch.probe),
        }
        if !is_allowed(message.verdict) {
            set(&mut scratch.denied, 1);
        }
        set(&mut scratch.count, count + 1);
    }
    if !finished && netlink::read_header(buf, offset) != Step::End {
        // More messages than the kernel side reads: deny rather than guess,
        // with a record that says so in place of (or after) the last one.
        set(&mut scratch.denied, 1);
        let count = get(&scratch.count) as usize;
        let slot = if count < MAX_MESSAGES {
            set(&mut scratch.count, count as u32 + 1);
            count
        } else {
            MAX_MESSAGES - 1
        };
        if let Some(message) = scratch.messages.get_mut(slot) {
            message.key.action = 0;
            message.tier = tier::UNMATCHED;
            message.verdict = verdict::UNPARSEABLE;
            message.warrant_index = NO_WARRANT;
        }
    }
    let mut denied = get(&scratch.denied) != 0;
    if get(&scratch.count) == 0 && !denied {
        return BatchOutcome::NoAction;
    }

    let audit = profile_mode == mode::AUDIT;
    if !denied || audit {
        denied |= consume_warrants(policy, scratch, audit);
    }
    finish(scratch, denied, audit)
}

#[inline(always)]
fn get(field: &u32) -> u32 {
    unsafe { core::ptr::read_volatile(field) }
}

#[inline(always)]
fn set(field: &mut u32, value: u32) {
    unsafe { core::ptr::write_volatile(field, value) }
}

/// Decides one action that is not part of a netlink batch (a setsockopt):
/// `scratch.messages[0].key` must hold it, with `profile_id` set.
pub fn decide_single<P: PolicyView>(policy: &P, profile_mode: u32, scratch: &mut BatchScratch) -> BatchOutcome {
    set(&mut scratch.count, 1);
    set(&mut scratch.seen, 1);
    set(&mut scratch.generation, policy.generation() as u32);
    let message = &mut scratch.messages[0];
    // The scratch outlives batches: a rule digest from one must not linger.
    message.content_digest = 0;
    decide_message(policy, message, &mut scratch.probe);
    let mut denied = !is_allowed(message.verdict);
    let audit = profile_mode == mode::AUDIT;
    if !denied || audit {
        denied |= consume_warrants(policy, scratch, audit);
    }
    finish(scratch, denied, audit)
}

/// Takes one warrant use per message allowed by a warrant. In enforce mode a
/// failure (a racing subject took the last use, or two messages share a
/// one-use warrant) gives back the uses taken so far and reports a denial.
fn consume_warrants<P: PolicyView>(policy: &P, scratch: &mut BatchScratch, audit: bool) -> bool {
    let mut failed_at = None;
    for i in 0..MAX_MESSAGES {
        if i >= get(&scratch.count) as usize {
            break;
        }
        let message = &mut scratch.messages[i];
        if message.verdict != verdict::ALLOWED_BY_WARRANT {
            continue;
        }
        if !policy.consume_warrant(&message.key, message.content_digest) {
            message.verdict = verdict::DENIED_NEEDS_WARRANT;
            if !audit {
                failed_at = Some(i);
                break;
            }
        }
    }
    let Some(failed_at) = failed_at else {
        return false;
    };
    for i in 0..MAX_MESSAGES {
        if i >= failed_at {
            break;
        }
        let message = &scratch.messages[i];
        if message.verdict == verdict::ALLOWED_BY_WARRANT {
            policy.refund_warrant(&message.key);
        }
    }
    true
}

/// Settles every message's final verdict for the batch outcome.
fn finish(scratch: &mut BatchScratch, denied: bool, audit: bool) -> BatchOutcome {
    if !denied {
        return BatchOutcome::Allow;
    }
    for i in 0..MAX_MESSAGES {
        if i >= get(&scratch.count) as usize {
            break;
        }
        let message = &mut scratch.messages[i];
        let allowed = is_allowed(message.verdict);
        if audit {
            if !allowed {
                message.verdict = verdict::WOULD_DENY;
            }
        } else if allowed {
            // Nothing of the batch is applied, and its warrant uses were given back.
            message.verdict = verdict::BATCH_DENIED;
        }
    }
    if audit { BatchOutcome::Allow } else { BatchOutcome::Deny }
}
