//! Any bytes as a safetensors file for `specc inspect`: an error or statistics, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = specc::inspect::inspect_bytes(data);
});
