//! Adversarial suite: smuggling (issue 9). See the README's security section.

#[path = "../support/mod.rs"]
mod support;
