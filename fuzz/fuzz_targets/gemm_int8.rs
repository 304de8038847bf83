#![no_main]
//! See `bitnet_lab::fuzz_targets::gemm_int8` for the input encoding and the checked properties.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bitnet_lab::fuzz_targets::gemm_int8(data));
