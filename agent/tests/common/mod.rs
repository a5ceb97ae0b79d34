//! What several plain-tier test files share.

use warrant::{approval::Approval, keys::PublicKey};

/// A one-use warrant by `approver` (holding `key`) for an input rule of the
/// demo policy's `agent` on host-a, valid until 2033.
pub fn approval(approver: &str, key: &PublicKey) -> Approval {
    Approval {
        id: "w-test".into(),
        request: None,
        requester: Some("/usr/sbin/nft (pid 1)".into()),
        approver: approver.into(),
        approver_key: key.id(),
        hosts: vec!["host-a".into()],
        profile: "agent".into(),
        action: "nft.rule.add".into(),
        target: "inet filter input".into(),
        not_before: 0,
        expires_at: 2_000_000_000,
        max_uses: 1,
        reason: "test".into(),
        ticket: None,
        rollback_owner: approver.into(),
        content_digest: None,
        request_digest: None,
    }
}
