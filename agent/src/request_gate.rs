//! Bounds on change requests. Every distinct approve-tier attempt would be a
//! request and a notification; an agent that tries 100 variants would page
//! its approvers 100 times, until one approval is careless. So: repeated
//! attempts update their request (see [`crate::requests`]); new requests are
//! limited per profile, per minute and in how many wait unanswered at once
//! (so one agent cannot crowd out another); notifications go out in
//! batches; what is dropped is counted, audited and shown.

use std::collections::{BTreeMap, HashMap};

use thiserror::Error;

use crate::requests::ChangeRequest;

/// New requests a profile may open per minute unless the config or the
/// profile says otherwise: a handful, enough for an agent's honest retries
/// of different changes, too few to flood a person.
pub const DEFAULT_PER_MINUTE: u32 = 6;

/// Unanswered requests a profile may have at once.
pub const DEFAULT_MAX_OPEN: usize = 100;

/// Why an attempt made no change request (its decision is still audited).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Dropped {
    #[error("profile {profile} opened {per_minute} new change requests this minute (its limit)")]
    Rate { profile: String, per_minute: u32 },
    #[error(
        "profile {profile} has {max_open} change requests waiting for an answer (its limit); approve or decline some"
    )]
    Full { profile: String, max_open: usize },
}

#[derive(Debug)]
pub struct RequestGate {
    per_minute: u32,
    max_open: usize,
    /// Unanswered requests (no warrant installed for them, not declined), by profile.
    open: HashMap<String, usize>,
    /// Per profile: the start of its current one-minute window (unix
    /// seconds) and the requests opened in it.
    windows: HashMap<String, (u64, u32)>,
    dropped_total: BTreeMap<String, u64>,
    dropped_unreported: BTreeMap<String, u64>,
    to_notify: Vec<ChangeRequest>,
}

impl RequestGate {
    /// `open`: the unanswered requests already on disk, by profile.
    pub fn new(per_minute: u32, max_open: usize, open: HashMap<String, usize>) -> Self {
        Self {
            per_minute,
            max_open,
            open,
            windows: HashMap::new(),
            dropped_total: BTreeMap::new(),
            dropped_unreported: BTreeMap::new(),
            to_notify: Vec::new(),
        }
    }

    /// May `profile` open a new request at `now`? `per_minute` is the
    /// profile's own limit, if its policy sets one. Counts the request when
    /// it may, the drop when it may not.
    pub fn admit_new(&mut self, profile: &str, per_minute: Option<u32>, now: u64) -> Result<(), Dropped> {
        let per_minute = per_minute.unwrap_or(self.per_minute);
        let window = self.windows.entry(profile.to_owned()).or_insert((now, 0));
        if now.saturating_sub(window.0) >= 60 {
            *window = (now, 0);
        }
        let open = self.open.entry(profile.to_owned()).or_default();
        let verdict = if *open >= self.max_open {
            Err(Dropped::Full { profile: profile.to_owned(), max_open: self.max_open })
        } else if window.1 >= per_minute {
            Err(Dropped::Rate { profile: profile.to_owned(), per_minute })
        } else {
            window.1 += 1;
            *open += 1;
            Ok(())
        };
        if verdict.is_err() {
            *self.dropped_total.entry(profile.to_owned()).or_default() += 1;
            *self.dropped_unreported.entry(profile.to_owned()).or_default() += 1;
        }
        verdict
    }

    /// A new request, to be in the next notification batch.
    pub fn queue_notify(&mut self, request: ChangeRequest) {
        self.to_notify.push(request);
    }

    /// The requests to notify about since the last call.
    pub fn take_notify_batch(&mut self) -> Vec<ChangeRequest> {
        std::mem::take(&mut self.to_notify)
    }

    /// Drops per profile since the last call (for one audit record each).
    pub fn take_unreported_drops(&mut self) -> BTreeMap<String, u64> {
        std::mem::take(&mut self.dropped_unreported)
    }

    /// Drops per profile since the daemon started.
    pub fn dropped(&self) -> &BTreeMap<String, u64> {
        &self.dropped_total
    }

    /// A request of `profile` was answered (a warrant installed for it, or
    /// declined): it no longer counts against the profile.
    pub fn close(&mut self, profile: &str) {
        if let Some(open) = self.open.get_mut(profile) {
            *open = open.saturating_sub(1);
        }
    }

    /// Unanswered requests, all profiles.
    pub fn open(&self) -> usize {
        self.open.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_requests_are_limited_per_profile_per_minute() {
        let mut gate = RequestGate::new(2, 100, HashMap::new());
        assert_eq!(gate.admit_new("a", None, 1000), Ok(()));
        assert_eq!(gate.admit_new("a", None, 1010), Ok(()));
        assert_eq!(gate.admit_new("a", None, 1020), Err(Dropped::Rate { profile: "a".into(), per_minute: 2 }));
        // Another profile has its own budget; a profile's own limit wins.
        assert_eq!(gate.admit_new("b", Some(1), 1020), Ok(()));
        assert!(gate.admit_new("b", Some(1), 1021).is_err());
        // A new minute, a new budget.
        assert_eq!(gate.admit_new("a", None, 1060), Ok(()));
        assert_eq!(gate.dropped().get("a"), Some(&1));
        assert_eq!(gate.take_unreported_drops().values().sum::<u64>(), 2);
        assert!(gate.take_unreported_drops().is_empty());
        assert_eq!(gate.dropped().values().sum::<u64>(), 2);
    }

    #[test]
    fn no_new_request_past_a_profiles_open_limit_until_one_is_answered() {
        let mut gate = RequestGate::new(10, 3, HashMap::from([("a".to_owned(), 2)]));
        assert_eq!(gate.admit_new("a", None, 0), Ok(()));
        assert_eq!(gate.admit_new("a", None, 0), Err(Dropped::Full { profile: "a".into(), max_open: 3 }));
        // Another profile is not crowded out.
        assert_eq!(gate.admit_new("b", None, 0), Ok(()));
        assert_eq!(gate.open(), 4);
        gate.close("a");
        assert_eq!(gate.admit_new("a", None, 0), Ok(()));
    }
}
