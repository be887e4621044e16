//! The fuzz targets of fuzz/ (token verification, path normalisation, config parsing, cookie
//! parsing) replayed on the normal, uninstrumented `cargo test` build.
//!
//! Covers: every committed seed (fuzz/seeds/<target>/) and every minimised crash
//! (fuzz/regressions/<target>/) through the same target body the fuzzer runs, which panics
//! when one of its invariants breaks (see fuzz/src/targets.rs and fuzz/README.md); plus a
//! short deterministic mutation pass over the seeds, so that the invariants are exercised
//! beyond the fixed inputs on every run; and, by name, the four findings of the first
//! fuzzing pass (`FINDINGS`), fixed in src/ since.
//!
//! And the coverage-guided search itself, bounded: `fuzz_targets_run_clean_for_a_bounded_time`
//! runs `fuzz/run.sh` (its own instrumented build, then every target for
//! `PORTCULLIS_FUZZ_SECONDS`, default 20, two at a time); a crash is minimised into
//! fuzz/regressions/<target>/, where the tests above replay it from then on.
//!
//! Leaves out: anything over the network (the tests/adversarial/ suites).

mod support;

#[path = "../fuzz/src/targets.rs"]
#[allow(dead_code)]
mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;

use support::rng::Rng;

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("token", targets::token),
    ("path", targets::path),
    ("config", targets::config),
    ("cookie", targets::cookie),
];

/// Fewest seeds each target must have, so that a lost corpus fails here, not silently.
const MIN_SEEDS: usize = 4;
/// Mutations per target in the deterministic pass (bounded: the whole file runs in seconds).
const MUTATIONS_PER_TARGET: usize = 1500;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted, without hidden ones (none when it does not exist).
fn files(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    let mut files: Vec<PathBuf> = entries.map(|e| e.path()).collect();
    let hidden = |p: &PathBuf| {
        p.file_name()
            .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
    };
    files.retain(|p| p.is_file() && !hidden(p));
    files.sort();
    files
}

/// Runs one input; `Err` carries the panic message.
fn run(target: Target, input: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| target(input))).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

/// Findings of this fuzzing pass, fixed in src/ since; each must keep holding.
const FINDINGS: &[(&str, &str, &str)] = &[
    (
        "token",
        "exp-near-u64-max",
        "a signed token with exp near u64::MAX overflowed `exp + leeway` on the cache-hit path",
    ),
    (
        "path",
        "dot-segment-encoded-semicolon",
        "`/public/..%3B/admin` passed; a backend that decodes once and strips ;params sees `..`",
    ),
    (
        "config",
        "invalid-route-name",
        "an invalid route name panicked validation (its fallback default did not parse)",
    ),
    (
        "config",
        "invalid-redirect-listen",
        "an invalid redirect_listen panicked validation (its fallback default did not parse)",
    ),
];

#[test]
fn fixed_findings_stay_fixed() {
    let mut failures = Vec::new();
    for &(target, file, finding) in FINDINGS {
        let &(_, function) = TARGETS
            .iter()
            .find(|(name, _)| *name == target)
            .expect("a known target");
        let path = fuzz_dir().join("regressions").join(target).join(file);
        let input = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(message) = run(function, &input) {
            failures.push(format!("{target}/{file} ({finding}) is back: {message}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_seed_and_regression_input_holds_the_invariants() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for &(name, target) in TARGETS {
        let seeds = files(&fuzz_dir().join("seeds").join(name));
        if seeds.len() < MIN_SEEDS {
            failures.push(format!(
                "{name}: only {} seed files in fuzz/seeds/{name}/",
                seeds.len()
            ));
        }
        let regressions = files(&fuzz_dir().join("regressions").join(name));
        for file in seeds.iter().chain(&regressions) {
            let input = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            ran += 1;
            if let Err(message) = run(target, &input) {
                failures.push(format!("{name} {}: {message}", file.display()));
            }
        }
    }
    assert!(ran > 0, "no fuzz inputs found under {}", fuzz_dir().display());
    assert!(
        failures.is_empty(),
        "{} of {ran} inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// libFuzzer-like mutations: flip, insert, erase, duplicate a chunk, splice another seed,
/// insert an interesting token. The first byte (a mode selector for `token`) is kept.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8], interesting: &[&[u8]]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = 1.min(out.len()) + rng.below(out.len().saturating_sub(1) + 1);
        let at = at.min(out.len());
        match rng.below(6) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 => out.insert(at, rng.next() as u8),
            2 if at < out.len() => {
                out.remove(at);
            }
            3 => {
                let end = (at + rng.below(16)).min(out.len());
                let chunk = out[at..end].to_vec();
                out.splice(at..at, chunk);
            }
            4 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + rng.below(32)).min(other.len());
                out.splice(at.., other[from..end].iter().copied());
            }
            _ => {
                let token = interesting[rng.below(interesting.len())];
                out.splice(at..at, token.iter().copied());
            }
        }
    }
    out
}

