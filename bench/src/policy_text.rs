//! The policies the apply figures time, in the VM (`orchestrate`) and on
//! the host (`native`) alike.

use std::path::Path;

/// A policy of version `version`: `rules` allow rules in one profile,
/// protecting `protect`, matching processes that run `exe` if given.
pub fn apply_policy(version: u64, rules: u64, protect: &[&Path], exe: Option<&Path>) -> String {
    let protect: Vec<String> = protect.iter().map(|path| toml_string(path)).collect();
    let mut text = format!(
        "version = {version}\nexpires = \"2030-01-01T00:00:00Z\"\ndescription = \"bench apply\"\nprotect = [{}]\n\n\
         [[profile]]\nname = \"bench\"\nmode = \"enforce\"\n",
        protect.join(", ")
    );
    if let Some(exe) = exe {
        text.push_str(&format!("\n[profile.match]\nexe = [{}]\n", toml_string(exe)));
    }
    for rule in 0..rules {
        text.push_str(&format!(
            "\n[[profile.rule]]\naction = \"nft.rule.add\"\ntarget = \"inet bench c{rule}\"\ntier = \"allow\"\n"
        ));
    }
    text
}

/// The policy the native record timing decides under: `bench` may write
/// `file` (protected) and connect to `socket`, both in the allow tier.
pub fn records_policy(file: &Path, socket: &Path) -> String {
    let (file, socket) = (toml_string(file), toml_string(socket));
    format!(
        "version = 1\nexpires = \"2030-01-01T00:00:00Z\"\ndescription = \"bench records\"\nprotect = [{file}]\n\n\
         [[profile]]\nname = \"bench\"\nmode = \"enforce\"\n\n\
         [[profile.rule]]\naction = \"file.write\"\ntarget = {file}\ntier = \"allow\"\n\n\
         [[profile.rule]]\naction = \"ipc.connect\"\ntarget = {socket}\ntier = \"allow\"\n"
    )
}

/// `path` as a TOML string, quoted and escaped as TOML has it (Rust's own
/// `{:?}` escapes other characters otherwise).
fn toml_string(path: &Path) -> String {
    toml::Value::String(path.display().to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_come_back_as_written_whatever_their_characters() {
        let odd = Path::new("/tmp/a \"quoted\" \\ caf\u{e9}\u{1}\u{7f}/\u{2028}x");
        let text = apply_policy(3, 2, &[odd, Path::new("/etc")], Some(Path::new("/usr/bin/t\u{e9}st")));
        let value: toml::Value = toml::from_str(&text).expect("the policy is TOML");
        assert_eq!(value["protect"][0].as_str(), Some(odd.to_str().unwrap()));
        assert_eq!(value["protect"][1].as_str(), Some("/etc"));
        assert_eq!(value["profile"][0]["match"]["exe"][0].as_str(), Some("/usr/bin/t\u{e9}st"));
        assert_eq!(value["profile"][0]["rule"].as_array().map(Vec::len), Some(2));
    }
}
