//! A crate's import graph between its source files, read from the source:
//! every `crate::…`, `super::…`, `self::…` path (in `use` trees and in
//! code) and every path through a child module the file declares, resolved
//! to the file that defines the item. Test-only code (`#[cfg(test)]` items
//! and the files they declare) is left out: tests may reach anywhere.
//!
//! A re-export (`pub use child::Item`) is followed to the file that defines
//! the item, so a module that only re-exports its children (a facade) does
//! not stand between its children and the files that use them; it imports
//! the child only when its own code names the item.
//!
//! Shared by `ssehub`'s and `ssehub-server`'s layer tests
//! (`#[path = …] mod imports;`), so both crates are held to the same reading.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A file, named by its path under `src/` (`broker/client.rs`).
pub type File = String;

/// Which file imports which.
#[derive(Debug, Default)]
pub struct Graph {
    /// Edges, from importer to imported (no self-loops).
    pub edges: BTreeMap<File, BTreeSet<File>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Colons,
    Open,
    Close,
    Comma,
    Semi,
    Star,
    /// `#[…]`: the attribute's text.
    Attr(String),
    /// `{` of an item body (not of a `use` tree): kept as `Open`.
    Other,
}

/// The tokens of `text` that paths are made of: comments, strings and
/// character literals are dropped.
fn tokens(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            'r' if next == Some('"') || (next == Some('#') && raw_string_at(&chars, i)) => {
                i += 1;
                let mut hashes = 0;
                while chars[i] == '#' {
                    hashes += 1;
                    i += 1;
                }
                i += 1;
                loop {
                    if i >= chars.len() {
                        break;
                    }
                    if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
                        i += 1 + hashes;
                        break;
                    }
                    i += 1;
                }
            }
            'b' if next == Some('"') || next == Some('\'') => {
                // A byte string or byte: as a string or a character.
                i += 1;
            }
            '\'' => {
                if next == Some('\\') {
                    i += 2;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if chars.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    // A lifetime or a label.
                    i += 1;
                }
            }
            '#' if next == Some('[') || (next == Some('!') && chars.get(i + 2) == Some(&'[')) => {
                let start = i;
                let mut depth = 0;
                while i < chars.len() {
                    match chars[i] {
                        '[' => depth += 1,
                        ']' => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                out.push(Token::Attr(chars[start..i].iter().collect()));
            }
            ':' if next == Some(':') => {
                out.push(Token::Colons);
                i += 2;
            }
            '{' => {
                out.push(Token::Open);
                i += 1;
            }
            '}' => {
                out.push(Token::Close);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            ';' => {
                out.push(Token::Semi);
                i += 1;
            }
            '*' => {
                out.push(Token::Star);
                i += 1;
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push(Token::Ident(chars[start..i].iter().collect()));
            }
            c if c.is_whitespace() => i += 1,
            _ => {
                out.push(Token::Other);
                i += 1;
            }
        }
    }
    out
}

fn raw_string_at(chars: &[char], i: usize) -> bool {
    let mut j = i + 1;
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    chars.get(j) == Some(&'"')
}

/// Whether an attribute leaves its item out of a non-test build.
fn test_only(attr: &str) -> bool {
    let attr: String = attr.chars().filter(|c| !c.is_whitespace()).collect();
    attr.starts_with("#[cfg(test)")
        || attr.starts_with("#[cfg(all(test,")
        || attr.starts_with("#[cfg(all(ssehub_loom,test")
}

