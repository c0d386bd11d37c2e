#!/usr/bin/env bash
# The test suite, as README.md names it and CI runs it: the whole workspace with
# default features (pure-Rust Opus), then the media crate again with the
# reference libopus backend (needs cmake), whose interop tests run both.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked
cargo test -p tutti-media --features libopus --locked
