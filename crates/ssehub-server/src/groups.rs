//! Subscription groups: subscribers with the same matchers and the same
//! read rights share one broker channel.
//!
//! An update is appended once to each group channel that should see it, so
//! the broker's fan-out (one encoding, one wake-up per waiting connection)
//! does the rest, and a connection — a member of exactly one group — gets
//! an update once however many of its matchers select it.
//!
//! Finding the groups of a topic: groups whose matchers are all exact are
//! indexed by topic (a map lookup); the others (wildcards, URL patterns)
//! are tested once per topic and the answer is cached until the set of
//! such groups changes.

use std::collections::HashMap;
use std::sync::Arc;

use ssehub::broker::Channel;
use url::Url;

use crate::auth::Grants;
use crate::matcher::{MatchType, Matcher};
use crate::update::Update;

/// Topics whose scan-group matches are remembered at once.
const CACHE_TOPICS: usize = 4096;

/// A canonical list of matchers: sorted, without duplicates.
pub(crate) type MatcherKey = Vec<(MatchType, Arc<str>)>;

/// What makes two subscribers interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct GroupKey {
    /// The subscription's matchers.
    pub matchers: MatcherKey,
    /// The token's subscribe matchers; `None` for an anonymous subscriber.
    pub reads: Option<MatcherKey>,
}

/// The canonical key of `matchers`.
pub(crate) fn key_of(matchers: &[Matcher]) -> MatcherKey {
    let mut key: MatcherKey = matchers
        .iter()
        .map(|m| (m.kind(), m.pattern_arc().clone()))
        .collect();
    key.sort();
    key.dedup();
    key
}

/// What a subscriber receives: its matchers, and its token's reads.
#[derive(Debug, Clone)]
pub(crate) struct Selector {
    pub matchers: Vec<Matcher>,
    /// The token's grants; `None` for an anonymous subscriber.
    pub grants: Option<Grants>,
}

impl Selector {
    /// Whether one of the matchers selects one of `topics`.
    pub fn selects(&self, topics: &[Arc<str>], base: &Url) -> bool {
        topics
            .iter()
            .any(|t| self.matchers.iter().any(|m| m.matches(t, base)))
    }

    /// Whether the subscriber may read `update`: public, or private with a
    /// token granting `subscribe` on one of its topics.
    pub fn may_read(&self, update: &Update) -> bool {
        !update.private
            || self
                .grants
                .as_ref()
                .is_some_and(|g| update.topics.iter().any(|t| g.can_subscribe(t)))
    }

    /// Whether the subscriber receives `update`.
    pub fn sees(&self, update: &Update, base: &Url) -> bool {
        self.may_read(update) && self.selects(&update.topics, base)
    }

    fn exact_only(&self) -> bool {
        self.matchers.iter().all(|m| m.exact().is_some())
    }
}

/// Subscribers with one [`GroupKey`]: one selector (all members' tokens
/// grant the same reads), one channel.
#[derive(Debug)]
pub(crate) struct Group {
    pub selector: Selector,
    pub channel: Channel,
}

#[derive(Debug, Default)]
pub(crate) struct Groups {
    by_key: HashMap<GroupKey, (Arc<Group>, usize)>,
    exact: HashMap<Arc<str>, Vec<Arc<Group>>>,
    scan: Vec<Arc<Group>>,
    cache: HashMap<Arc<str>, Arc<[Arc<Group>]>>,
    next: u64,
}

impl Groups {
    /// Adds a member to the group of `key`, creating it with `create`
    /// (given a fresh channel name) when it is new.
    pub fn join<E>(
        &mut self,
        key: GroupKey,
        create: impl FnOnce(String) -> Result<Group, E>,
    ) -> Result<Arc<Group>, E> {
        if let Some((group, members)) = self.by_key.get_mut(&key) {
            *members += 1;
            return Ok(group.clone());
        }
        self.next += 1;
        let group = Arc::new(create(format!("group-{}", self.next))?);
        if group.selector.exact_only() {
            for m in &group.selector.matchers {
                if let Some(topic) = m.exact() {
                    self.exact
                        .entry(topic.into())
                        .or_default()
                        .push(group.clone());
                }
            }
        } else {
            self.scan.push(group.clone());
            self.cache.clear();
        }
        self.by_key.insert(key, (group.clone(), 1));
        Ok(group)
    }

    /// Removes a member; returns the group when it was the last one.
    pub fn leave(&mut self, key: &GroupKey) -> Option<Arc<Group>> {
        let (_, members) = self.by_key.get_mut(key)?;
        *members -= 1;
        if *members > 0 {
            return None;
        }
        let (group, _) = self.by_key.remove(key)?;
        if group.selector.exact_only() {
            for m in &group.selector.matchers {
                if let Some(topic) = m.exact()
                    && let Some(list) = self.exact.get_mut(topic)
                {
                    list.retain(|g| !Arc::ptr_eq(g, &group));
                    if list.is_empty() {
                        self.exact.remove(topic);
                    }
                }
            }
        } else {
            self.scan.retain(|g| !Arc::ptr_eq(g, &group));
            self.cache.clear();
        }
        Some(group)
    }

    /// The channels of the groups that receive `update`, each once, into
    /// `out` (emptied first): the follower keeps one list for every update.
    pub fn targets(&mut self, update: &Update, base: &Url, out: &mut Vec<Channel>) {
        out.clear();
        let readers = |groups: &[Arc<Group>], out: &mut Vec<Channel>| {
            out.extend(
                groups
                    .iter()
                    .filter(|g| g.selector.may_read(update))
                    .map(|g| g.channel.clone()),
            );
        };
        if let [topic] = &*update.topics {
            // One topic: every group appears once already.
            if let Some(groups) = self.exact.get(topic) {
                readers(groups, out);
            }
            if !self.scan.is_empty() {
                readers(&self.scanned(topic, base), out);
            }
            return;
        }
        let mut found: Vec<Arc<Group>> = Vec::new();
        for topic in update.topics.iter() {
            if let Some(groups) = self.exact.get(topic) {
                found.extend(groups.iter().cloned());
            }
            if !self.scan.is_empty() {
                found.extend(self.scanned(topic, base).iter().cloned());
            }
        }
        found.sort_by_key(|g| Arc::as_ptr(g) as usize);
        found.dedup_by(|a, b| Arc::ptr_eq(a, b));
        readers(&found, out);
    }

    /// The scan groups selecting `topic`, from the cache when possible.
    fn scanned(&mut self, topic: &Arc<str>, base: &Url) -> Arc<[Arc<Group>]> {
        if let Some(hit) = self.cache.get(topic) {
            return hit.clone();
        }
        let topics = std::slice::from_ref(topic);
        let hit: Arc<[Arc<Group>]> = self
            .scan
            .iter()
            .filter(|g| g.selector.selects(topics, base))
            .cloned()
            .collect();
        if self.cache.len() >= CACHE_TOPICS {
            self.cache.clear();
        }
        self.cache.insert(topic.clone(), hit.clone());
        hit
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }
}
