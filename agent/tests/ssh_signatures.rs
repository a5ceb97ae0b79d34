//! Plain tier: Responsible Individuals who sign with SSH keys. Signatures
//! are made by the real `ssh-keygen -Y sign`; the hardware-key path is
//! checked against OpenSSH's own SSHSIG test vector.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use ed25519_dalek::SigningKey;

mod common;
use warrant::{
    approval::{self, ApprovalError},
    keys::{self, Attested, PublicKey, Signer, SshSigError},
    policy::{self, CompiledPolicy},
    trust::{self, Envelope, POLICY_PAYLOAD_TYPE, TrustError},
};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warrant-ssh-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A new OpenSSH ed25519 key pair at `dir/name` (no passphrase).
fn ssh_keygen(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .expect("ssh-keygen (openssh-client) is installed: `cargo xtask setup` installs it");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    path
}

/// The demo policy with carol, whose key is `carol_key` (an OpenSSH line),
/// as a Responsible Individual for nft rules and chains.
fn policy_with_carol(carol_key: &str, extra: &str) -> CompiledPolicy {
    let demo = std::fs::read_to_string(repo().join("policies/demo.toml")).unwrap();
    let carol = format!(
        "[[responsible]]\nname = \"carol\"\nrole = \"on-call with a hardware key\"\nkey = {:?}\n\
         may_approve = [\"nft.rule.*\", \"nft.chain.add\"]\n{extra}\n",
        carol_key.trim()
    );
    let text = demo.replacen("[[profile]]", &format!("{carol}\n[[profile]]"), 1);
    policy::compile(policy::Policy::parse(&text).unwrap()).unwrap()
}

fn demo_key(name: &str) -> SigningKey {
    trust::read_signing_key(&repo().join(format!("policies/demo-keys/{name}.key"))).unwrap()
}

