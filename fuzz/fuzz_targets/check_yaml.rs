//! Any bytes, read as a YAML spec: parse, lower, resolve, lint; must never panic or hang.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let src = match specc::SourceFile::from_bytes("fuzz.yaml", data.to_vec()) {
        Ok(s) => s,
        Err((s, _)) => s,
    };
    let _ = specc::check(&src);
});
