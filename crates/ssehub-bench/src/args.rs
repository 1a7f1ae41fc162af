//! A tiny `--flag value` parser, so the binaries need no CLI framework.

use std::collections::HashMap;
use std::str::FromStr;

/// Parsed `--name value` pairs and bare `--switch`es.
#[derive(Debug, Default)]
pub struct Args {
    values: HashMap<String, String>,
}

impl Args {
    /// Parses the process arguments; exits with `usage` on `--help`.
    #[must_use]
    pub fn from_env(usage: &str) -> Self {
        let mut values = HashMap::new();
        let mut it = std::env::args().skip(1).peekable();
        while let Some(arg) = it.next() {
            if arg == "--help" || arg == "-h" {
                println!("{usage}");
                std::process::exit(0);
            }
            let Some(name) = arg.strip_prefix("--") else {
                eprintln!("unexpected argument {arg:?}\n{usage}");
                std::process::exit(2);
            };
            if let Some((k, v)) = name.split_once('=') {
                values.insert(k.to_owned(), v.to_owned());
            } else if it.peek().is_some_and(|next| !next.starts_with("--")) {
                values.insert(name.to_owned(), it.next().unwrap_or_default());
            } else {
                values.insert(name.to_owned(), "true".to_owned());
            }
        }
        Self { values }
    }

    /// The value of `--name`, parsed, or `default`; exits on a bad value.
    #[must_use]
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        match self.values.get(name) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                eprintln!("bad value for --{name}: {v:?}");
                std::process::exit(2);
            }),
        }
    }

    /// The value of `--name` as a string, if given.
    #[must_use]
    pub fn opt(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether `--name` was given (as a switch or `--name true`).
    #[must_use]
    pub fn flag(&self, name: &str) -> bool {
        self.values
            .get(name)
            .is_some_and(|v| v != "false" && v != "0")
    }
}

/// The value of `key` in a URL query string (no percent-decoding: the
/// benchmark only uses plain names and numbers).
#[must_use]
pub fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}
