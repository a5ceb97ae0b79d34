//! The one decision function: given a subject's profile and the classified
//! messages of one sendmsg, which are allowed, which consume a warrant, and
//! whether the sendmsg as a whole goes through.
//!
//! A batch is all or nothing: nftables applies a batch atomically, so one
//! denied message denies every message of it, and no warrant use is spent on
//! a batch that did not go through.

use crate::{
    FAMILY_ANY, FileKey, NO_WARRANT, RuleEntry, TargetKey, action, mode,
    netlink::{self, Class, Classifier, MAX_MESSAGES, MessageBuffer, MessageNotes, Step},
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
    /// Runs `step(0)`, `step(1)`, ... up to `times` steps, until one returns
    /// false. The kernel runs it in a `bpf_loop`, so the verifier checks a
    /// step once, not once per iteration; state a step carries to the next
    /// belongs in the scratch map, not in captured locals.
    fn repeat<F: FnMut(u32) -> bool>(&self, times: u32, mut step: F) {
        for i in 0..times {
            if !step(i) {
                break;
            }
        }
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

/// Working memory for one decision, far larger than the BPF stack: `N`
/// message decisions. A sendmsg's batch takes [`MESSAGE_SLOTS`] (the
/// kernel claims one of a few preallocated slots for it, see `owner`);
/// a single action takes one (the kernel keeps that in task storage).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BatchScratch<const N: usize = MESSAGE_SLOTS> {
    /// Who holds this scratch (0: free), where the kernel shares a few
    /// scratches between subjects: the holder's profile id in the high
    /// word, its thread id (never 0) in the low one.
    pub owner: u64,
    /// Messages that are actions, in order.
    pub count: u32,
    /// Netlink messages seen, actions or not.
    pub seen: u32,
    /// Non-zero once a message of this batch is denied.
    pub denied: u32,
    /// The policy generation the batch was decided under.
    pub generation: u32,
    /// Where the message being classified keeps its content.
    pub content: MessageNotes,
    /// Where the next message starts.
    pub offset: u32,
    /// Non-zero once the walk reached the end of the buffer.
    pub finished: u32,
    /// The message whose warrant use failed (`NO_FAILURE`: none).
    pub failed_at: u32,
    /// Keeps `probe` 8-aligned.
    pub _pad: u32,
    /// The key being probed during wildcard lookups.
    pub probe: TargetKey,
    /// MAX_MESSAGES decisions, and a spare last slot where a full batch
    /// classifies the message that did not fit. Indexed through
    /// [`Self::message`], whose mask is the bounds check the verifier sees.
    pub messages: [MessageDecision; N],
}

/// The scratch of a decision about one action (not a netlink batch).
pub type SingleScratch = BatchScratch<1>;

impl<const N: usize> BatchScratch<N> {
    const SLOTS_ARE_A_POWER_OF_TWO: () = assert!(N.is_power_of_two());

    pub const fn zeroed() -> Self {
        let () = Self::SLOTS_ARE_A_POWER_OF_TWO;
        Self {
            owner: 0,
            count: 0,
            seen: 0,
            denied: 0,
            generation: 0,
            content: MessageNotes { at: 0, len: 0, seen: 0, by_reference: 0, next_attr: 0, walk: 0 },
            offset: 0,
            finished: 0,
            failed_at: 0,
            _pad: 0,
            probe: TargetKey::zeroed(),
            messages: [MessageDecision {
                key: TargetKey::zeroed(),
                tier: 0,
                verdict: 0,
                rule_index: 0,
                warrant_index: NO_WARRANT,
                content_digest: 0,
            }; N],
        }
    }
}

/// Slots in [`BatchScratch::messages`]: a power of two, so that masking an
/// index keeps it in bounds (a bounds check the compiler may move away from
/// the access is one the verifier cannot follow).
pub const MESSAGE_SLOTS: usize = MAX_MESSAGES + 1;
const _: () = assert!(MESSAGE_SLOTS.is_power_of_two());

impl<const N: usize> BatchScratch<N> {
    /// Slot `i` of `messages`, masked into range (N is a power of two).
    #[inline(always)]
    pub const fn slot_index(i: u32) -> usize {
        i as usize & (N - 1)
    }

    /// The decision in slot `i` (masked into range).
    #[inline(always)]
    pub fn message(&self, i: u32) -> &MessageDecision {
        &self.messages[Self::slot_index(i)]
    }

    /// The decision in slot `i` (masked into range), to change.
    #[inline(always)]
    pub fn message_mut(&mut self, i: u32) -> &mut MessageDecision {
        &mut self.messages[Self::slot_index(i)]
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

/// How many rule lookups a message may need: exact, then (for a new name in
/// a protected directory) the directory, then `*` for the object, then for
/// the table, then for the family.
pub const LOOKUP_LEVELS: usize = 5;

/// Fills `probe` with the key looked up at `level` (0 = exact) in policy
/// `generation`, given that it holds the key of `level - 1` (each level only
/// widens the previous one, so the exact key is copied once per message).
/// False when the level leaves the key as it was (nothing to look up).
pub fn widen_key(exact: &TargetKey, level: usize, probe: &mut TargetKey, generation: u8) -> bool {
    match level {
        0 => {
            probe.copy_from(exact);
            probe.generation = generation;
        }
        // A rule naming a directory inside a tree covers the names made in
        // it, as it did when a new name was decided on its directory: the
        // name is dropped before the whole tree is tried.
        1 => {
            let (ino, dev) = exact.inode();
            let new_name = FileKey { ino, dev };
            if !(action::FILE_CREATE..=action::FILE_LINK).contains(&exact.action) || !new_name.is_name() {
                return false;
            }
            let (dir, _) = new_name.new_name_parts();
            probe.clear_object();
            probe.set_inode(dir.ino, dir.dev);
        }
        2 => probe.clear_object(),
        3 => probe.clear_table(),
        _ => probe.family = FAMILY_ANY,
    }
    true
}

/// The most specific rule covering `exact`.
pub fn match_rule<P: PolicyView>(policy: &P, exact: &TargetKey, probe: &mut TargetKey) -> Option<RuleEntry> {
    let generation = policy.generation();
    for level in 0..LOOKUP_LEVELS {
        if !widen_key(exact, level, probe, generation) {
            continue;
        }
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

/// Most steps ([`batch_step`]) one sendmsg is walked in: a message each,
/// actions or not. A buffer with more messages is denied whole.
pub const MAX_STEPS: u32 = MAX_MESSAGES as u32 + 64;

/// Classifies and decides every message of one sendmsg for a subject of
/// `profile_id` in `profile_mode`. Per-message results are left in `scratch`.
/// The kernel runs the same three parts, with the steps in a `bpf_loop`.
pub fn decide_batch<B: MessageBuffer, C: Classifier, P: PolicyView>(
    buf: &B,
    classifier: &C,
    policy: &P,
    profile_id: u32,
    profile_mode: u32,
    scratch: &mut BatchScratch,
) -> BatchOutcome {
    begin_batch(policy, scratch);
    policy.repeat(MAX_STEPS, |_| batch_step(buf, classifier, policy, profile_id, scratch));
    finish_batch(buf, policy, profile_mode, scratch)
}

/// Starts a batch: nothing seen yet, the policy generation read once.
// Loop-carried state lives in the scratch map and is accessed volatile:
// kept in registers, the verifier would follow every combination of
// "action or not" and "denied or not" across iterations separately.
#[inline(always)]
pub fn begin_batch<P: PolicyView>(policy: &P, scratch: &mut BatchScratch) {
    set(&mut scratch.count, 0);
    set(&mut scratch.seen, 0);
    set(&mut scratch.denied, 0);
    set(&mut scratch.offset, 0);
    set(&mut scratch.finished, 0);
    set(&mut scratch.generation, policy.generation() as u32);
}

/// Classifies and decides the next message of the batch. False when there
/// is none (the walk is `finished`) or no room to keep its decision.
#[inline(always)]
pub fn batch_step<B: MessageBuffer, C: Classifier, P: PolicyView>(
    buf: &B,
    classifier: &C,
    policy: &P,
    profile_id: u32,
    scratch: &mut BatchScratch,
) -> bool {
    let start = get(&scratch.offset);
    let (header, next) = match netlink::read_header(buf, start) {
        Step::End => {
            set(&mut scratch.finished, 1);
            return false;
        }
        Step::Message { header, next } => (header, next),
    };
    let count = get(&scratch.count);
    // A full batch classifies into the spare last slot: a message that is
    // no action still passes, an action ends the walk there.
    let slot = if (count as usize) < MAX_MESSAGES { count } else { MAX_MESSAGES as u32 };
    let message = &mut scratch.messages[BatchScratch::<MESSAGE_SLOTS>::slot_index(slot)];
    message.key.profile_id = profile_id;
    let class = classifier.classify(buf, start, &header, &mut message.key, &mut scratch.content);
    if class != Class::NotAnAction && slot == MAX_MESSAGES as u32 {
        // No room to keep its decision: left for `finish_batch` to find.
        return false;
    }
    set(&mut scratch.offset, next);
    let seen = get(&scratch.seen);
    set(&mut scratch.seen, seen + 1);
    // Attribute 4 is content only in a rule; elsewhere it digests to
    // nothing (a chain's hook, a set's key type are not bound by warrants).
    let content = unsafe { core::ptr::read_volatile(&scratch.content) };
    let at = if action::has_content(message.key.action) { content.at } else { 0 };
    message.content_digest = buf.content_digest(at, content.len);
    match class {
        Class::NotAnAction => return true,
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
    true
}

/// Ends a batch: a buffer walked only in part is denied, with a record
/// that says so; then warrant uses are taken and verdicts settled.
#[inline(always)]
pub fn finish_batch<B: MessageBuffer, P: PolicyView>(
    buf: &B,
    policy: &P,
    profile_mode: u32,
    scratch: &mut BatchScratch,
) -> BatchOutcome {
    if get(&scratch.finished) == 0 && netlink::read_header(buf, get(&scratch.offset)) != Step::End {
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
        let message = scratch.message_mut(slot as u32);
        message.key.action = 0;
        message.tier = tier::UNMATCHED;
        message.verdict = verdict::UNPARSEABLE;
        message.warrant_index = NO_WARRANT;
    }
    let mut denied = get(&scratch.denied) != 0;
    if get(&scratch.count) == 0 && !denied {
        return BatchOutcome::NoAction;
    }

    let audit = profile_mode == mode::AUDIT;
    if !denied || audit {
        denied |= consume_warrants(policy, scratch, audit);
    }
    finish(policy, scratch, denied, audit)
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
pub fn decide_single<P: PolicyView, const N: usize>(
    policy: &P,
    profile_mode: u32,
    scratch: &mut BatchScratch<N>,
) -> BatchOutcome {
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
    finish(policy, scratch, denied, audit)
}

/// Takes one warrant use per message allowed by a warrant. In enforce mode a
/// failure (a racing subject took the last use, or two messages share a
/// one-use warrant) gives back the uses taken so far and reports a denial.
fn consume_warrants<P: PolicyView, const N: usize>(policy: &P, scratch: &mut BatchScratch<N>, audit: bool) -> bool {
    let count = get(&scratch.count);
    set(&mut scratch.failed_at, NO_FAILURE);
    policy.repeat(count, |i| {
        let message = scratch.message_mut(i);
        if message.verdict != verdict::ALLOWED_BY_WARRANT {
            return true;
        }
        if policy.consume_warrant(&message.key, message.content_digest) {
            return true;
        }
        message.verdict = verdict::DENIED_NEEDS_WARRANT;
        if audit {
            return true;
        }
        set(&mut scratch.failed_at, i);
        false
    });
    let failed_at = get(&scratch.failed_at);
    if failed_at == NO_FAILURE {
        return false;
    }
    policy.repeat(failed_at, |i| {
        let message = scratch.message(i);
        if message.verdict == verdict::ALLOWED_BY_WARRANT {
            policy.refund_warrant(&message.key);
        }
        true
    });
    true
}

/// `BatchScratch::failed_at` when no warrant use failed.
const NO_FAILURE: u32 = u32::MAX;

/// Settles every message's final verdict for the batch outcome.
fn finish<P: PolicyView, const N: usize>(
    policy: &P,
    scratch: &mut BatchScratch<N>,
    denied: bool,
    audit: bool,
) -> BatchOutcome {
    if !denied {
        return BatchOutcome::Allow;
    }
    policy.repeat(get(&scratch.count), |i| {
        let message = scratch.message_mut(i);
        let allowed = is_allowed(message.verdict);
        if audit {
            if !allowed {
                message.verdict = verdict::WOULD_DENY;
            }
        } else if allowed {
            // Nothing of the batch is applied, and its warrant uses were given back.
            message.verdict = verdict::BATCH_DENIED;
        }
        true
    });
    if audit { BatchOutcome::Allow } else { BatchOutcome::Deny }
}
