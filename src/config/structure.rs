//! Reads a TOML file into its serde mirror and reports every unknown key and wrong type, where
//! serde alone stops at the first.
//!
//! The file is parsed once into a tree that keeps every span. Each failed attempt to read the
//! mirror points at one entry; that entry is reported and dropped, and the rest is read again.
//! The mirror stays the only schema: this module knows no key names, only where serde points.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

/// Each problem costs one more pass over the file, so a file that is mostly wrong stops here.
const MAX_PROBLEMS: usize = 100;

/// One problem with the bytes it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub span: Range<usize>,
    pub message: String,
}

/// The mirror read from what was left of the file, and what had to be left out.
#[derive(Debug)]
pub(crate) struct Parsed<T> {
    pub value: T,
    pub problems: Vec<Problem>,
    pub dropped: Dropped,
}

/// Keys left out of the mirror because they were reported already.
#[derive(Debug, Default)]
pub(crate) struct Dropped {
    /// The span of the table each key was in (`None`: the top level) and the key.
    keys: Vec<(Option<Range<usize>>, String)>,
}

impl Dropped {
    /// Whether `key` was dropped from the table at `table`, the span its `Spanned` mirror has:
    /// a check for a required key must then not report it missing as well.
    pub(crate) fn in_table(&self, table: &Range<usize>, key: &str) -> bool {
        self.keys
            .iter()
            .any(|(t, k)| t.as_ref() == Some(table) && k == key)
    }

    /// Whether `key` was dropped from the top level of the file.
    pub(crate) fn at_top(&self, key: &str) -> bool {
        self.keys.iter().any(|(t, k)| t.is_none() && k == key)
    }
}

/// Reads `text` into `T`, leaving out every entry serde refuses. `Err` when the text is not
/// TOML (only the first syntax error is known) or a problem points at nothing that can be
/// left out; either way with every problem found so far.
pub(crate) fn parse<T: DeserializeOwned>(text: &str) -> Result<Parsed<T>, Vec<Problem>> {
    let mut root = DeTable::parse(text).map_err(|e| vec![problem(&e, e.message().to_string())])?;
    let mut problems = Vec::new();
    let mut dropped = Dropped::default();
    loop {
        let error = match T::deserialize(toml::de::Deserializer::from(root.clone())) {
            Ok(value) => {
                return Ok(Parsed {
                    value,
                    problems,
                    dropped,
                });
            }
            Err(error) => error,
        };
        let span = error.span().unwrap_or(0..0);
        let Some(entry) = drop_in_table(root.get_mut(), None, &span) else {
            problems.push(problem(&error, error.message().to_string()));
            return Err(problems);
        };
        problems.push(problem(&error, entry.describe(error.message())));
        if let Some(key) = entry.key {
            dropped.keys.push((entry.table, key));
        }
        if problems.len() >= MAX_PROBLEMS {
            let message = format!("stopped after {MAX_PROBLEMS} problems; fix these first");
            problems.push(problem(&error, message));
            return Err(problems);
        }
    }
}

fn problem(error: &toml::de::Error, message: String) -> Problem {
    Problem {
        span: error.span().unwrap_or(0..0),
        message,
    }
}

/// What was left out: a key with its value, or one item of an array.
struct Entry {
    how: Found,
    /// The keys and array indexes that lead to it from the top level.
    place: Vec<Step>,
    /// The span of the table it was in (`None`: the top level), and its key (`None` for an
    /// array item, which is not recorded as dropped).
    table: Option<Range<usize>>,
    key: Option<String>,
}

#[derive(Clone, Copy)]
enum Found {
    /// serde pointed at the key: it has no place there.
    Key,
    /// serde pointed at the value (or the array item): it has the wrong type.
    Value,
}

enum Step {
    Key(String),
    Item(usize),
}

// === finding and dropping the entry an error points at ===