/// `tokens` without test-only items; the `mod name;` declarations among
/// those are returned, their files being test-only too.
fn without_tests(tokens: Vec<Token>) -> (Vec<Token>, Vec<String>) {
    let mut out = Vec::new();
    let mut test_mods = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if let Token::Attr(attr) = &tokens[i]
            && test_only(attr)
        {
            // Skip further attributes, then the item: up to its `;` or
            // through its balanced `{ … }`.
            i += 1;
            while matches!(tokens.get(i), Some(Token::Attr(_))) {
                i += 1;
            }
            let start = i;
            let mut depth = 0;
            while i < tokens.len() {
                match tokens[i] {
                    Token::Open => depth += 1,
                    Token::Close => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    Token::Semi if depth == 0 => {
                        i += 1;
                        break;
                    }
                    _ => {}
                }
                i += 1;
            }
            let item = &tokens[start..i];
            if let [.., Token::Ident(m), Token::Ident(name), Token::Semi] = item
                && m == "mod"
            {
                test_mods.push(name.clone());
            }
            continue;
        }
        out.push(tokens[i].clone());
        i += 1;
    }
    (out, test_mods)
}

/// One path a file names, and whether it stands in a `pub use`.
#[derive(Debug, Clone)]
struct Named {
    path: Vec<String>,
    reexport: bool,
}

/// Expands a `use` tree starting at `tokens[*i]` with `prefix`.
fn use_tree(tokens: &[Token], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        match tokens.get(*i) {
            Some(Token::Ident(name)) if name == "as" => {
                *i += 2;
                out.push(path);
                return;
            }
            Some(Token::Ident(name)) => {
                path.push(name.clone());
                *i += 1;
            }
            Some(Token::Colons) => *i += 1,
            Some(Token::Star) => {
                *i += 1;
                out.push(path);
                return;
            }
            Some(Token::Open) => {
                *i += 1;
                loop {
                    match tokens.get(*i) {
                        Some(Token::Close) => {
                            *i += 1;
                            return;
                        }
                        Some(Token::Comma) => *i += 1,
                        None => return,
                        _ => use_tree(tokens, i, path.clone(), out),
                    }
                }
            }
            _ => {
                out.push(path);
                return;
            }
        }
    }
}

