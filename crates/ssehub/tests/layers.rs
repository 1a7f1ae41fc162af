//! The library's layers, checked on its source: protocol → stream → log →
//! broker → edges (DESIGN.md, "Layers"), each module importing only from
//! the layers below it, and the broker's fan-out knowing no socket and no
//! HTTP framing (those are the edges', behind `broker/transport.rs`).
//!
//! Comments are left out, so documentation may still point anywhere.
//!
//! Within a layer, files import one way too: no circles between files
//! but the owner/handle pairs of `ALLOWED_CIRCLES`.

#[path = "support/imports.rs"]
mod imports;

use std::fs;
use std::path::{Path, PathBuf};

/// How code names each layer (a module below may name none of those above).
const EDGES: &[&str] = &[
    "crate::server",
    "crate::axum",
    "crate::io",
    "crate::eventsource",
    "crate::chunked",
];
const BROKER: &str = "crate::broker";
const LOG: &str = "crate::journal";
const STREAM: &[&str] = &["crate::stream", "crate::http", "crate::respond"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir` (or `dir` itself), with its code: each
/// line cut at `//`.
fn code_of(path: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    if path.is_dir() {
        let mut entries: Vec<_> = fs::read_dir(path)
            .expect("a source directory")
            .map(|e| e.expect("an entry").path())
            .collect();
        entries.sort();
        for entry in entries {
            files.extend(code_of(&entry));
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        let text = fs::read_to_string(path).expect("a source file");
        let code = text
            .lines()
            .map(|line| line.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        files.push((path.to_path_buf(), code));
    }
    files
}

/// The names in `forbidden` that `paths` use, as "file: name".
fn uses(paths: &[&str], forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for path in paths {
        for (file, code) in code_of(&src().join(path)) {
            for name in forbidden {
                if code.contains(name) {
                    found.push(format!("{}: {name}", file.display()));
                }
            }
        }
    }
    found
}

#[test]
fn the_protocol_imports_nothing_above_it() {
    let mut forbidden = EDGES.to_vec();
    forbidden.extend(STREAM);
    forbidden.extend([BROKER, LOG]);
    assert_eq!(
        uses(&["event.rs", "parse.rs"], &forbidden),
        Vec::<String>::new()
    );
}

#[test]
fn streams_import_neither_the_log_nor_the_broker_nor_an_edge() {
    let mut forbidden = EDGES.to_vec();
    forbidden.extend([BROKER, LOG]);
    assert_eq!(
        uses(&["stream", "http.rs"], &forbidden),
        Vec::<String>::new()
    );
}

#[test]
fn the_log_knows_no_stream_broker_or_edge() {
    let mut forbidden = EDGES.to_vec();
    forbidden.extend(STREAM);
    forbidden.push(BROKER);
    assert_eq!(uses(&["journal"], &forbidden), Vec::<String>::new());
}

#[test]
fn the_broker_imports_no_edge_and_holds_no_socket() {
    let mut forbidden = EDGES.to_vec();
    // The fan-out writes through `Transport`; sockets and framing are the
    // edges'.
    forbidden.extend(["TcpStream", "tokio::net", "size_line"]);
    assert_eq!(uses(&["broker"], &forbidden), Vec::<String>::new());
}

#[test]
fn the_check_sees_an_import_when_there_is_one() {
    // The server does import the broker: a check that found nothing here
    // would be reading the wrong files.
    assert!(!uses(&["server.rs"], &[BROKER]).is_empty());
    assert!(!uses(&["broker"], &["crate::stream"]).is_empty());
}

/// Files that import each other on purpose: an owner and the handles on
/// it, inside one concept. Each pair is allowed both ways; any other
/// circle fails `no_file_imports_in_a_circle`.
const ALLOWED_CIRCLES: &[imports::AllowedCircle] = &[
    (
        "broker/mod.rs",
        "broker/channel.rs",
        "the broker owns its channels; a channel holds a weak handle on the broker to publish",
    ),
    (
        "broker/mod.rs",
        "broker/client.rs",
        "the broker owns its clients; a client holds a weak handle on it to leave and to subscribe",
    ),
    (
        "broker/mod.rs",
        "broker/replica.rs",
        "the broker owns the journal replica; the replica publishes through the broker it follows for",
    ),
    (
        "broker/channel.rs",
        "broker/client.rs",
        "a client holds the channels it is in; a channel hands its members back as clients \
         (the public `Channel::subscribe(&Client)`)",
    ),
    (
        "broker/client.rs",
        "broker/replica.rs",
        "a client's resume from the journal runs in `replica.rs`, on the client's own state",
    ),
    (
        "eventsource/mod.rs",
        "eventsource/builder.rs",
        "`EventSource::builder()` returns the builder, which builds the `EventSource`",
    ),
];

#[test]
fn no_file_imports_in_a_circle() {
    imports::assert_no_circles(&src(), ALLOWED_CIRCLES);
}

#[test]
fn every_allowed_circle_is_one() {
    imports::assert_each_is_a_circle(&src(), ALLOWED_CIRCLES);
}

#[test]
fn the_circle_check_sees_a_circle_when_there_is_one() {
    let graph = imports::graph(&src());
    assert!(!graph.circles().is_empty());
    // Re-exports are followed to the file that defines the item.
    assert!(graph.edges["broker/channel.rs"].contains("broker/client.rs"));
    assert!(graph.edges["stream/body.rs"].contains("stream/sender.rs"));
}
