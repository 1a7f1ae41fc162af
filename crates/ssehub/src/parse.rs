//! Incremental parser for the WHATWG event stream format (work in progress).
