//! The text of one TOML file with the spans of its keys and values, so that problems found
//! after parsing can name the line of the key they are about, and parse errors (which carry a
//! byte span) can name the key path they are about.
//!
//! Invariant: lookups never panic, whatever the path or span; an unknown path or a span outside
//! the text yields `None`.

use super::problem::{KeyPath, Problem, Segment};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A parsed TOML document kept for locating problems.
pub struct SourceMap<'text> {
    file: PathBuf,
    text: &'text str,
    root: Option<Spanned<DeTable<'text>>>,
}

impl<'text> SourceMap<'text> {
    /// Parses `text`; a syntax error becomes a problem naming the line and column.
    pub fn parse(file: &Path, text: &'text str) -> Result<Self, Problem> {
        match DeTable::parse(text) {
            Ok(root) => Ok(Self {
                file: file.to_owned(),
                text,
                root: Some(root),
            }),
            Err(error) => {
                let source = Self {
                    file: file.to_owned(),
                    text,
                    root: None,
                };
                Err(source.problem_from_toml(&error))
            }
        }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The 1-based line of the byte at `offset`.
    pub fn line_at(&self, offset: usize) -> Option<usize> {
        let prefix = self.text.get(..offset.min(self.text.len()))?;
        Some(prefix.bytes().filter(|b| *b == b'\n').count() + 1)
    }

    /// The line where the key at `path` (or its array element) is written; for a path deeper
    /// than the file (a key left to its default), the line of the deepest part that is written.
    pub fn line_of(&self, path: &KeyPath) -> Option<usize> {
        let root = self.root.as_ref()?;
        let span = span_in_table(root.get_ref(), &path.segments).unwrap_or(root.span());
        self.line_at(span.start)
    }

    /// The deepest key path whose key or value covers `span`.
    pub fn path_at(&self, span: &Range<usize>) -> KeyPath {
        let Some(root) = self.root.as_ref() else {
            return KeyPath::root();
        };
        // toml gives an empty span for problems of the whole document (a missing top-level
        // key); it locates no key.
        if span.is_empty() {
            return KeyPath::root();
        }
        let mut best = KeyPath::root();
        search_table(root.get_ref(), &KeyPath::root(), span, &mut best);
        best
    }

    /// Turns a toml error (syntax or type) into a problem with the key path and line.
    pub fn problem_from_toml(&self, error: &toml::de::Error) -> Problem {
        let mut message = error.message().trim().to_owned();
        if message.is_empty() {
            message = "is not valid TOML".to_owned();
        }
        let mut problem = match error.span() {
            Some(span) => {
                let mut problem = Problem::error(&self.file, self.path_at(&span), message);
                problem.line = self.line_at(span.start);
                if self.root.is_none() {
                    problem.message = format!(
                        "{} (column {}) in: {}",
                        problem.message,
                        self.column_at(span.start).unwrap_or(1),
                        self.line_text(span.start)
                    );
                }
                problem
            }
            None => Problem::error(&self.file, KeyPath::root(), message),
        };
        if self.root.is_none() {
            problem.message = format!("not valid TOML: {}", problem.message);
        }
        problem
    }

    /// The line holding `offset`, trimmed and shortened for a message.
    fn line_text(&self, offset: usize) -> String {
        const SHOWN_CHARS_MAX: usize = 80;
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let start = self.text[..offset]
            .rfind('\n')
            .map_or(0, |newline| newline + 1);
        let end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |newline| offset + newline);
        let line = self.text[start..end].trim();
        let mut shown: String = line.chars().take(SHOWN_CHARS_MAX).collect();
        if line.chars().count() > SHOWN_CHARS_MAX {
            shown.push('…');
        }
        shown
    }

    fn column_at(&self, offset: usize) -> Option<usize> {
        let prefix = self.text.get(..offset.min(self.text.len()))?;
        let line_start = prefix.rfind('\n').map_or(0, |newline| newline + 1);
        Some(prefix[line_start..].chars().count() + 1)
    }

    /// Sets the line of `problem` from its key path, if this map describes its file.
    pub fn locate(&self, mut problem: Problem) -> Problem {
        if problem.line.is_none() && problem.file == self.file {
            problem.line = self.line_of(&problem.key);
        }
        problem
    }
}

fn span_in_table(table: &DeTable<'_>, segments: &[Segment]) -> Option<Range<usize>> {
    let (Segment::Key(key), rest) = segments.split_first()? else {
        return None;
    };
    let (name, entry) = table
        .iter()
        .find(|(name, _)| name.get_ref().as_ref() == key.as_str())?;
    Some(span_in_value(entry.get_ref(), rest).unwrap_or(name.span()))
}

fn span_in_value(value: &DeValue<'_>, segments: &[Segment]) -> Option<Range<usize>> {
    match (segments.first()?, value) {
        (Segment::Key(_), DeValue::Table(table)) => span_in_table(table, segments),
        (Segment::Index(index), DeValue::Array(array)) => {
            let element = array.get(*index)?;
            Some(span_in_value(element.get_ref(), &segments[1..]).unwrap_or(element.span()))
        }
        _ => None,
    }
}

fn covers(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
}

fn search_table(table: &DeTable<'_>, path: &KeyPath, span: &Range<usize>, best: &mut KeyPath) {
    for (key, value) in table.iter() {
        let child = path.key(key.get_ref());
        if covers(&key.span(), span) || covers(&value.span(), span) {
            consider(&child, best);
        }
        search_value(value.get_ref(), &child, span, best);
    }
}

fn search_value(value: &DeValue<'_>, path: &KeyPath, span: &Range<usize>, best: &mut KeyPath) {
    match value {
        DeValue::Table(table) => search_table(table, path, span, best),
        DeValue::Array(array) => {
            for (index, element) in array.iter().enumerate() {
                let child = path.index(index);
                if covers(&element.span(), span) {
                    consider(&child, best);
                }
                search_value(element.get_ref(), &child, span, best);
            }
        }
        _ => {}
    }
}

fn consider(candidate: &KeyPath, best: &mut KeyPath) {
    if candidate.segments.len() > best.segments.len() {
        *best = candidate.clone();
    }
}
