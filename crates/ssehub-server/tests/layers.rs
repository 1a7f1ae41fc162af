//! The hub's files import one way: no two files import each other, through
//! any number of others, but the owner/handle pairs of `ALLOWED_CIRCLES`.
//! The graph is read from the source as `ssehub`'s layer test reads the
//! library's (the same reader, `crates/ssehub/tests/support/imports.rs`).

#[path = "../../ssehub/tests/support/imports.rs"]
mod imports;

use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Files that import each other on purpose: an owner and the handles on
/// it, inside one concept. Each pair is allowed both ways; any other
/// circle fails `no_file_imports_in_a_circle`.
const ALLOWED_CIRCLES: &[imports::AllowedCircle] = &[];

#[test]
fn no_file_imports_in_a_circle() {
    imports::assert_no_circles(&src(), ALLOWED_CIRCLES);
}

#[test]
fn every_allowed_circle_is_one() {
    imports::assert_each_is_a_circle(&src(), ALLOWED_CIRCLES);
}

#[test]
fn the_reader_sees_the_imports_there_are() {
    // A check that found no edge would be reading the wrong files.
    let graph = imports::graph(&src());
    assert!(graph.edges["routes/mod.rs"].contains("routes/subscribe.rs"));
    assert!(graph.edges["routes/subscribe.rs"].contains("routes/app.rs"));
    // Re-exports are followed to the file that defines the item.
    assert!(graph.edges["lean.rs"].contains("routes/app.rs"));
    // Test-only files are left out.
    assert!(!graph.edges.contains_key("auth/tests.rs"));
}
