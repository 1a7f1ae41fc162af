//! URI Templates (RFC 6570) as topic selectors, for compatibility mode.
//!
//! Mercure 0.x clients select topics with `topic=` and grant them with bare
//! strings in the legacy `mercure` claim. Such a selector matches a topic
//! when the two are byte-for-byte equal (the caller checks that) or when
//! the selector is a URI Template with at least one expression and the
//! topic could be its expansion for some variable values. So
//! `https://example.com/books/{id}` matches `https://example.com/books/7`
//! and `https://example.com/books/` (a variable may expand to nothing), but
//! not `https://example.com/books/7/chapters`, because a simple expression
//! never produces a `/`; `https://example.com/{+path}` matches
//! `https://example.com/a/b?c=d`, because reserved expansion keeps `/`, `?`
//! and `=`.
//!
//! A template becomes one anchored regular expression on the `regex` crate,
//! whose matching time is linear in the topic: templates come from
//! untrusted clients and must not be able to backtrack catastrophically.
//! The translation is permissive where exactness would cost size: a prefix
//! modifier (`{var:3}`) does not bound the length of the value.

use regex::{Regex, RegexBuilder};

/// The most memory one compiled template may take; a larger one is refused
/// rather than paid for, since any client can send one.
const SIZE_LIMIT: usize = 1 << 20;

/// A compiled RFC 6570 URI Template, for matching topics against it.
#[derive(Clone, Debug)]
pub(crate) struct UriTemplate {
    /// The whole template as an anchored pattern.
    regex: Regex,
}

impl UriTemplate {
    /// Compiles `template`. `None` when it holds no expression (it is then
    /// a plain string, matched exactly by the caller) or is not a valid
    /// RFC 6570 template (unbalanced braces, a bad variable name, an
    /// operator reserved for future use such as `=`, `,`, `!`, `@`, `|`,
    /// a bad prefix modifier, a literal character RFC 6570 forbids).
    pub(crate) fn parse(template: &str) -> Option<Self> {
        let mut pattern = String::from(r"\A");
        let mut expressions = 0_usize;
        let mut rest = template;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let (inner, tail) = after.split_once('}')?;
                pattern.push_str(&expression(inner)?);
                expressions += 1;
                rest = tail;
            } else {
                let (text, tail) = rest.split_at(rest.find('{').unwrap_or(rest.len()));
                if !valid_chars(text, is_literal) {
                    return None;
                }
                pattern.push_str(&regex::escape(text));
                rest = tail;
            }
        }
        if expressions == 0 {
            return None;
        }
        pattern.push_str(r"\z");
        let regex = RegexBuilder::new(&pattern)
            .size_limit(SIZE_LIMIT)
            // The size limit does not cover the lazy DFA's per-thread cache.
            .dfa_size_limit(SIZE_LIMIT)
            .build()
            .ok()?;
        Some(Self { regex })
    }

    /// Whether `topic` could be an expansion of the template.
    pub(crate) fn matches(&self, topic: &str) -> bool {
        self.regex.is_match(topic)
    }
}

/// How an expression's operator shapes its expansion (RFC 6570 §3.2.1).
struct Operator {
    /// What a non-empty expansion starts with.
    first: &'static str,
    /// What joins the values of several variables or of an exploded one.
    separator: &'static str,
    /// Whether values come as `name=value` (`;`, `?`, `&`).
    named: bool,
    /// Whether reserved characters pass through unencoded (`+`, `#`).
    reserved: bool,
}

impl Operator {
    /// An operator's shape, for the table in [`Operator::of`].
    const fn new(
        first: &'static str,
        separator: &'static str,
        named: bool,
        reserved: bool,
    ) -> Self {
        Self {
            first,
            separator,
            named,
            reserved,
        }
    }

