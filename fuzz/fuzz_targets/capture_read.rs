#![no_main]
//! See `wsproxy::fuzzing::check_capture` for the property.

use wstoolkit_fuzz as _;

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsproxy::fuzzing::check_capture(data));
