//! Which kernel-tier tests run on which boot. Every test that exercises a
//! hook, a kernel structure read through BTF, or kernel behaviour (what a
//! syscall reaches, how nf_tables applies a batch) runs on every boot: 6.1,
//! 6.12, the development kernel, and 6.12 without bpf in `lsm=` (fmod_ret).
//! So do the tests of restarts, pins, links and uninstall, whose behaviour
//! has differed between kernels. The tests below exercise the daemon's own
//! bookkeeping, whose kernel side (loading, maps) every boot already goes
//! through when its daemon starts: they run on the reference boot (6.12
//! with bpf-lsm) only, which saves ~4 min of CI per other boot.

use crate::kernels::Series;
use crate::test::Boot;

/// Daemon bookkeeping: policy and trust-root handling, warrant ledgers and
/// revocation, change requests, the event reader.
pub const REFERENCE_BOOT_ONLY: &[&str] = &[
    "requests::a_dead_event_reader_is_audited_and_ends_the_daemon",
    "lifecycle::sigkill_during_a_burst_of_warranted_changes_loses_nothing",
    "requests::a_flood_of_distinct_requests_is_bounded_counted_and_notified_in_batches",
    "requests::a_warrant_binds_the_request_its_approver_saw",
    "requests::every_refused_bundle_is_on_the_record_whichever_way_it_came",
    "bundles::a_policy_that_drops_an_ri_takes_their_warrants_and_older_bundles_are_refused",
    "bundles::an_expired_policy_stays_enforced_and_the_host_says_so",
    "bundles::the_bundle_signing_keys_rotate_by_a_root_the_old_keys_signed",
    "bundles::watched_directories_apply_bundles_and_install_warrants",
    "bundles::a_two_person_warrant_needs_both_signatures_before_the_kernel_sees_it",
    "bundles::warrant_signed_by_a_non_ri_key_is_refused_at_install",
];

/// The tests `boot` leaves out (full names: libtest's --skip matches substrings).
pub fn left_out(boot: Boot) -> &'static [&'static str] {
    let reference = boot.series == Series::V6_12 && !boot.without_bpf_lsm;
    if reference { &[] } else { REFERENCE_BOOT_ONLY }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A renamed or removed test must not silently drop out of this list.
    #[test]
    fn every_listed_test_exists() {
        let dir = crate::paths::repo_root().join("tests/kernel");
        let sources: String = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default())
            .collect();
        for name in REFERENCE_BOOT_ONLY {
            let function = name.rsplit("::").next().unwrap();
            assert!(sources.contains(&format!("fn {function}()")), "{name} is not a kernel-tier test");
        }
    }

    #[test]
    fn the_reference_boot_runs_everything() {
        assert!(left_out(Boot { series: Series::V6_12, without_bpf_lsm: false }).is_empty());
        assert_eq!(left_out(Boot { series: Series::V6_12, without_bpf_lsm: true }).len(), REFERENCE_BOOT_ONLY.len());
        assert_eq!(left_out(Boot { series: Series::V6_1, without_bpf_lsm: false }).len(), REFERENCE_BOOT_ONLY.len());
    }
}
