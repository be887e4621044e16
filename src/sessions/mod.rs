//! Who may log in and, with the sessions issue, the sessions they hold.

pub mod users;