/// Drops the entry whose key or value spans exactly `span`, looking at a table's own entries
/// before those nested in them (a `[[routes]]` array starts where its first table does).
fn drop_in_table(
    table: &mut DeTable<'_>,
    span_of_table: Option<Range<usize>>,
    span: &Range<usize>,
) -> Option<Entry> {
    let hit = table.iter().find_map(|(key, value)| {
        let how = match () {
            () if key.span() == *span => Found::Key,
            () if value.span() == *span => Found::Value,
            () => return None,
        };
        Some((key.get_ref().to_string(), how))
    });
    if let Some((key, how)) = hit {
        table.remove(key.as_str());
        return Some(Entry {
            how,
            place: vec![Step::Key(key.clone())],
            table: span_of_table,
            key: Some(key),
        });
    }
    table.iter_mut().find_map(|(key, value)| {
        let mut entry = drop_in_value(value, span)?;
        entry.place.insert(0, Step::Key(key.get_ref().to_string()));
        Some(entry)
    })
}

fn drop_in_value(value: &mut Spanned<DeValue<'_>>, span: &Range<usize>) -> Option<Entry> {
    let own_span = value.span();
    match value.get_mut() {
        DeValue::Table(table) => drop_in_table(table, Some(own_span), span),
        DeValue::Array(array) => drop_in_array(array, span),
        _ => None,
    }
}

fn drop_in_array(array: &mut DeArray<'_>, span: &Range<usize>) -> Option<Entry> {
    if let Some(index) = array.iter().position(|item| item.span() == *span) {
        let items = std::mem::replace(array, DeArray::new());
        *array = items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| (i != index).then_some(item))
            .collect();
        return Some(Entry {
            how: Found::Value,
            place: vec![Step::Item(index)],
            table: None,
            key: None,
        });
    }
    array.iter_mut().enumerate().find_map(|(index, item)| {
        let mut entry = drop_in_value(item, span)?;
        entry.place.insert(0, Step::Item(index));
        Some(entry)
    })
}

// === saying what was wrong ===

impl Entry {
    /// serde's message with the place added and Rust's type names put in TOML's words:
    /// "unknown field `lisen` in [server], expected one of `listen`, …".
    fn describe(&self, message: &str) -> String {
        let Some((last, parent)) = self.place.split_last() else {
            return message.to_string();
        };
        let place = match (self.how, last) {
            (Found::Key, _) => format!(" {}", table_name(parent)),
            (Found::Value, Step::Key(key)) => format!(" for `{key}` {}", table_name(parent)),
            (Found::Value, Step::Item(index)) => {
                let (array, table) = parent
                    .split_last()
                    .map_or(("", parent), |(a, t)| (step_key(a), t));
                format!(" for item {} of `{array}` {}", index + 1, table_name(table))
            }
        };
        let Some((found, expected)) = message.rsplit_once(", expected ") else {
            return format!("{message}{place}");
        };
        let found = found
            .replacen("invalid type: map", "invalid type: table", 1)
            .replacen("invalid type: sequence", "invalid type: array", 1);
        let expected = match expected {
            struct_name if struct_name.starts_with("struct ") => "a table",
            "a sequence" => "an array",
            "i64" => "an integer",
            other => other,
        };
        format!("{found}{place}, expected {expected}")
    }
}

/// Where a reader of the file finds a table: "in [server]", "in [[routes]] #2", "at the top level".
fn table_name(place: &[Step]) -> String {
    let keys: Vec<&str> = place.iter().map(step_key).filter(|k| !k.is_empty()).collect();
    match place.last() {
        None => "at the top level".to_string(),
        Some(Step::Item(index)) => format!("in [[{}]] #{}", keys.join("."), index + 1),
        Some(Step::Key(_)) => format!("in [{}]", keys.join(".")),
    }
}

fn step_key(step: &Step) -> &str {
    match step {
        Step::Key(key) => key,
        Step::Item(_) => "",
    }
}

#[cfg(test)]
mod tests;
