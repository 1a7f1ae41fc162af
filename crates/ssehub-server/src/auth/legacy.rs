//! The `mercure` claim of earlier drafts, honoured in compat mode:
//! `{"publish": [selectors], "subscribe": [selectors], "payload": any}`,
//! where a selector is `*`, an exact topic, or a URI template.

use serde_json::Value;

use super::AuthConfig;
use super::grants::{Detail, compile};
use crate::topic::{MatchType, Matcher};

/// The claim as up to two details: one for `publish`, one for `subscribe`
/// carrying the `payload`.
pub(super) fn parse(claim: &Value, config: &AuthConfig) -> Result<Vec<Detail>, String> {
    let claim = claim.as_object().ok_or("mercure claim is not an object")?;
    let mut details = Vec::new();
    let publish = selectors(claim.get("publish"), config)?;
    if !publish.is_empty() {
        details.push(Detail {
            publish: true,
            subscribe: false,
            topics: publish,
            payload: None,
        });
    }
    let subscribe = selectors(claim.get("subscribe"), config)?;
    if !subscribe.is_empty() {
        details.push(Detail {
            publish: false,
            subscribe: true,
            topics: subscribe,
            payload: claim
                .get("payload")
                .filter(|payload| !payload.is_null())
                .cloned(),
        });
    }
    Ok(details)
}

fn selectors(value: Option<&Value>, config: &AuthConfig) -> Result<Vec<Matcher>, String> {
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err("mercure claim: publish/subscribe is not an array".into()),
    };
    if list.len() > config.limits.max_matchers {
        return Err(format!(
            "mercure claim: more than {} selectors",
            config.limits.max_matchers
        ));
    }
    list.iter()
        .map(|selector| {
            let selector = selector
                .as_str()
                .ok_or("mercure claim: a selector is not a string")?;
            legacy_selector(selector, config)
        })
        .collect()
}

fn legacy_selector(selector: &str, config: &AuthConfig) -> Result<Matcher, String> {
    if !selector.contains(['{', '}']) {
        return compile(MatchType::Exact, selector, config);
    }
    let pattern = template_to_pattern(selector)
        .ok_or_else(|| format!("unsupported URI template {selector:?}"))?;
    compile(MatchType::UrlPattern, &pattern, config)
}

/// `https://example.com/books/{id}` → `https://example.com/books/:id`.
///
/// Only simple expressions (`{name}`, ASCII name) are supported; operators
/// (`{+x}`, `{?x}`, …) and lists refuse the token. Literal text is escaped
/// where URL pattern syntax would read it as syntax, so a template never
/// matches more than it says. Templates that are not URLs (`urn:…{id}`)
/// convert but, like any URL pattern, match no such topic.
pub(super) fn template_to_pattern(template: &str) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 8);
    let mut rest = template;
    let mut after_name = false;
    while let Some(c) = rest.chars().next() {
        if c == '{' {
            let (name, tail) = rest[1..].split_once('}')?;
            if !is_name(name) {
                return None;
            }
            out.push(':');
            out.push_str(name);
            rest = tail;
            after_name = true;
            continue;
        }
        rest = &rest[c.len_utf8()..];
        if c == '}' {
            return None;
        }
        // `:name` groups, `*` `+` `(` `)` modifiers and regexps, `\` escapes;
        // and a name character right after `:name` would extend the name.
        let syntax = matches!(c, '*' | '+' | '(' | ')' | '\\')
            || (c == ':' && rest.starts_with(is_name_char))
            || (after_name && is_name_char(c));
        if syntax {
            out.push('\\');
        }
        out.push(c);
        after_name = false;
    }
    Some(out)
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Characters that can continue a URL pattern group name.
fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}