/// Every path `tokens` name that starts with `crate`, `super`, `self` or
/// one of `children`.
fn paths(tokens: &[Token], children: &HashSet<String>) -> Vec<Named> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] == Token::Ident("use".into()) {
            let reexport = i > 0
                && (tokens[i - 1] == Token::Ident("pub".into())
                    || (tokens[i - 1] == Token::Other
                        && matches!(tokens.get(i.wrapping_sub(2)), Some(Token::Ident(_)))
                        && i >= 4
                        && tokens[i - 4] == Token::Ident("pub".into())));
            i += 1;
            let mut trees = Vec::new();
            use_tree(tokens, &mut i, Vec::new(), &mut trees);
            for path in trees {
                // Other crates' paths (`std::…`, `tokio::…`) are not files here.
                let local = path.first().is_some_and(|first| {
                    matches!(first.as_str(), "crate" | "super" | "self") || children.contains(first)
                });
                if local {
                    out.push(Named { path, reexport });
                }
            }
            continue;
        }
        if let Token::Ident(first) = &tokens[i] {
            let preceded_by_colons = i > 0 && tokens[i - 1] == Token::Colons;
            let starts = first == "crate" || first == "super" || first == "self";
            if !preceded_by_colons
                && (starts || children.contains(first))
                && tokens.get(i + 1) == Some(&Token::Colons)
            {
                let mut path = vec![first.clone()];
                let mut j = i + 1;
                while tokens.get(j) == Some(&Token::Colons) {
                    match tokens.get(j + 1) {
                        Some(Token::Ident(name)) => {
                            path.push(name.clone());
                            j += 2;
                        }
                        _ => break,
                    }
                }
                out.push(Named {
                    path,
                    reexport: false,
                });
                i = j;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// One source file, read.
#[derive(Debug)]
struct Source {
    /// Its module path (`["broker", "client"]`).
    module: Vec<String>,
    tokens: Vec<Token>,
    named: Vec<Named>,
}

/// The crate whose root is `src/lib.rs`, read.
struct Crate {
    src: PathBuf,
    files: BTreeMap<File, Source>,
}

fn module_of(file: &str) -> Vec<String> {
    let file = file.strip_suffix(".rs").expect("a .rs file");
    let mut parts: Vec<String> = file.split('/').map(String::from).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

impl Crate {
    fn read(src: &Path) -> Crate {
        let mut krate = Crate {
            src: src.to_path_buf(),
            files: BTreeMap::new(),
        };
        krate.visit(Vec::new());
        krate
    }

    /// The file of `module`, if it is one.
    fn file_of(&self, module: &[String]) -> Option<File> {
        if module.is_empty() {
            return Some("lib.rs".into());
        }
        let joined = module.join("/");
        [format!("{joined}.rs"), format!("{joined}/mod.rs")]
            .into_iter()
            .find(|f| self.src.join(f).is_file())
    }

    fn visit(&mut self, module: Vec<String>) {
        let file = self.file_of(&module).expect("a module's file");
        let text = fs::read_to_string(self.src.join(&file)).expect("a source file");
        let (tokens, test_mods) = without_tests(tokens(&text));
        let mut children = HashSet::new();
        for w in tokens.windows(3) {
            if let [Token::Ident(m), Token::Ident(name), Token::Semi] = w
                && m == "mod"
            {
                children.insert(name.clone());
            }
        }
        let named = paths(&tokens, &children);
        self.files.insert(
            file,
            Source {
                module: module.clone(),
                tokens,
                named,
            },
        );
        for child in children {
            if test_mods.contains(&child) {
                continue;
            }
            let mut path = module.clone();
            path.push(child);
            if self.file_of(&path).is_some() {
                self.visit(path);
            }
        }
    }

    /// `path` as named in the module `from`, made absolute (from the root).
    fn absolute(&self, from: &[String], path: &[String]) -> Vec<String> {
        let mut module = from.to_vec();
        let mut rest = path;
        match rest.first().map(String::as_str) {
            Some("crate") => {
                module.clear();
                rest = &rest[1..];
            }
            _ => {
                while let Some(first) = rest.first() {
                    match first.as_str() {
                        "super" => {
                            module.pop();
                        }
                        "self" => {}
                        _ => break,
                    }
                    rest = &rest[1..];
                }
            }
        }
        module.extend(rest.iter().cloned());
        module
    }

    /// The file that defines what the absolute `path` names: the deepest
    /// module file on it, or the file a re-export there leads to.
    fn resolve(&self, path: &[String], seen: &mut HashSet<Vec<String>>) -> File {
        if !seen.insert(path.to_vec()) {
            return self.file_of(&[]).expect("the root");
        }
        let mut module = Vec::new();
        for segment in path {
            let mut deeper = module.clone();
            deeper.push(segment.clone());
            if self.file_of(&deeper).is_some()
                && self.files.contains_key(&self.file_of(&deeper).unwrap())
            {
                module = deeper;
                continue;
            }
            let file = self.file_of(&module).expect("a module's file");
            // A re-export of `segment` here leads to its file.
            let source = &self.files[&file];
            for named in &source.named {
                if named.reexport && named.path.last() == Some(segment) {
                    let target = self.absolute(&source.module, &named.path);
                    if target != path {
                        return self.resolve(&target, seen);
                    }
                }
            }
            return file;
        }
        self.file_of(&module).expect("a module's file")
    }

    fn graph(&self) -> Graph {
        let mut graph = Graph::default();
        for (file, source) in &self.files {
            let edges = graph.edges.entry(file.clone()).or_default();
            for named in &source.named {
                if named.reexport {
                    // A facade: an import only if the file's own code
                    // names the item besides.
                    let name = named.path.last().expect("a non-empty path");
                    let uses = source
                        .tokens
                        .iter()
                        .filter(|t| **t == Token::Ident(name.clone()))
                        .count();
                    if uses <= 1 {
                        continue;
                    }
                }
                let absolute = self.absolute(&source.module, &named.path);
                let target = self.resolve(&absolute, &mut HashSet::new());
                if &target != file {
                    edges.insert(target);
                }
            }
        }
        graph
    }
}

/// The import graph of the crate whose sources are in `src`.
pub fn graph(src: &Path) -> Graph {
    Crate::read(src).graph()
}

impl Graph {
    /// The groups of files that import each other in a circle (strongly
    /// connected components of more than one file), each sorted.
    pub fn circles(&self) -> Vec<Vec<File>> {
        // Tarjan's algorithm, iteratively small enough to be recursive here.
        struct State<'a> {
            graph: &'a Graph,
            index: HashMap<&'a str, usize>,
            low: HashMap<&'a str, usize>,
            stack: Vec<&'a str>,
            on_stack: HashSet<&'a str>,
            next: usize,
            found: Vec<Vec<File>>,
        }
        fn connect<'a>(s: &mut State<'a>, v: &'a str) {
            s.index.insert(v, s.next);
            s.low.insert(v, s.next);
            s.next += 1;
            s.stack.push(v);
            s.on_stack.insert(v);
            let graph = s.graph;
            for w in graph.edges.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    connect(s, w);
                    let low = s.low[v].min(s.low[w]);
                    s.low.insert(v, low);
                } else if s.on_stack.contains(w) {
                    let low = s.low[v].min(s.index[w]);
                    s.low.insert(v, low);
                }
            }
            if s.low[v] == s.index[v] {
                let mut group = Vec::new();
                loop {
                    let w = s.stack.pop().expect("on the stack");
                    s.on_stack.remove(w);
                    group.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    s.found.push(group);
                }
            }
        }
        let mut state = State {
            graph: self,
            index: HashMap::new(),
            low: HashMap::new(),
            stack: Vec::new(),
            on_stack: HashSet::new(),
            next: 0,
            found: Vec::new(),
        };
        for v in self.edges.keys() {
            if !state.index.contains_key(v.as_str()) {
                connect(&mut state, v);
            }
        }
        state.found.sort();
        state.found
    }

    /// The edges between files of `group` (each "a -> b").
    pub fn edges_within(&self, group: &[File]) -> Vec<String> {
        let mut out = Vec::new();
        for a in group {
            for b in self.edges.get(a).into_iter().flatten() {
                if group.contains(b) {
                    out.push(format!("{a} -> {b}"));
                }
            }
        }
        out
    }

    /// The graph without the edges `allowed` lists (pairs, both ways).
    pub fn without(&self, allowed: &[(&str, &str)]) -> Graph {
        let mut edges = self.edges.clone();
        for (a, b) in allowed {
            for (from, to) in [(a, b), (b, a)] {
                if let Some(set) = edges.get_mut(*from) {
                    set.remove(*to);
                }
            }
        }
        Graph { edges }
    }
}

