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

use crate::config::ConfigErrors;
use crate::config::problems::Problems;

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
            let mut problems = Problems::new(path, "");
            problems.push(0..0, format!("cannot read users file: {e}"));
            problems.into_errors()
        })?;
        UsersFile::parse(path, &text)
    }

    /// Validates users.toml `text` as if read from `path`, reporting every problem at once.
    pub fn parse(path: &Path, text: &str) -> Result<UsersFile, ConfigErrors> {
        let mut problems = Problems::new(path, text);
        let Some(file) = problems.read::<FileToml>() else {
            return Err(problems.into_errors());
        };
        let mut users = HashMap::with_capacity(file.user.len());
        // Lower-cased names seen so far: "Admin" next to "admin" invites confusion downstream.
        let mut seen = HashMap::with_capacity(file.user.len());
        for entry in file.user {
            let span = entry.span();
            let Some((user, name_span)) = user(&mut problems, entry.into_inner(), span) else {
                continue;
            };
            let key = user.name.to_ascii_lowercase();
            if let Some(line) = seen.get(&key) {
                problems.push(
                    name_span,
                    format!("user {:?} is already defined on line {line}", user.name),
                );
                continue;
            }
            seen.insert(key, problems.line_of(name_span.start));
            users.insert(user.name.clone(), user);
        }
        problems.finish(UsersFile { users })
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

/// Checks every field of one entry (reporting all its problems); the user and its name's span.
fn user(problems: &mut Problems<'_>, entry: UserToml, span: Range<usize>) -> Option<(User, Range<usize>)> {
    let UserToml {
        name,
        password_hash,
        role,
        disabled,
    } = entry;
    let name = required(problems, name, "name", &span, user_name);
    let role = required(problems, role, "role", &span, role_name);
    let hash = required(problems, password_hash, "password_hash", &span, parse_hash);
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
    problems: &mut Problems<'_>,
    value: Option<Spanned<String>>,
    key: &str,
    entry: &Range<usize>,
    check: impl Fn(&str) -> Result<T, String>,
) -> Option<(T, Range<usize>)> {
    let Some(value) = value else {
        problems.missing(entry, "[[user]]", key);
        return None;
    };
    match check(value.get_ref()) {
        Ok(checked) => Some((checked, value.span())),
        Err(message) => {
            problems.push(value.span(), message);
            None
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

#[cfg(test)]
mod tests;
