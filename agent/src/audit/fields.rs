//! A record's fields as the daemon builds them: a short list, sorted once
//! when its line is written. A record used to be a JSON map (a B-tree of
//! owned keys, built twice: the fields, then the record around them), and
//! building it was the largest part of the daemon's time per kernel event.
//! The line written is the same, byte for byte: keys in the order a JSON
//! map keeps them (sorted by their bytes), compact, with serde_json's
//! escaping, so `verify` re-serialises what it parses to the same bytes.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// Field names and values of one record, in the order they were set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields {
    entries: Vec<(Cow<'static, str>, Value)>,
}

impl Fields {
    pub fn new() -> Self {
        Self { entries: Vec::with_capacity(24) }
    }

    /// Sets `key` to `value`, replacing a value set before (as a map would).
    pub fn set(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> &mut Self {
        let (key, value) = (key.into(), value.into());
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, old)) => *old = value,
            None => self.entries.push((key, value)),
        }
        self
    }

    /// Sets `key`, which has no value yet (checked in debug builds): no
    /// search of the keys set before, as [`Self::set`] makes, which was
    /// the most of building a decision record's fields.
    pub fn add(&mut self, key: &'static str, value: impl Into<Value>) -> &mut Self {
        debug_assert!(self.get(key).is_none(), "{key} is set twice");
        self.entries.push((Cow::Borrowed(key), value.into()));
        self
    }

    /// Sets `key` only if it has no value yet.
    pub fn set_if_absent(&mut self, key: &'static str, value: impl FnOnce() -> Value) -> &mut Self {
        if self.get(key).is_none() {
            self.entries.push((key.into(), value()));
        }
        self
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The fields of a JSON object; none of anything else.
    pub fn from_value(value: Value) -> Self {
        match value {
            Value::Object(map) => Self::from(map),
            _ => Self::new(),
        }
    }

    /// The fields as one JSON object (for readers of a record's fields).
    pub fn to_value(&self) -> Value {
        Value::Object(self.entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    /// The entries sorted by key, as a JSON map orders them.
    pub(super) fn sorted(mut self) -> Vec<(Cow<'static, str>, Value)> {
        // Keys are unique (`set` replaces; `add`'s callers set a key once),
        // so the sort's stability is moot.
        self.entries.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        self.entries
    }
}

impl From<Map<String, Value>> for Fields {
    fn from(map: Map<String, Value>) -> Self {
        Self { entries: map.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_set_again_keeps_its_last_value_and_its_place() {
        let mut fields = Fields::new();
        fields.set("b", 1).set("a", 2).set("b", 3);
        fields.set_if_absent("a", || 9.into()).set_if_absent("c", || 4.into());
        assert_eq!(fields.get("b"), Some(&3.into()));
        assert_eq!(fields.to_value(), serde_json::json!({"a": 2, "b": 3, "c": 4}));
        let keys: Vec<_> = fields.sorted().into_iter().map(|(k, _)| k.into_owned()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }
}
