//! The users file (`users.toml`): reading and validating its `[[user]]` entries.
//!
//! `reload` keeps it current while the gateway runs and `password` checks passwords against
//! it (or against a delegated `check_url`). Like `gateway.toml`, every problem in the file is
//! reported at once as `file:line:col: message`.

mod password;
mod reload;

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;

use argon2::password_hash::phc::PasswordHash;
use serde::Deserialize;
use toml::Spanned;

use crate::config::{ConfigError, ConfigErrors};

pub use password::{Authenticated, LoginError, PasswordCheck, hash_password};
pub use reload::Users;

/// How often a users file is checked for edits.
pub const USERS_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
pub(crate) use reload::{Stamp, stamp};

/// Longest user name accepted; also the longest `sub` accepted from a `check_url`.
const MAX_NAME_BYTES: usize = 128;

/// One `[[user]]` entry.
pub struct User {
    pub name: String,
    pub role: String,
    pub disabled: bool,
    hash: StoredHash,
}

/// A password hash, parsed once when the file is loaded.
enum StoredHash {
    Argon2id(Box<PasswordHash>),
    /// Kept as text: the bcrypt crate verifies against the string form.
    Bcrypt(String),
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .field("password_hash", &"[redacted]")
            .finish()
    }
}

/// The validated contents of users.toml.
#[derive(Debug, Default)]
pub struct UsersFile {
    users: HashMap<String, User>,
}

// === the file as written ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    user: Vec<Spanned<UserToml>>,
}

/// Required keys are optional here so that a missing one is reported with the others.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserToml {
    name: Option<Spanned<String>>,
    password_hash: Option<Spanned<String>>,
    role: Option<Spanned<String>>,
    #[serde(default)]
    disabled: bool,
}

// === impl UsersFile ===

impl UsersFile {
    /// Reads and validates users.toml.
    pub fn load(path: &Path) -> Result<UsersFile, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let mut errors = Errors::new(path, "");
            errors.push(0..0, format!("cannot read users file: {e}"));
            ConfigErrors(errors.list)
        })?;
        UsersFile::parse(path, &text)
    }

    /// Validates users.toml `text` as if read from `path`, reporting every problem at once.
    pub fn parse(path: &Path, text: &str) -> Result<UsersFile, ConfigErrors> {
        let mut errors = Errors::new(path, text);
        let file: FileToml = match toml::from_str(text) {
            Ok(file) => file,
            Err(e) => {
                errors.push(e.span().unwrap_or(0..0), e.message());
                return Err(ConfigErrors(errors.list));
            }
        };
        let mut users = HashMap::with_capacity(file.user.len());
        // Lower-cased names seen so far: "Admin" next to "admin" invites confusion downstream.
        let mut seen = HashMap::with_capacity(file.user.len());
        for entry in file.user {
            let span = entry.span();
            let Some((user, name_span)) = errors.user(entry.into_inner(), span) else {
                continue;
            };
            let key = user.name.to_ascii_lowercase();
            if let Some(line) = seen.get(&key) {
                errors.push(
                    name_span,
                    format!("user {:?} is already defined on line {line}", user.name),
                );
                continue;
            }
            seen.insert(key, line_and_column(text, name_span.start).0);
            users.insert(user.name.clone(), user);
        }
        match errors.list.is_empty() {
            true => Ok(UsersFile { users }),
            false => Err(ConfigErrors(errors.list)),
        }
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }
}

// === checking one entry ===

struct Errors<'a> {
    file: &'a Path,
    text: &'a str,
    list: Vec<ConfigError>,
}

impl<'a> Errors<'a> {
    fn new(file: &'a Path, text: &'a str) -> Self {
        Errors {
            file,
            text,
            list: Vec::new(),
        }
    }

    fn push(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = line_and_column(self.text, span.start);
        let (file, message) = (self.file.to_path_buf(), message.into());
        self.list.push(ConfigError {
            file,
            line,
            column,
            message,
        });
    }

    /// Checks every field of one entry (reporting all its problems); the user and its name's span.
    fn user(&mut self, entry: UserToml, span: Range<usize>) -> Option<(User, Range<usize>)> {
        let UserToml {
            name,
            password_hash,
            role,
            disabled,
        } = entry;
        let name = self.required(name, "name", &span, user_name);
        let role = self.required(role, "role", &span, role_name);
        let hash = self.required(password_hash, "password_hash", &span, parse_hash);
        let ((name, name_span), (role, _), (hash, _)) = (name?, role?, hash?);
        Some((
            User {
                name,
                role,
                disabled,
                hash,
            },
            name_span,
        ))
    }

    fn required<T>(
        &mut self,
        value: Option<Spanned<String>>,
        key: &str,
        entry: &Range<usize>,
        check: impl Fn(&str) -> Result<T, String>,
    ) -> Option<(T, Range<usize>)> {
        let Some(value) = value else {
            self.push(entry.clone(), format!("[[user]] is missing `{key}`"));
            return None;
        };
        match check(value.get_ref()) {
            Ok(checked) => Some((checked, value.span())),
            Err(message) => {
                self.push(value.span(), message);
                None
            }
        }
    }
}

fn user_name(text: &str) -> Result<String, String> {
    match visible_ascii(text) && text.len() <= MAX_NAME_BYTES {
        true => Ok(text.to_string()),
        false => Err(format!(
            "name {text:?} must be 1-{MAX_NAME_BYTES} bytes of visible ASCII"
        )),
    }
}

fn role_name(text: &str) -> Result<String, String> {
    match visible_ascii(text) {
        true => Ok(text.to_string()),
        false => Err(format!("role {text:?} must be non-empty visible ASCII")),
    }
}

/// Non-empty, printable, no spaces or control characters: safe in a header and a JWT claim.
fn visible_ascii(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic())
}

/// Accepts argon2id PHC strings and bcrypt (for migration); the message never echoes the hash.
fn parse_hash(text: &str) -> Result<StoredHash, String> {
    if text.starts_with("$2a$") || text.starts_with("$2b$") || text.starts_with("$2y$") {
        return parse_bcrypt(text);
    }
    let hash = PasswordHash::new(text).map_err(|e| {
        format!("password_hash is not a valid PHC string ({e}); use `portcullis hash-password`")
    })?;
    if hash.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "password_hash uses {}; only argon2id (or bcrypt, for migration) is accepted",
            hash.algorithm
        ));
    }
    // Parsing the parameters now means a verification can never fail for a reason of its own.
    argon2::Params::try_from(&hash)
        .map_err(|e| format!("password_hash has invalid argon2 parameters ({e})"))?;
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err("password_hash lacks a salt or a hash value".to_string());
    }
    Ok(StoredHash::Argon2id(Box::new(hash)))
}

fn parse_bcrypt(text: &str) -> Result<StoredHash, String> {
    let parts: bcrypt::HashParts = text
        .parse()
        .map_err(|e| format!("password_hash is not a valid bcrypt hash ({e})"))?;
    match parts.get_cost() {
        4..=31 => Ok(StoredHash::Bcrypt(text.to_string())),
        cost => Err(format!("bcrypt cost {cost} is outside 4-31")),
    }
}

/// 1-based line and column (in characters) of a byte offset, as editors count them.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
