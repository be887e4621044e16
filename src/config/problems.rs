//! The problems found in one file, each turned from a byte span into `file:line:col: message`.
//!
//! Shared by `gateway.toml` and `users.toml`, which both report every problem at once.

use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::structure::{self, Dropped};
use super::{ConfigError, ConfigErrors};

pub(crate) struct Problems<'a> {
    file: &'a Path,
    text: &'a str,
    /// Where each line after the first begins: `line_of` is a binary search, since every
    /// route and rule asks for its line (a file may hold thousands).
    line_starts: Vec<usize>,
    list: Vec<ConfigError>,
    /// Keys left out of the file's mirror for an unknown name or a wrong type.
    dropped: Dropped,
}

impl<'a> Problems<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Self {
        let line_starts = memchr::memchr_iter(b'\n', text.as_bytes())
            .map(|i| i + 1)
            .collect();
        Problems {
            file,
            text,
            line_starts,
            list: Vec::new(),
            dropped: Dropped::default(),
        }
    }

    pub(crate) fn push(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = line_and_column(self.text, span.start);
        self.list.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
        });
    }

    /// Reads the text into its serde mirror, recording every unknown key and wrong type and
    /// leaving them out; `None` when not even that could be read (a syntax error).
    pub(crate) fn read<T: DeserializeOwned>(&mut self) -> Option<T> {
        let (value, problems) = match structure::parse(self.text) {
            Ok(parsed) => {
                self.dropped = parsed.dropped;
                (Some(parsed.value), parsed.problems)
            }
            Err(problems) => (None, problems),
        };
        for problem in problems {
            self.push(problem.span, problem.message);
        }
        value
    }

    /// Reports that the table at `table` (the span of its `Spanned` mirror), called `name` in
    /// the message, lacks `key`; unless `read` left the key out, which is reported already.
    pub(crate) fn missing(&mut self, table: &Range<usize>, name: &str, key: &str) {
        if !self.dropped.in_table(table, key) {
            self.push(table.clone(), format!("{name} is missing `{key}`"));
        }
    }

    /// What `read` left out of the mirror.
    pub(crate) fn dropped(&self) -> &Dropped {
        &self.dropped
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The 1-based line of a byte offset.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset) + 1
    }

    /// `value` if nothing was wrong, else every problem in the order of the file.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        match self.list.is_empty() {
            true => Ok(value),
            false => Err(self.into_errors()),
        }
    }

    pub(crate) fn into_errors(self) -> ConfigErrors {
        let mut list = self.list;
        list.sort_by_key(|e| (e.line, e.column));
        ConfigErrors(list)
    }
}

/// 1-based line and column (in characters, as editors count them) of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_of_agrees_with_the_line_of_line_and_column() {
        let text = "a\n\nbc\nd";
        let problems = Problems::new(Path::new("f.toml"), text);
        for offset in 0..=text.len() + 2 {
            assert_eq!(
                problems.line_of(offset),
                line_and_column(text, offset).0,
                "offset {offset}"
            );
        }
    }
}
