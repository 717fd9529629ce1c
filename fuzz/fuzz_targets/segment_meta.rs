//! Fuzz target: the segment meta file decoder must never panic, whatever the bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    strata_engine::fuzzing::segment_meta(data);
});
