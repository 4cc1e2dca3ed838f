#![no_main]
//! See `fuzz_props::check_endpoint` for the property.

use wstoolkit_fuzz as _;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_props::check_endpoint(data));
