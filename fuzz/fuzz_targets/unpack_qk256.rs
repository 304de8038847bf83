#![no_main]
//! See `bitnet_lab::fuzz_targets::unpack_qk256` for the input encoding and the checked properties.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bitnet_lab::fuzz_targets::unpack_qk256(data));
