//! The set of a rule's conditions that a request fails, as bits: a rule costs no allocation.

use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Unmet(u8);

impl Unmet {
    pub const NONE: Unmet = Unmet(0);
    pub const ROLES: Unmet = Unmet(1);
    pub const SUBJECTS: Unmet = Unmet(1 << 1);
    pub const IDP: Unmet = Unmet(1 << 2);
    pub const METHODS: Unmet = Unmet(1 << 3);
    pub const PATHS: Unmet = Unmet(1 << 4);
    pub const FROM: Unmet = Unmet(1 << 5);
    pub const MFA: Unmet = Unmet(1 << 6);
    pub const AUTH_AGE: Unmet = Unmet(1 << 7);

    /// Each condition with its key in `[[routes.rules]]`, in the order the file documents them.
    const NAMES: [(Unmet, &'static str); 8] = [
        (Unmet::ROLES, "roles"),
        (Unmet::SUBJECTS, "subjects"),
        (Unmet::IDP, "idp"),
        (Unmet::METHODS, "methods"),
        (Unmet::PATHS, "paths"),
        (Unmet::FROM, "from"),
        (Unmet::MFA, "mfa"),
        (Unmet::AUTH_AGE, "max_auth_age"),
    ];

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, other: Unmet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Some condition fails, and only `mfa` or `max_auth_age`: a step-up can fix it.
    pub fn only_freshness(self) -> bool {
        let freshness = Unmet::MFA.0 | Unmet::AUTH_AGE.0;
        !self.is_empty() && self.0 & !freshness == 0
    }

    pub(super) fn set_if(&mut self, condition: Unmet, fails: bool) {
        if fails {
            self.0 |= condition.0;
        }
    }

    /// The keys of the failed conditions.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Unmet::NAMES
            .into_iter()
            .filter(move |(condition, _)| self.contains(*condition))
            .map(|(_, name)| name)
    }
}

impl fmt::Debug for Unmet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}
