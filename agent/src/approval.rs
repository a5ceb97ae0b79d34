//! Warrants: an RI's signed approval for one profile, action and target, on
//! named hosts, for a time window and a counted number of uses.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use warrant_common::{TargetKey, action};

use crate::{
    keys::PublicKey,
    policy::{CompiledPolicy, HostNames as _, Target, ThisHost},
    trust::{Envelope, TrustError, WARRANT_PAYLOAD_TYPE},
};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub id: String,
    /// The change request this answers, if any.
    #[serde(default)]
    pub request: Option<String>,
    /// Who asked (from the change request), never the approver.
    #[serde(default)]
    pub requester: Option<String>,
    pub approver: String,
    /// Key id of the approver's key.
    pub approver_key: String,
    pub hosts: Vec<String>,
    pub profile: String,
    pub action: String,
    pub target: String,
    /// Unix seconds.
    pub not_before: u64,
    /// Unix seconds.
    pub expires_at: u64,
    pub max_uses: u32,
    pub reason: String,
    #[serde(default)]
    pub ticket: Option<String>,
    pub rollback_owner: String,
    /// For an nft rule action: the digest of the one rule content approved
    /// (16 hex digits, from the change request). Absent: any content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_digest: Option<String>,
    /// The digest of the change request as `warrant approve` showed it
    /// ([`crate::requests::ChangeRequest::digest`]). A host holding that
    /// request refuses the warrant if its request differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_digest: Option<String>,
}

/// How far ahead of this host's clock a warrant's `not_before` may be: a
/// signer's clock a little fast is tolerated, a warrant made for later (or
/// a badly skewed clock) is refused rather than left waiting.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

#[derive(Debug, Error)]
pub enum ApprovalError {
    #[error("{0}")]
    Envelope(#[from] TrustError),
    #[error("warrant payload is not a valid approval: {0}")]
    Payload(String),
    #[error("warrant {id} is not signed by a Responsible Individual of policy v{version}")]
    NotResponsible { id: String, version: u64 },
    #[error("warrant {id}: {signer} may not approve {action} under policy v{version}")]
    OutOfScope { id: String, signer: String, action: String, version: u64 },
    #[error("warrant {id} names approver {named:?} but is signed by {signer:?}")]
    ApproverMismatch { id: String, named: String, signer: String },
    #[error("warrant {id} is for hosts {hosts:?}, not this host ({host})")]
    WrongHost { id: String, hosts: Vec<String>, host: String },
    #[error("warrant {id} is for profile {profile:?}, which policy v{version} does not define")]
    UnknownProfile { id: String, profile: String, version: u64 },
    #[error("warrant {id}: {0}", id = .1)]
    BadTarget(String, String),
    #[error("warrant {id} expired at {expires_at} (now {now})")]
    Expired { id: String, expires_at: u64, now: u64 },
    #[error(
        "warrant {id} is not valid until {not_before}, {ahead} s after this host's clock (more than the {MAX_CLOCK_SKEW_SECS} s allowed): check both clocks"
    )]
    ClockSkew { id: String, not_before: u64, ahead: u64 },
    #[error("warrant {id} has max_uses 0")]
    NoUses { id: String },
    #[error("warrant {id} was approved by its own requester")]
    SelfApproved { id: String },
    #[error(
        "warrant {id}: {action} needs two Responsible Individuals who may approve it; it has {found} (add one with `warrant cosign`)"
    )]
    NeedsTwo { id: String, action: String, found: usize },
    #[error(
        "warrant {id}: {name}'s hardware key signed without verifying its user, and policy asks for user verification (sign with a PIN: ssh-keygen -O verify-required keys)"
    )]
    NotUserVerified { id: String, name: String },
}

impl Approval {
    pub fn seal(&self, key: &ed25519_dalek::SigningKey) -> Envelope {
        Envelope::sign(WARRANT_PAYLOAD_TYPE, &self.payload(), std::slice::from_ref(key))
    }

    /// The approval in an envelope for a [`crate::keys::Signer`] to sign.
    pub fn unsigned(&self) -> Envelope {
        Envelope::unsigned(WARRANT_PAYLOAD_TYPE, &self.payload())
    }

    fn payload(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("an approval always serialises")
    }
}

/// A warrant that passed every check, with its kernel map key.
#[derive(Clone, Debug)]
pub struct CheckedWarrant {
    pub approval: Approval,
    pub key: TargetKey,
    /// Every Responsible Individual whose signature counts for this warrant.
    pub approvers: Vec<String>,
    /// The content digest the kernel must see, 0 for any content.
    pub content_digest: u64,
}