    /// The operator an expression starts with, if any, and the rest. The
    /// operators reserved for future use (`= , ! @ |`) are not recognised
    /// here: read as part of a variable name, they are rejected there.
    fn of(expression: &str) -> (Self, &str) {
        let operator = match expression.as_bytes().first() {
            Some(b'+') => Self::new("", ",", false, true),
            Some(b'#') => Self::new("#", ",", false, true),
            Some(b'.') => Self::new(".", ".", false, false),
            Some(b'/') => Self::new("/", "/", false, false),
            Some(b';') => Self::new(";", ";", true, false),
            Some(b'?') => Self::new("?", "&", true, false),
            Some(b'&') => Self::new("&", "&", true, false),
            _ => return (Self::new("", ",", false, false), expression),
        };
        // The operator is one ASCII byte, so slicing after it is safe.
        (operator, &expression[1..])
    }
}

/// The pattern for the inside of one `{...}`, or `None` if it is invalid.
fn expression(inner: &str) -> Option<String> {
    let (operator, list) = Operator::of(inner);
    let mut variables = 0_usize;
    let mut exploded = false;
    for varspec in list.split(',') {
        let name = if let Some(name) = varspec.strip_suffix('*') {
            exploded = true;
            name
        } else if let Some((name, length)) = varspec.split_once(':') {
            valid_prefix(length).then_some(name)?
        } else {
            varspec
        };
        if !valid_varname(name) {
            return None;
        }
        variables += 1;
    }
    // Values are pct-encoded except for unreserved characters (and reserved
    // ones under `+` and `#`); `,` joins list items, `=` keys and values.
    let class = if operator.reserved {
        r"A-Za-z0-9\-._~:/?#\[\]@!$\&'()*+,;="
    } else if operator.named || exploded {
        r"A-Za-z0-9\-._~,="
    } else {
        r"A-Za-z0-9\-._~,"
    };
    let value = format!("(?:[{class}]|%[0-9A-Fa-f]{{2}})*");
    // A separator the class already allows needs no repetition of its own;
    // otherwise it bounds how many values (path segments, parameters) fit.
    let more = if operator.reserved || matches!(operator.separator, "," | ".") {
        String::new()
    } else {
        let count = if exploded {
            String::from("*")
        } else {
            format!("{{0,{}}}", variables - 1)
        };
        format!("(?:{}{value}){count}", regex::escape(operator.separator))
    };
    // An undefined variable expands to nothing, operator included.
    let first = regex::escape(operator.first);
    Some(format!("(?:{first}{value}{more})?"))
}

/// Whether `length` is a prefix modifier's length: 1 to 9999, no leading 0.
fn valid_prefix(length: &str) -> bool {
    (1..=4).contains(&length.len())
        && !length.starts_with('0')
        && length.bytes().all(|byte| byte.is_ascii_digit())
}

