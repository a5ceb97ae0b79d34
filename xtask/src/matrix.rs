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
//! kernel behaviour, which the reference boot runs with the same kernel,
//! and further decisions and bookkeeping that another test of a hook
//! family already makes refuse there (`NOT_ON_FMOD_RET`): the CI's whole
//! run must stay under an hour.

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
    // The start's own bookkeeping of a full map (E2BIG is every kernel's).
    "protected_full::a_start_over_a_full_protected_map_goes_on",
    // The request queue and `warrant why`: the refusal is main's nft one.
    "requests::an_agent_learns_why_it_was_refused_and_waits_for_its_approval",
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
    // socket_connect's address check, on an address the daemon added to
    // the map: the loopback deputy test makes the same hook refuse.
    "deputies::a_root_deputy_on_the_hosts_other_addresses_is_out_of_reach",
    // Which rule and warrant decide a name: the same inode hooks the
    // other names tests make refuse on every boot.
    "names::an_ri_approves_a_service_install_by_its_unit_s_name",
    "names::a_rule_on_a_directory_inside_a_tree_decides_the_names_made_in_it",
    "confinement::a_guarded_path_inside_a_policy_tree_keeps_its_own_rules",
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

/// Left out on the fmod_ret boot only, where what changes is how each
/// program attaches: every hook family still has a test there that makes
/// it refuse (and the restarts, pins and uninstall run), but these add
/// only another address, rule or bookkeeping path through a program that
/// the same boot's kernel already ran on the reference boot.
pub const NOT_ON_FMOD_RET: &[&str] = &[
    // socket_sendmsg refuses in the crafted-packet test, socket_connect in
    // the loopback-port one; these are other routes and sockets through
    // the same programs (a datagram routed out through lo, a unix stream
    // send on a connection made before pickup).
    "deputies::a_datagram_routed_out_through_lo_reaches_the_host_whatever_its_address",
    "held::a_connection_made_before_pickup_is_decided_at_its_first_send",
    // file_ioctl refuses in the terminal test; the disk's sysfs writes and
    // mappings are file_open's, file_permission's and mmap_file's, which
    // the protected-files test makes refuse.
    "devices::subjects_cannot_stop_a_disk_or_its_file_system",
    // The daemon's pickup of a reused tgid after a restart (the restart
    // itself runs in lifecycle's sigkill test), and `warrant run`'s own fd
    // check (bprm_check_security refuses in the ring-carrying exec test).
    "held::a_process_that_reuses_a_picked_up_tgid_is_not_picked_up",
    "held::warrant_run_hands_no_ring_to_its_subject",
    // Maps carried over an interrupted replacement (each start attaches
    // and pins every link again, as the sigkill and other-layout restarts
    // do here) and the audit writer's gaps.
    "lifecycle::an_unfinished_map_replacement_is_finished_by_the_next_start",
    "lifecycle::a_full_event_ring_is_recorded_as_a_gap_never_silently",
    "lifecycle::a_full_disk_is_recorded_as_a_gap_and_tears_no_record",
    // netlink_send's batch bound and handle addressing; the daemon's
    // ledgers.
    "batches_up_to_the_bound_apply_and_longer_ones_are_denied_whole",
    "network::an_object_addressed_by_handle_is_decided_on_the_handle_not_the_name",
    "audit_log_verifies_after_the_run",
    "revocation_takes_effect_at_once",
    // Name decisions on the inode hooks the protected-files and other
    // names tests refuse on, and the fexit programs that drop a replaced
    // file's entry (tracing programs, attached alike in both modes).
    "names::a_file_a_subject_moves_into_a_tree_with_a_warrant_joins_it",
    "names::a_directory_the_dentry_cache_let_go_keeps_its_guarded_names",
    "names::root_rewriting_a_protected_file_by_rename_leaves_no_entries_behind",
    // Cgroup matching (tracepoints), and a moved child's own cgroup.procs
    // write: an allowed path of the file hooks and bprm_check_security,
    // which refuse in the protected-files and ring-carrying exec tests.
    "subjects::a_child_moved_by_its_parent_may_write_itself_into_its_cgroup_until_it_execs",
    "subjects::a_cgroup_v1_hierarchy_is_not_matched_by_a_v2_path",
    // Request and key bookkeeping; the package mark is the written-file
    // mark's, which runs.
    "requests::an_ri_approves_with_an_ssh_key_and_the_kernel_honours_it",
    "marks::a_package_a_subject_installs_runs_as_the_subject_whoever_starts_it",
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
        out.extend_from_slice(NOT_ON_FMOD_RET);
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
        let lists = [
            REFERENCE_BOOT_ONLY,
            DECISIONS_ON_COVERED_HOOKS,
            KERNEL_BEHAVIOUR_ON_COVERED_HOOKS,
            NOT_ON_FMOD_RET,
            NOT_REACHABLE_ON_6_1,
        ];
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
            reference_only + KERNEL_BEHAVIOUR_ON_COVERED_HOOKS.len() + NOT_ON_FMOD_RET.len()
        );
        assert_eq!(
            left_out(Boot { series: Series::V6_1, without_bpf_lsm: false }).len(),
            reference_only + NOT_REACHABLE_ON_6_1.len()
        );
        assert_eq!(left_out(Boot { series: Series::Dev, without_bpf_lsm: false }).len(), reference_only);
    }
}