/// A pair of files allowed to import each other, and why.
pub type AllowedCircle = (&'static str, &'static str, &'static str);

/// The pairs of `allowed`, without their reasons.
fn pairs(allowed: &[AllowedCircle]) -> Vec<(&'static str, &'static str)> {
    allowed.iter().map(|(a, b, _)| (*a, *b)).collect()
}

/// Asserts that no files of the crate at `src` import each other, through
/// any number of others, but the pairs in `allowed` (each allowed both
/// ways); a failure lists each circle's files, then their imports.
pub fn assert_no_circles(src: &Path, allowed: &[AllowedCircle]) {
    let graph = graph(src).without(&pairs(allowed));
    let circles: Vec<Vec<String>> = graph
        .circles()
        .into_iter()
        .map(|group| {
            let edges = graph.edges_within(&group);
            group.into_iter().chain(edges).collect()
        })
        .collect();
    assert_eq!(
        circles,
        Vec::<Vec<String>>::new(),
        "files, then their imports"
    );
}

/// Asserts that each pair in `allowed` still imports each other both ways:
/// an entry that no longer does is stale.
pub fn assert_each_is_a_circle(src: &Path, allowed: &[AllowedCircle]) {
    let graph = graph(src);
    for (a, b) in pairs(allowed) {
        let both = graph.edges.get(a).is_some_and(|to| to.contains(b))
            && graph.edges.get(b).is_some_and(|to| to.contains(a));
        assert!(both, "{a} and {b} do not import each other");
    }
}
