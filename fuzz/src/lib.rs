//! The fuzz targets' bodies, shared with the regression test `tests/fuzz_regressions.rs`.

pub mod targets;