#[test]
fn a_warrant_signed_by_ssh_keygen_verifies_and_names_the_keys_fingerprint() {
    let dir = scratch("warrant");
    let carol = ssh_keygen(&dir, "carol");
    let signer = Signer::ssh(&carol).unwrap();
    let public = signer.public();
    assert!(public.id().starts_with("SHA256:"), "{}", public.id());
    let policy = policy_with_carol(&std::fs::read_to_string(carol.with_extension("pub")).unwrap(), "");

    let mut envelope = common::approval("carol", &public).unsigned();
    signer.sign(&mut envelope).unwrap();
    assert!(envelope.signatures[0].sshsig.as_deref().unwrap().starts_with("-----BEGIN SSH SIGNATURE-----"));
    let text = envelope.to_json();
    let checked = approval::check(&Envelope::parse(&text).unwrap(), &policy, "host-a", 1_000).unwrap();
    assert_eq!(checked.approvers, ["carol"]);

    // The same signature over another payload does not verify.
    let mut tampered = common::approval("carol", &public);
    tampered.max_uses = 100;
    let mut forged = tampered.unsigned();
    forged.signatures = envelope.signatures.clone();
    let refused = approval::check(&forged, &policy, "host-a", 1_000).unwrap_err();
    assert!(
        matches!(refused, ApprovalError::Envelope(TrustError::SshSig { source: SshSigError::Invalid, .. })),
        "{refused}"
    );

    // Signed through ssh-agent-style use of the .pub path: the same key, the same id.
    assert_eq!(Signer::ssh(&carol.with_extension("pub")).unwrap().public(), public);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_signature_for_another_namespace_is_not_a_warrant_signature() {
    let dir = scratch("namespace");
    let carol = ssh_keygen(&dir, "carol");
    let public = Signer::ssh(&carol).unwrap().public();
    let policy = policy_with_carol(&std::fs::read_to_string(carol.with_extension("pub")).unwrap(), "");
    let mut envelope = common::approval("carol", &public).unsigned();
    // The same bytes, signed for git (`-n git`), as a commit signature would be.
    let message = dir.join("message");
    std::fs::write(&message, envelope.signed_message().unwrap()).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", "git", "-f"])
        .arg(&carol)
        .arg(&message)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let armored = std::fs::read_to_string(dir.join("message.sig")).unwrap();
    envelope.add_ssh_signature(public.id(), armored);
    let refused = approval::check(&envelope, &policy, "host-a", 1_000).unwrap_err();
    assert!(refused.to_string().contains("namespace \"git\""), "{refused}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_person_rules_count_distinct_people_across_both_kinds_of_key() {
    let dir = scratch("two");
    let carol = ssh_keygen(&dir, "carol");
    let carol_signer = Signer::ssh(&carol).unwrap();
    let policy = policy_with_carol(&std::fs::read_to_string(carol.with_extension("pub")).unwrap(), "");
    let alice = demo_key("alice");
    let mut two = common::approval("alice", &alice.verifying_key().into());
    two.action = "nft.chain.add".into();
    two.target = "inet agent newchain".into();
    let mut envelope = two.seal(&alice);
    assert!(matches!(approval::check(&envelope, &policy, "host-a", 1_000), Err(ApprovalError::NeedsTwo { .. })));
    carol_signer.sign(&mut envelope).unwrap();
    // Signing twice adds nothing.
    carol_signer.sign(&mut envelope).unwrap();
    assert_eq!(envelope.signatures.len(), 2);
    let checked = approval::check(&envelope, &policy, "host-a", 1_000).unwrap();
    assert_eq!(checked.approvers, ["alice", "carol"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_policy_bundle_can_be_ssh_signed_from_the_command_line() {
    let dir = scratch("bundle");
    let team = ssh_keygen(&dir, "team");
    let bundle = dir.join("policy.bundle");
    let warrant = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_warrant")).args(args).output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let demo = repo().join("policies/demo.toml");
    let (ok, text) = warrant(&[
        "policy",
        "sign",
        demo.to_str().unwrap(),
        "--ssh-key",
        team.to_str().unwrap(),
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let team_pub = team.with_extension("pub");
    let (ok, text) = warrant(&["policy", "verify", bundle.to_str().unwrap(), "--trust", team_pub.to_str().unwrap()]);
    assert!(ok && text.contains("valid: policy v1") && text.contains("SHA256:"), "{text}");
    // An Ed25519 root does not accept it.
    let other = repo().join("policies/demo-keys/security-team.key.pub");
    let (ok, text) = warrant(&["policy", "verify", bundle.to_str().unwrap(), "--trust", other.to_str().unwrap()]);
    assert!(!ok && text.contains("no valid signature from a trusted key"), "{text}");
    let envelope = Envelope::parse(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    let trusted = [trust::read_signer_key(&team_pub).unwrap()];
    assert!(envelope.verify(POLICY_PAYLOAD_TYPE, &trusted, 1).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

/// OpenSSH's regress/unittests/sshsig/testdata (ed25519_sk.pub, .sig): made
/// by `ssh-keygen -Y sign -n unittest` with its sk-dummy authenticator over
/// "This is a test, this is only a test".
const SK_PUBLIC: &str = "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIJsaDYXQYruc6bilCYDIK4YSOeG+zmrRO2M9t03//7LHAAAABHNzaDo= ED25519-SK test key";
const SK_SIGNATURE: &str = "-----BEGIN SSH SIGNATURE-----
U1NIU0lHAAAAAQAAAEoAAAAac2stc3NoLWVkMjU1MTlAb3BlbnNzaC5jb20AAAAgmxoNhd
Biu5zpuKUJgMgrhhI54b7OatE7Yz23Tf//sscAAAAEc3NoOgAAAAh1bml0dGVzdAAAAAAA
AAAGc2hhNTEyAAAAZwAAABpzay1zc2gtZWQyNTUxOUBvcGVuc3NoLmNvbQAAAEAi+7eTjW
/+LQ2M+sCD+KFtH1n7VFFJon/SZFsxODyV8cWTlFKj617Ys1Ur5TV6uaEXQhck8rBA2oQI
HTPANLIPARI0Vng=
-----END SSH SIGNATURE-----
";
const SK_SIGNED: &[u8] = b"This is a test, this is only a test";

#[test]
fn a_hardware_keys_signature_verifies_with_its_touch_and_without_a_pin() {
    let Some(PublicKey::Ssh(key)) = PublicKey::parse(SK_PUBLIC) else { panic!("the sk test key parses") };
    assert!(PublicKey::parse(SK_PUBLIC).unwrap().is_hardware());
    // The token said its user was present; it did not verify them (no PIN).
    assert_eq!(keys::verify_sshsig(&key, "unittest", SK_SIGNED, SK_SIGNATURE), Ok(Attested { user_verified: false }));
    assert_eq!(keys::verify_sshsig(&key, "unittest", b"something else", SK_SIGNATURE), Err(SshSigError::Invalid));
    assert!(matches!(
        keys::verify_sshsig(&key, keys::SSHSIG_NAMESPACE, SK_SIGNED, SK_SIGNATURE),
        Err(SshSigError::Namespace { .. })
    ));
    let other = PublicKey::parse(&std::fs::read_to_string(repo().join("agent/tests/data/ssh-ed25519.pub")).unwrap());
    let Some(PublicKey::Ssh(other)) = other else { panic!("the ed25519 test key parses") };
    assert_eq!(keys::verify_sshsig(&other, "unittest", SK_SIGNED, SK_SIGNATURE), Err(SshSigError::OtherKey));
}

#[test]
fn a_policy_may_ask_a_hardware_key_for_user_verification() {
    // A file key cannot promise it.
    let demo = std::fs::read_to_string(repo().join("policies/demo.toml")).unwrap();
    let with_uv = demo.replacen(
        "may_approve = [\"nft.chain.add\"]",
        "may_approve = [\"nft.chain.add\"]\nuser_verification = true",
        1,
    );
    let error = policy::Policy::parse(&with_uv).and_then(policy::compile).unwrap_err();
    assert!(error.to_string().contains("user_verification needs a hardware key"), "{error}");
    // A hardware key can; the policy holds it.
    let compiled = policy_with_carol(SK_PUBLIC, "user_verification = true");
    let carol = compiled.responsibles.iter().find(|(ri, _)| ri.name == "carol").unwrap();
    assert!(carol.0.user_verification && carol.1.is_hardware());
    // Keys other than ed25519 and sk-ed25519 are refused.
    assert!(PublicKey::parse("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7 x").is_none());
}

/// The `ssh-ed25519` line of a Warrant Ed25519 key: the same key, written
/// the other way.
fn as_ssh_line(key: &SigningKey) -> String {
    let public = ssh_key::public::Ed25519PublicKey(key.verifying_key().to_bytes());
    ssh_key::PublicKey::from(public).to_openssh().unwrap()
}

#[test]
fn one_key_in_both_encodings_is_one_signer_and_one_person() {
    let alice = demo_key("alice");
    let line = as_ssh_line(&alice);
    assert_eq!(PublicKey::parse(&line).unwrap(), PublicKey::from(alice.verifying_key()));
    // A policy naming it twice, once per encoding, is refused.
    let error = std::panic::catch_unwind(|| policy_with_carol(&line, "")).unwrap_err();
    let message = error.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("hold the same key"), "{message}");
    // A trust root listing it twice is refused, and it never counts twice.
    let text = format!(
        "version = 1\nthreshold = 2\nkeys = [{:?}, {:?}]\n",
        trust::encode_public_key(&alice.verifying_key()),
        line
    );
    assert!(warrant::trust_root::TrustRoot::parse(&text).unwrap_err().to_string().contains("listed twice"));
    let trusted = [PublicKey::from(alice.verifying_key()), PublicKey::parse(&line).unwrap()];
    let bundle = Envelope::sign(POLICY_PAYLOAD_TYPE, b"version = 1", &[alice]);
    assert!(matches!(
        bundle.verify(POLICY_PAYLOAD_TYPE, &trusted, 2),
        Err(TrustError::NotEnoughSignatures { needed: 2, found: 1 })
    ));
}

#[test]
fn a_strangers_bad_ssh_signature_does_not_block_a_valid_envelope() {
    let dir = scratch("stranger");
    let carol = ssh_keygen(&dir, "carol");
    let signer = Signer::ssh(&carol).unwrap();
    let policy = policy_with_carol(&std::fs::read_to_string(carol.with_extension("pub")).unwrap(), "");
    let mut envelope = common::approval("carol", &signer.public()).unsigned();
    // Someone appends garbage and a signature for another namespace first.
    envelope
        .add_ssh_signature("junk".into(), "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n".into());
    signer.sign(&mut envelope).unwrap();
    assert_eq!(approval::check(&envelope, &policy, "host-a", 1_000).unwrap().approvers, ["carol"]);
    let _ = std::fs::remove_dir_all(&dir);
}
