//! Diagnostics: one error or warning about the configuration, located by file,
//! line, table entry and field, so an operator can go straight to the mistake.

use std::fmt;
use std::path::{Path, PathBuf};

/// One finding about a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the finding is about.
    pub file: PathBuf,
    /// 1-based line of the offending value (or of its table) when known.
    pub line: Option<usize>,
    /// The table entry, e.g. `[[probe]] "probe01"` or `[gateway]`.
    pub entry: String,
    /// The field inside the entry, e.g. `path` or `addresses[1]`.
    pub field: Option<String>,
    /// What is wrong, in plain words.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.entry)?;
        if let Some(field) = &self.field {
            write!(f, ", field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every error found in a configuration file (validation never stops at the
/// first), plus the warnings found along the way.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors {
    pub file: PathBuf,
    /// The file could not be read at all (as opposed to read and found wrong).
    pub unreadable: bool,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl ConfigErrors {
    pub(crate) fn io(file: &Path, err: &std::io::Error) -> Self {
        ConfigErrors {
            file: file.to_path_buf(),
            unreadable: true,
            errors: vec![Diagnostic {
                file: file.to_path_buf(),
                line: None,
                entry: "file".into(),
                field: None,
                message: format!("cannot read the configuration: {err}"),
            }],
            warnings: Vec::new(),
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(f, "{}: {n} configuration error{}", self.file.display(), if n == 1 { "" } else { "s" })?;
        for e in &self.errors {
            write!(f, "\n  error: {e}")?;
        }
        for w in &self.warnings {
            write!(f, "\n  warning: {w}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics while a file is walked.
#[derive(Debug)]
pub(crate) struct Diags {
    file: PathBuf,
    line_starts: Vec<usize>,
    /// Relative paths in the file are relative to its directory.
    pub(crate) base: PathBuf,
    pub(crate) errors: Vec<Diagnostic>,
    pub(crate) warnings: Vec<Diagnostic>,
}

impl Diags {
    pub(crate) fn new(file: &Path, text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let base = file.parent().map_or_else(PathBuf::new, Path::to_path_buf);
        Diags { file: file.to_path_buf(), line_starts, base, errors: Vec::new(), warnings: Vec::new() }
    }

    /// 1-based line holding byte offset `at`.
    pub(crate) fn line_of(&self, at: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= at)
    }

    fn make(&self, at: Option<usize>, entry: &str, field: Option<&str>, msg: String) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line: at.map(|a| self.line_of(a)),
            entry: entry.to_string(),
            field: field.map(str::to_string),
            message: msg,
        }
    }

    pub(crate) fn error(&mut self, at: Option<usize>, entry: &str, field: Option<&str>, msg: String) {
        let d = self.make(at, entry, field, msg);
        self.errors.push(d);
    }

    pub(crate) fn warn(&mut self, at: Option<usize>, entry: &str, field: Option<&str>, msg: String) {
        let d = self.make(at, entry, field, msg);
        self.warnings.push(d);
    }

    pub(crate) fn into_errors(self) -> ConfigErrors {
        ConfigErrors { file: self.file, unreadable: false, errors: self.errors, warnings: self.warnings }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based_and_follow_newlines() {
        let d = Diags::new(Path::new("f.toml"), "a\nbb\n\nc");
        assert_eq!(d.line_of(0), 1);
        assert_eq!(d.line_of(2), 2);
        assert_eq!(d.line_of(5), 3);
        assert_eq!(d.line_of(6), 4);
    }

    #[test]
    fn diagnostic_names_file_line_entry_and_field() {
        let d = Diagnostic {
            file: "gw.toml".into(),
            line: Some(12),
            entry: "[[probe]] \"probe01\"".into(),
            field: Some("path".into()),
            message: "must start with '/'".into(),
        };
        assert_eq!(d.to_string(), "gw.toml:12: [[probe]] \"probe01\", field `path`: must start with '/'");
    }
}
