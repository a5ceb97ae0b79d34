//! Who may hold a netlink batch scratch: the kernel shares a few of them
//! between every subject's sendmsgs, and one profile may hold at most half
//! at once, so that its threads sending together cannot take every scratch
//! from the other profiles. The slots are behind [`Owners`]: the BPF map in
//! the kernel, a fake one in tests.

/// The slots' owner words (0: free), as atomics.
pub trait Owners {
    /// How many slots there are.
    const SLOTS: u32;
    /// Sets slot `index`'s owner to `new` if it is `current`; whether it did.
    fn compare_exchange(&self, index: u32, current: u64, new: u64) -> bool;
    /// Slot `index`'s owner (0 if there is no such slot).
    fn load(&self, index: u32) -> u64;
    /// Runs `step(0)`, `step(1)`, ... up to `times` steps, until one
    /// returns false (the kernel's in a `bpf_loop`: two loops over the
    /// slots, unrolled or bounded, multiplied `netlink_send`'s verifier
    /// states past its budget).
    fn repeat<F: FnMut(u32) -> bool>(&self, times: u32, mut step: F) {
        for i in 0..times {
            if !step(i) {
                break;
            }
        }
    }
}

/// An owner word: the holder's profile id in the high word, its thread id
/// (never 0) in the low one, written in one atomic exchange.
pub const fn owner(profile_id: u32, thread: u32) -> u64 {
    ((profile_id as u64) << 32) | thread as u64
}

/// Claims a free slot for `thread` (not 0) of a subject of `profile_id`:
/// its index, or None if every slot is taken or the profile holds half of
/// them already. A profile at its share touches no slot: it is refused on
/// a count first. Of two threads of one profile claiming at once near the
/// share, the later exchange sees the earlier's slot when it counts again
/// (both may give theirs back: refused, never more than the share); only
/// in that moment does a slot over the share stay taken.
#[inline(always)]
pub fn claim<O: Owners>(slots: &O, profile_id: u32, thread: u32) -> Option<u32> {
    if held_by(slots, profile_id) >= O::SLOTS / 2 {
        return None;
    }
    let mine = owner(profile_id, thread);
    let mut claimed = None;
    slots.repeat(O::SLOTS, |i| {
        // Threads start at different slots: fewer exchanges lost to each other.
        let index = thread.wrapping_add(i) % O::SLOTS;
        if slots.compare_exchange(index, 0, mine) {
            claimed = Some(index);
            return false;
        }
        true
    });
    let index = claimed?;
    if held_by(slots, profile_id) > O::SLOTS / 2 {
        slots.compare_exchange(index, mine, 0);
        return None;
    }
    Some(index)
}

/// How many slots the subjects of `profile_id` hold.
#[inline(always)]
fn held_by<O: Owners>(slots: &O, profile_id: u32) -> u32 {
    let mut held = 0u32;
    slots.repeat(O::SLOTS, |index| {
        let holder = slots.load(index);
        held += u32::from(holder != 0 && (holder >> 32) as u32 == profile_id);
        true
    });
    held
}

#[cfg(test)]
mod tests {
    use core::cell::Cell;

    use super::*;

    /// Sixteen owner words, and how many exchanges succeeded on them.
    #[derive(Default)]
    struct Fake {
        owners: [Cell<u64>; 16],
        exchanged: Cell<u32>,
    }

    impl Owners for Fake {
        const SLOTS: u32 = 16;
        fn compare_exchange(&self, index: u32, current: u64, new: u64) -> bool {
            let slot = &self.owners[index as usize];
            let matched = slot.get() == current;
            if matched {
                slot.set(new);
                self.exchanged.set(self.exchanged.get() + 1);
            }
            matched
        }
        fn load(&self, index: u32) -> u64 {
            self.owners[index as usize].get()
        }
    }

    #[test]
    fn a_profile_holds_at_most_half_and_the_others_keep_the_rest() {
        let slots = Fake::default();
        // Profile 7's threads take their eight.
        let mut held = [0; 8];
        for thread in 1..=8 {
            held[thread as usize - 1] = claim(&slots, 7, thread).expect("within the share");
        }
        // A ninth is refused on the count: no slot taken, even for a moment.
        let exchanged = slots.exchanged.get();
        assert_eq!(claim(&slots, 7, 9), None);
        assert_eq!(slots.exchanged.get(), exchanged);
        // Other profiles take the other eight, then nothing is left.
        for thread in 10..18 {
            assert!(claim(&slots, thread % 3, thread).is_some(), "thread {thread}");
        }
        assert_eq!(claim(&slots, 1, 99), None);
        // A slot given back is profile 7's to take again.
        assert!(slots.compare_exchange(held[0], owner(7, 1), 0));
        assert_eq!(claim(&slots, 7, 1), Some(held[0]));
    }

    #[test]
    fn a_claim_that_finds_the_share_taken_meanwhile_gives_its_slot_back() {
        let slots = Fake::default();
        for thread in 1..=7 {
            claim(&slots, 7, thread).expect("within the share");
        }
        // Another thread of profile 7 took the eighth between this claim's
        // count and its exchange (as another CPU may): the recount sees nine.
        struct Racing<'a>(&'a Fake, Cell<bool>);
        impl Owners for Racing<'_> {
            const SLOTS: u32 = 16;
            fn compare_exchange(&self, index: u32, current: u64, new: u64) -> bool {
                if !self.1.replace(true) {
                    let free = (0..16).find(|&i| self.0.load(i) == 0).expect("a free slot");
                    assert!(self.0.compare_exchange(free, 0, owner(7, 100)));
                }
                self.0.compare_exchange(index, current, new)
            }
            fn load(&self, index: u32) -> u64 {
                self.0.load(index)
            }
        }
        assert_eq!(claim(&Racing(&slots, Cell::new(false)), 7, 8), None);
        let profile_7 = (0..16).filter(|&i| slots.load(i) >> 32 == 7).count();
        assert_eq!(profile_7, 8, "the share, and no more");
    }
}