/// Verifies an envelope against the policy in force for `host` at `now`.
pub fn check(
    envelope: &Envelope,
    policy: &CompiledPolicy,
    host: &str,
    now: u64,
) -> Result<CheckedWarrant, ApprovalError> {
    let ri_keys: Vec<_> = policy.responsibles.iter().map(|(_, k)| k.clone()).collect();
    let version = policy.version();
    let (payload, attested) = match envelope.verify_signers(WARRANT_PAYLOAD_TYPE, &ri_keys, 1) {
        Ok(verified) => verified,
        Err(TrustError::NotEnoughSignatures { .. }) => {
            let id = unverified_id(envelope).unwrap_or_else(|| "?".into());
            return Err(ApprovalError::NotResponsible { id, version });
        }
        Err(e) => return Err(e.into()),
    };
    let approval: Approval = serde_json::from_slice(&payload).map_err(|e| ApprovalError::Payload(e.to_string()))?;
    let id = approval.id.clone();
    // A person whose policy entry asks for user verification counts only
    // with a signature their token verified them for.
    let (signers, unverified): (Vec<_>, Vec<_>) = attested.into_iter().partition(|(key, attested)| {
        attested.user_verified || policy.responsible_by_key(key).is_none_or(|ri| !ri.user_verification)
    });
    let signers: Vec<PublicKey> = signers.into_iter().map(|(key, _)| key).collect();
    let Some(signer) = signers.first().cloned() else {
        let name = unverified.first().and_then(|(key, _)| policy.responsible_by_key(key)).map(|ri| ri.name.clone());
        return Err(ApprovalError::NotUserVerified { id, name: name.unwrap_or_default() });
    };
    let signer_ri =
        policy.responsible_by_key(&signer).ok_or_else(|| ApprovalError::NotResponsible { id: id.clone(), version })?;
    if policy.approver_for(&signer, &approval.action).is_none() {
        return Err(ApprovalError::OutOfScope {
            id,
            signer: signer_ri.name.clone(),
            action: approval.action.clone(),
            version,
        });
    }
    if signer_ri.name != approval.approver || signer.id() != approval.approver_key {
        return Err(ApprovalError::ApproverMismatch {
            id,
            named: approval.approver.clone(),
            signer: signer_ri.name.clone(),
        });
    }
    if approval.requester.as_deref() == Some(approval.approver.as_str()) {
        return Err(ApprovalError::SelfApproved { id });
    }
    // Distinct people in scope for the action, never the requester.
    let mut approvers: Vec<String> = Vec::new();
    for signer in &signers {
        if let Some(ri) = policy.approver_for(signer, &approval.action)
            && approval.requester.as_deref() != Some(ri.name.as_str())
            && !approvers.contains(&ri.name)
        {
            approvers.push(ri.name.clone());
        }
    }
    if policy.needs_two_people(&approval.action) && approvers.len() < 2 {
        return Err(ApprovalError::NeedsTwo { id, action: approval.action.clone(), found: approvers.len() });
    }
    if !approval.hosts.iter().any(|h| h == host || h == "*") {
        return Err(ApprovalError::WrongHost { id, hosts: approval.hosts.clone(), host: host.into() });
    }
    let profile_id = *policy.profile_ids.get(&approval.profile).ok_or_else(|| ApprovalError::UnknownProfile {
        id: id.clone(),
        profile: approval.profile.clone(),
        version,
    })?;
    let action_id = action::by_name(&approval.action)
        .ok_or_else(|| ApprovalError::BadTarget(format!("unknown action {:?}", approval.action), id.clone()))?;
    let kind = action::target_kind(action_id);
    let text = approval.target.trim();
    // A file that is not there yet: the one new name the warrant lets the
    // agent make (create, link or move into place).
    let new_file = kind == action::TargetKind::File && text != "*" && std::fs::symlink_metadata(text).is_err();
    let target = if new_file {
        Target::new_file_name(text, &policy.policy.protect, &ThisHost)
    } else {
        Target::parse(kind, &approval.target, &policy.policy.protect, &ThisHost)
    }
    .map_err(|e| ApprovalError::BadTarget(e.to_string(), id.clone()))?;
    // A file warrant is for one file: its tree's own path names that file
    // when the tree is a single file.
    let target = match target {
        Target::File { tree: Some(tree), inode: None, name: None } => Target::File {
            tree: Some(tree),
            inode: ThisHost.file(text).filter(|_| std::fs::symlink_metadata(text).is_ok_and(|m| !m.is_dir())),
            name: None,
        },
        other => other,
    };
    if !target.is_exact(kind) {
        return Err(ApprovalError::BadTarget(
            format!("target {:?} of {} must name one thing, without `*`", approval.target, approval.action),
            id,
        ));
    }
    if approval.expires_at <= now {
        return Err(ApprovalError::Expired { id, expires_at: approval.expires_at, now });
    }
    if approval.not_before > now + MAX_CLOCK_SKEW_SECS {
        return Err(ApprovalError::ClockSkew { id, not_before: approval.not_before, ahead: approval.not_before - now });
    }
    if approval.max_uses == 0 {
        return Err(ApprovalError::NoUses { id });
    }
    let content_digest = match &approval.content_digest {
        None => 0,
        Some(_) if !action::has_content(action_id) => {
            return Err(ApprovalError::BadTarget(
                format!("content_digest applies to nft rule actions only, not {}", approval.action),
                id,
            ));
        }
        Some(text) => parse_digest(text).ok_or_else(|| {
            ApprovalError::BadTarget(format!("content_digest {text:?} is not 16 hex digits of a digest"), id.clone())
        })?,
    };
    let key = target.key(profile_id, action_id);
    Ok(CheckedWarrant { approval, key, approvers, content_digest })
}

/// A content digest as written in requests and warrants; never 0 or the
/// too-long marker, which bind nothing.
pub fn parse_digest(text: &str) -> Option<u64> {
    if text.len() != 16 {
        return None;
    }
    u64::from_str_radix(text, 16).ok().filter(|&d| d != 0 && d != warrant_common::netlink::DIGEST_TOO_LONG)
}

/// The id an unverified envelope claims, for the refusal message only.
fn unverified_id(envelope: &Envelope) -> Option<String> {
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD.decode(&envelope.payload).ok()?;
    serde_json::from_slice::<Approval>(&payload).ok().map(|a| a.id)
}
