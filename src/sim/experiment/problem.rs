//! Problems found in experiment and topology files, and the key paths that locate them.
//!
//! A [`Problem`] names the file, the key path inside it (`fault[2].sides[1][0]`), the line when
//! it is known, and a message that says what was found and what was expected. Loading and
//! validation collect every problem they can find rather than stopping at the first.
//! Invariant: a [`LoadError`] always holds at least one error-severity problem.

use std::fmt;
use std::path::{Path, PathBuf};

/// One step of a key path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Where a value sits inside a TOML document, as `fault[2].sides[1][0]` or `group."hub.test"`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyPath {
    pub segments: Vec<Segment>,
}

impl KeyPath {
    pub fn root() -> Self {
        Self::default()
    }

    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// This path followed by a key.
    pub fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.segments.push(Segment::Key(key.to_owned()));
        path
    }

    /// This path followed by an array index.
    pub fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.segments.push(Segment::Index(index));
        path
    }

    /// This path followed by all of `suffix`.
    pub fn join(&self, suffix: &KeyPath) -> Self {
        let mut path = self.clone();
        path.segments.extend(suffix.segments.iter().cloned());
        path
    }
}

/// Starts a path at a top-level key: `at("fault").index(2).key("sides")`.
pub fn at(key: &str) -> KeyPath {
    KeyPath::root().key(key)
}

fn is_bare_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("(top level)");
        }
        for (position, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Key(key) => {
                    if position > 0 {
                        f.write_str(".")?;
                    }
                    if is_bare_key(key) {
                        f.write_str(key)?;
                    } else {
                        write!(f, "{key:?}")?;
                    }
                }
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Whether a problem stops the experiment from running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    /// Suspicious but runnable, such as a heal with no partition to heal.
    Warning,
}

/// One thing wrong (or suspicious) in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub file: PathBuf,
    pub key: KeyPath,
    /// 1-based line of the key, when the file text locates it.
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    pub fn error(file: &Path, key: KeyPath, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            file: file.to_owned(),
            key,
            line: None,
            message: message.into(),
        }
    }

    pub fn warning(file: &Path, key: KeyPath, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(file, key, message)
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if self.severity == Severity::Warning {
            f.write_str(": warning")?;
        }
        if self.key.is_root() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": `{}`: {}", self.key, self.message)
        }
    }
}

/// A file that could not be loaded: every problem found, errors first, then warnings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    problems: Vec<Problem>,
}

impl LoadError {
    /// Wraps problems that include at least one error; `None` if there are only warnings.
    pub fn from_problems(mut problems: Vec<Problem>) -> Option<Self> {
        if !problems.iter().any(Problem::is_error) {
            return None;
        }
        problems.sort_by_key(|problem| problem.severity);
        Some(Self { problems })
    }

    pub fn single(problem: Problem) -> Self {
        assert!(problem.is_error(), "a load error needs an error problem");
        Self {
            problems: vec![problem],
        }
    }

    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|problem| problem.is_error())
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, problem) in self.problems.iter().enumerate() {
            if position > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// Lists names for a message, cutting long lists: `eu, us` or `a, b, c, ... (97 more)`.
pub fn list_names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    const SHOWN_MAX: usize = 8;
    let names: Vec<&str> = names.into_iter().collect();
    let mut text = names
        .iter()
        .take(SHOWN_MAX)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN_MAX {
        text.push_str(&format!(", ... ({} more)", names.len() - SHOWN_MAX));
    }
    if names.is_empty() {
        text.push_str("(none)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_display_like_toml() {
        let path = at("fault").index(2).key("sides").index(1).index(0);
        assert_eq!(path.to_string(), "fault[2].sides[1][0]");
        assert_eq!(
            at("group")
                .key("hub")
                .key("users")
                .key("hub.test")
                .to_string(),
            "group.hub.users.\"hub.test\""
        );
        assert_eq!(KeyPath::root().to_string(), "(top level)");
    }

    #[test]
    fn problems_name_file_line_and_key() {
        let mut problem = Problem::error(Path::new("x.toml"), at("duration"), "bad");
        problem.line = Some(4);
        assert_eq!(problem.to_string(), "x.toml:4: `duration`: bad");
        let warning = Problem::warning(Path::new("x.toml"), KeyPath::root(), "odd");
        assert_eq!(warning.to_string(), "x.toml: warning: odd");
        assert!(LoadError::from_problems(vec![warning.clone()]).is_none());
        let error = LoadError::from_problems(vec![warning, problem]).unwrap();
        assert!(error.problems()[0].is_error());
    }

    #[test]
    fn long_name_lists_are_cut() {
        let names: Vec<String> = (1..=10).map(|i| format!("s{i}")).collect();
        assert_eq!(
            list_names(names.iter().map(String::as_str)),
            "s1, s2, s3, s4, s5, s6, s7, s8, ... (2 more)"
        );
    }
}
