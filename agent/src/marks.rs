//! Marks on disk: the daemon's copy of the kernel's MARKS map (files
//! subjects wrote), so that a reboot, which empties the pinned map, does
//! not clear them. One line per mark: `DEV INO GENERATION PROFILE_ID`, the
//! device in the kernel's encoding.

use std::{collections::HashMap, path::Path};

use thiserror::Error;
use warrant_common::{FileKey, Mark};

/// The file under the state directory.
pub const FILE_NAME: &str = "marks";

#[derive(Debug, Error)]
pub enum MarksFileError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}, line {line}: {reason}")]
    Malformed { path: String, line: usize, reason: &'static str },
}

/// Renders `marks`, sorted so that equal sets give equal files.
pub fn render(marks: &HashMap<FileKey, Mark>) -> String {
    let mut lines: Vec<String> = marks
        .iter()
        .map(|(key, mark)| format!("{} {} {} {}", key.dev, key.ino, mark.generation, mark.profile_id))
        .collect();
    lines.sort();
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// Parses what [`render`] wrote.
pub fn parse(text: &str, path: &str) -> Result<HashMap<FileKey, Mark>, MarksFileError> {
    let mut marks = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let malformed = |reason| MarksFileError::Malformed { path: path.to_owned(), line: index + 1, reason };
        let words: Vec<u64> = line
            .split_whitespace()
            .map(|w| w.parse::<u64>().map_err(|_| malformed("not a number")))
            .collect::<Result<_, _>>()?;
        let [dev, ino, generation, profile_id] = words[..] else {
            return Err(malformed("expected DEV INO GENERATION PROFILE_ID"));
        };
        let (Ok(generation), Ok(profile_id)) = (u32::try_from(generation), u32::try_from(profile_id)) else {
            return Err(malformed("generation and profile id are 32-bit"));
        };
        marks.insert(FileKey { dev, ino }, Mark { profile_id, generation });
    }
    Ok(marks)
}

/// The marks saved under `state_dir` (none if the file is missing).
pub fn load(state_dir: &Path) -> Result<HashMap<FileKey, Mark>, MarksFileError> {
    let path = state_dir.join(FILE_NAME);
    let shown = path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text, &shown),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(source) => Err(MarksFileError::Io { path: shown, source }),
    }
}

/// Saves `marks` under `state_dir`, atomically.
pub fn save(state_dir: &Path, marks: &HashMap<FileKey, Mark>) -> Result<(), MarksFileError> {
    let path = state_dir.join(FILE_NAME);
    crate::durable::write_atomic(&path, render(marks).as_bytes())
        .map_err(|source| MarksFileError::Io { path: path.display().to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_survive_a_round_trip() {
        let marks = HashMap::from([
            (FileKey { dev: 8 << 20 | 1, ino: 1234 }, Mark { profile_id: 7, generation: 99 }),
            (FileKey { dev: 25, ino: 1 }, Mark { profile_id: u32::MAX, generation: 0 }),
        ]);
        assert_eq!(parse(&render(&marks), "marks").unwrap(), marks);
    }

    #[test]
    fn a_malformed_line_is_named() {
        let error = parse("1 2 3 4\n1 2 x 4\n", "/var/lib/warrant/marks").unwrap_err();
        assert_eq!(error.to_string(), "/var/lib/warrant/marks, line 2: not a number");
        assert!(parse("1 2 3\n", "m").is_err());
        assert!(parse("1 2 4294967296 4\n", "m").is_err());
    }
}