/// Whether `name` is a varname: varchars, single dots between them.
fn valid_varname(name: &str) -> bool {
    name.split('.').all(|part| {
        !part.is_empty() && valid_chars(part, |c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Whether every character of `text` is `allowed` or part of a complete
/// pct-encoded triplet.
fn valid_chars(text: &str, allowed: fn(char) -> bool) -> bool {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let valid = if c == '%' {
            chars.next().is_some_and(|c| c.is_ascii_hexdigit())
                && chars.next().is_some_and(|c| c.is_ascii_hexdigit())
        } else {
            allowed(c)
        };
        if !valid {
            return false;
        }
    }
    true
}

/// Whether `c` may appear literally in a template (RFC 6570 §2.1):
/// printable ASCII but ``"'%<>\^`{|}`` (`%` only opens a pct-encoded
/// triplet), and non-ASCII `ucschar` or `iprivate`.
fn is_literal(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_graphic() && !"\"'%<>\\^`{|}".contains(c);
    }
    match c {
        '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFEF}' => true,
        '\u{E0000}'..='\u{E0FFF}' => false,
        // Above the BMP, every plane but its last two code points.
        _ => c >= '\u{10000}' && u32::from(c) & 0xFFFF <= 0xFFFD,
    }
}

#[cfg(test)]
mod tests {
    use super::UriTemplate;

    fn matches(template: &str, topic: &str) -> bool {
        UriTemplate::parse(template).unwrap().matches(topic)
    }

    #[test]
    fn simple_expressions_match_one_unreserved_value() {
        let books = "https://example.com/books/{id}";
        assert!(matches(books, "https://example.com/books/7"));
        assert!(matches(books, "https://example.com/books/"));
        assert!(matches(books, "https://example.com/books/a,b"));
        assert!(!matches(books, "https://example.com/books/7/chapters"));
        assert!(!matches(books, "https://example.com/books/7?x"));
        assert!(!matches(books, "https://example.com/authors/7"));
    }

    #[test]
    fn reserved_and_fragment_expansion_keep_reserved_characters() {
        let path = "https://example.com/{+path}";
        assert!(matches(path, "https://example.com/a/b?c=d"));
        assert!(matches(path, "https://example.com/"));
        assert!(!matches(path, "https://example.com/a b"));
        assert!(matches("/page{#frag}", "/page#a/b,c"));
        assert!(matches("/page{#frag}", "/page"));
        assert!(!matches("/page{#frag}", "/page/x"));
    }

    #[test]
    fn label_and_path_expansions() {
        assert!(matches("/file{.ext}", "/file.json"));
        assert!(!matches("/file{.ext}", "/filejson"));
        assert!(matches("{/a,b}", "/x"));
        assert!(matches("{/a,b}", "/x/y"));
        assert!(!matches("{/a,b}", "/x/y/z"));
        assert!(matches("{/list*}", "/x/y/z"));
    }

    #[test]
    fn query_expansions() {
        let search = "/search{?q,lang}";
        assert!(matches(search, "/search?q=cat&lang=en"));
        assert!(matches(search, "/search?q=cat"));
        assert!(matches(search, "/search"));
        assert!(!matches(search, "/search?q=a&lang=en&x=1"));
        assert!(!matches(search, "/search&q=cat"));
        assert!(matches("/?a=1{&x}", "/?a=1&x=2"));
        assert!(matches("/m{;x,y}", "/m;x=1;y"));
    }

    #[test]
    fn values_may_hold_pct_encoded_triplets_only() {
        assert!(matches("/{q}", "/a%20b"));
        assert!(!matches("/{q}", "/a%zz"));
        assert!(!matches("/{q}", "/a%2"));
    }

    #[test]
    fn literals_are_verbatim_and_case_sensitive() {
        let template = "https://example.com/a.b/{id}/{lang}{.ext}";
        assert!(matches(template, "https://example.com/a.b/1/en.html"));
        assert!(!matches(template, "https://example.com/aXb/1/en.html"));
        assert!(!matches(template, "HTTPS://example.com/a.b/1/en.html"));
        assert!(matches("/%7Euser/{id}", "/%7Euser/1"));
        assert!(!matches("/%7Euser/{id}", "/~user/1"));
        assert!(matches("/{id}", "/Ab"));
    }

    #[test]
    fn invalid_templates_and_plain_strings_are_refused() {
        let invalid = "a{b a}b {=x} {,x} {!x} {@x} {|x} {} {x:0} {x:01} {x:10000} {x:3*} \
                       {.x.} {x..y} {a,} {a%2} <{b}> a%zz{b} {a{b}} a\\{b} a^{b}";
        for template in invalid.split_whitespace() {
            assert!(UriTemplate::parse(template).is_none(), "{template}");
        }
        for template in ["{a b}", "a {b}", "a\t{b}", "a\u{85}{b}", "a\u{FFFF}{b}"] {
            assert!(UriTemplate::parse(template).is_none(), "{template:?}");
        }
        assert!(UriTemplate::parse("https://example.com/books/1").is_none());
        assert!(UriTemplate::parse("").is_none());
        assert!(UriTemplate::parse("{x:9999}{a.b_%41}{y*}é").is_some());
    }

    #[test]
    fn hostile_templates_compile_or_fail_fast() {
        let many = "{a}{b}{c}{d}".repeat(341);
        if let Some(template) = UriTemplate::parse(&many) {
            assert!(template.matches("abc"));
        }
        let wide = format!("{{/{}}}", vec!["a"; 2047].join(","));
        if let Some(template) = UriTemplate::parse(&wide) {
            assert!(template.matches("/x/y"));
        }
        let huge = format!("{{/{}}}", vec!["a"; 100_000].join(","));
        assert!(UriTemplate::parse(&huge).is_none());
    }
}
