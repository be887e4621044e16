//! Data-driven tests run every case, collect the failing ones by name, and fail once.

/// Fails the test listing every failure of `what` at once.
pub fn assert_none_failed(what: &str, failures: &[String]) {
    let n = failures.len();
    assert!(n == 0, "{what}: {n} case(s) failed:\n\n{}", failures.join("\n\n"));
}
