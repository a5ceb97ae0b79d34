//! `warrant unmark` and `warrant marks`: the files subjects wrote.

use crate::*;

/// Clears the marks on `paths` (each made absolute here: the daemon runs elsewhere).
pub(crate) fn unmark(config_path: Option<&Path>, paths: Vec<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    for path in paths {
        // The daemon resolves the path from its own directory.
        let path = std::path::absolute(&path).with_context(|| format!("{}", path.display()))?;
        let path = path.to_str().with_context(|| format!("{} is not UTF-8", path.display()))?.to_owned();
        let unmarked: reply::Unmarked = control::call(&config.socket, &Request::Unmark { path })?;
        println!(
            "unmarked {} (inode {}, written by profile {})",
            render::quoted(&unmarked.path),
            render::quoted(&unmarked.inode),
            render::quoted(&unmarked.profile)
        );
    }
    Ok(())
}

/// Lists every mark.
pub(crate) fn list_marks(config_path: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let marks: Vec<reply::Mark> = control::call(&config.socket, &Request::ListMarks)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&marks)?);
    } else if marks.is_empty() {
        println!("no marks: no subject has written a file here");
    } else {
        for mark in &marks {
            println!(
                "{} inode {} (device {}) written by profile {}",
                render::escape(mark.mount.as_deref().unwrap_or("(not mounted)")),
                mark.inode,
                render::quoted(&mark.device),
                render::quoted(&mark.profile)
            );
        }
        println!("a file's path: find MOUNT -xdev -inum INODE");
    }
    Ok(())
}
