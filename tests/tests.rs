//! Integration tests, one binary (see each module's doc for what it covers).

// The CLI: exit codes, golden output, JSON decoding.
mod cli;