#[test]
fn mutated_seeds_hold_the_invariants() {
    const INTERESTING: &[&[u8]] = &[
        b"..",
        b"%2e",
        b"%2F",
        b"%3B",
        b";",
        b"\\",
        b"%00",
        b"=",
        b"\"",
        b"\n",
        b"\x00",
        b"\xff",
        b"18446744073709551615",
        b"4000000005",
        b"[",
        b"}",
        b"\"sub\"",
        b"__Host-portcullis-access",
    ];
    let mut failures = Vec::new();
    for (i, &(name, target)) in TARGETS.iter().enumerate() {
        let seeds: Vec<Vec<u8>> = files(&fuzz_dir().join("seeds").join(name))
            .iter()
            .filter_map(|f| std::fs::read(f).ok())
            .collect();
        if seeds.is_empty() {
            failures.push(format!("{name}: no seeds"));
            continue;
        }
        // A fixed seed, so that a failure here reproduces.
        let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
        for n in 0..MUTATIONS_PER_TARGET {
            let other = rng.below(seeds.len());
            let input = mutate(&mut rng, &seeds[n % seeds.len()], &seeds[other], INTERESTING);
            if let Err(message) = run(target, &input) {
                failures.push(format!(
                    "{name} mutation {n} of {:?}: {message}",
                    String::from_utf8_lossy(&input)
                ));
                if failures.len() > 20 {
                    break;
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mutated inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Seconds per target when `PORTCULLIS_FUZZ_SECONDS` is not set.
const DEFAULT_FUZZ_SECONDS: &str = "20";

/// The libFuzzer run, bounded: the first call builds the instrumented targets (about four
/// minutes on two cores, then only what changed). `PORTCULLIS_FUZZ_SECONDS=0` skips it, for
/// a quick local `cargo test`; CI always runs it.
#[test]
fn fuzz_targets_run_clean_for_a_bounded_time() {
    let seconds = std::env::var("PORTCULLIS_FUZZ_SECONDS").unwrap_or_else(|_| DEFAULT_FUZZ_SECONDS.into());
    if seconds.trim() == "0" {
        eprintln!("PORTCULLIS_FUZZ_SECONDS=0: the coverage-guided run is skipped");
        return;
    }
    let output = Command::new("bash")
        .arg(fuzz_dir().join("run.sh"))
        .arg(seconds.trim())
        .env("FUZZ_JOBS", "2")
        .env("FUZZ_MINIMIZE_SECONDS", "30")
        .output()
        .expect("bash runs fuzz/run.sh");
    let log = String::from_utf8_lossy(&output.stdout);
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "fuzz/run.sh failed ({}); a crash input is now in fuzz/regressions/:\n{log}\n{}",
        output.status,
        errors
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The run really fuzzed: libFuzzer prints its final stats per target.
    let finished = log.matches("stat::number_of_executed_units").count();
    assert_eq!(finished, 4, "every target must report its runs:\n{log}");
}
