//! Integration tests, one binary (see each module's doc for what it covers).

// Shared helpers.
mod common;
// The CLI: exit codes, golden output, JSON decoding.
mod cli;
// Error fixtures with expectations on the offending lines; clean fixtures.
mod fixtures;
// Layer names, shapes and fans per layout.
mod layers;
// Variables and expressions.
mod vars;
// Blocks and topology, and the wave-2 layers' own rules.
mod topology;
// Every initializer against its formula (KS tests), structured inits exact, pinned values.
mod sampling;
// Determinism: runs, threads, inserted layers, seeds, dtypes.
mod determinism;
// Candle: VarBuilder loads the output and runs candle_nn layers; the VarMap builder.
#[cfg(feature = "candle")]
mod candle;
// Sharded output and builds in parts (Slurm, Kubernetes).
mod shards;
// Fuzz seeds and crash regressions replayed through the fuzz targets' code.
mod fuzz_replay;
// Issue 13: a build never destroys the spec, a device or a shard set; hostile inputs.
mod robust;
// from_file: values from safetensors, .npy and sharded sources.
mod from_file;
// `specc verify`: byte comparison, shard sets, format numbers, `--stats`.
mod verify;
// `specc report`: the HTML page, and what it never overwrites.
mod report;
