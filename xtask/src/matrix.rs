//! Which kernel-tier tests run on which boot. Every test that exercises a
//! hook, a kernel structure read through BTF, or kernel behaviour (what a
//! syscall reaches, how nf_tables applies a batch, how rtnetlink resolves a
//! name) runs on every boot with bpf in `lsm=`: 6.1, 6.12 and the
//! development kernel. So do the tests of restarts, pins, links and
//! uninstall, whose behaviour has differed between kernels (but two whose
//! restarts are there for the daemon's ledgers: bookkeeping, below).
//!
//! Two kinds of test run on the reference boot (6.12 with bpf-lsm) only:
//! - the daemon's own bookkeeping, whose kernel side (loading, maps) every
//!   boot already goes through when its daemon starts;
//! - tests that differ from another one every boot runs only in what a
//!   program decides on the same hook, from another rule, policy or warrant
//!   state. The decision is the same program's logic on every kernel; what
//!   a kernel changes (the hook, its arguments, the structures read) the
//!   other test checks there.
//!
//! The boot without bpf in `lsm=` (fmod_ret) runs the same programs,
//! attached another way: what changes is whether each hook attaches and
//! refuses, and how links are pinned, replaced and removed. On the same
//! kernel as the reference, it also leaves out the decisions that rest on
//! kernel behaviour, which the reference boot runs with the same kernel.

use crate::kernels::Series;
use crate::test::Boot;

/// Daemon bookkeeping: policy and trust-root handling, warrant ledgers and
/// revocation, change requests, the event reader; and a check made in
/// user space (the daemon's program lookup).
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
    "lifecycle::warrant_uses_left_survive_a_reboot",
    // The daemon's own program lookup, before anything is a subject.
    "marks::the_daemon_runs_no_program_planted_on_its_path",
];

/// Decisions through programs that other tests on every boot make refuse:
/// `netlink_send` (nft), the exec exemption's daemon check (whose task
/// reads `confinement`'s signal tests make); the rollbacks are the daemon's
/// own root writes, through the nft and file paths other tests run.
pub const DECISIONS_ON_COVERED_HOOKS: &[&str] = &[
    "each_decision_during_policy_reloads_follows_one_whole_policy",
    "expired_warrant_is_denied",
    "past_its_rate_a_pre_authorised_action_needs_a_warrant",
    "a_content_bound_warrant_covers_only_its_rule",
    "warrant_for_one_table_does_not_cover_another",
    "rollback::a_warranted_file_change_rolls_back_and_a_later_change_needs_force",
    "rollback::a_warranted_nft_change_rolls_back_by_an_atomic_ruleset_replace",
    "bundles::a_bundle_that_cannot_be_persisted_is_in_force_nowhere",
    "marks::a_stopped_daemons_pid_exempts_no_one",
];

/// Decisions on covered hooks that rest on how the kernel treats a message
/// (whether an add updates, which names an interface answers to) or on
/// what only they check a hook wrote (the namespace mark `sb_mount` puts
/// on a name a subject pinned): the fmod_ret boot has the reference boot's
/// kernel, the other bpf-lsm boots do not.
pub const KERNEL_BEHAVIOUR_ON_COVERED_HOOKS: &[&str] = &[
    "network::wireguard_is_decided_per_command",
    "network::the_agent_manages_its_own_interface_and_no_other_however_it_names_them",
    "network::an_add_that_would_update_an_existing_object_is_decided_as_the_update",
    "marks::a_namespace_name_a_subject_pinned_does_not_resolve_in_a_later_policy",
];

/// Hooks that 6.1 has but nothing there reaches in the VM: no driver of
/// Debian's 6.1 takes a ring's URING_CMD (it has no ublk_drv, no NVMe disk
/// is attached, and sockets take them from 6.7).
pub const NOT_REACHABLE_ON_6_1: &[&str] = &["files::a_rings_command_to_a_driver_is_refused"];

/// The tests `boot` leaves out (full names: libtest's --skip matches substrings).
pub fn left_out(boot: Boot) -> Vec<&'static str> {
    let reference = boot.series == Series::V6_12 && !boot.without_bpf_lsm;
    if reference {
        return Vec::new();
    }
    let mut out = [REFERENCE_BOOT_ONLY, DECISIONS_ON_COVERED_HOOKS].concat();
    if boot.series == Series::V6_1 {
        out.extend_from_slice(NOT_REACHABLE_ON_6_1);
    }
    if boot.without_bpf_lsm {
        out.extend_from_slice(KERNEL_BEHAVIOUR_ON_COVERED_HOOKS);
    }
    out
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
        let lists =
            [REFERENCE_BOOT_ONLY, DECISIONS_ON_COVERED_HOOKS, KERNEL_BEHAVIOUR_ON_COVERED_HOOKS, NOT_REACHABLE_ON_6_1];
        for name in lists.concat() {
            let function = name.rsplit("::").next().unwrap();
            assert!(sources.contains(&format!("fn {function}()")), "{name} is not a kernel-tier test");
        }
    }

    #[test]
    fn the_reference_boot_runs_everything() {
        assert!(left_out(Boot { series: Series::V6_12, without_bpf_lsm: false }).is_empty());
        let reference_only = REFERENCE_BOOT_ONLY.len() + DECISIONS_ON_COVERED_HOOKS.len();
        assert_eq!(
            left_out(Boot { series: Series::V6_12, without_bpf_lsm: true }).len(),
            reference_only + KERNEL_BEHAVIOUR_ON_COVERED_HOOKS.len()
        );
        assert_eq!(
            left_out(Boot { series: Series::V6_1, without_bpf_lsm: false }).len(),
            reference_only + NOT_REACHABLE_ON_6_1.len()
        );
        assert_eq!(left_out(Boot { series: Series::Dev, without_bpf_lsm: false }).len(), reference_only);
    }
}
