//! Validation problems and the small JSON walker that collects them.
//!
//! Validation never stops at the first mistake: every field is checked and every problem
//! is reported with an RFC 6901 JSON pointer, so a partner can fix a submission in one go.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One thing wrong with a submission, located by a JSON pointer into the request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub pointer: String,
    pub detail: String,
}

/// Every problem found in one submission.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Records a problem at `pointer` (a [`Pointer`] is rendered only now, on error).
    pub fn push(&mut self, pointer: impl std::fmt::Display, detail: impl Into<String>) {
        self.0.push(Problem {
            pointer: pointer.to_string(),
            detail: detail.into(),
        });
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One reference token of a JSON pointer, with `~` and `/` escaped (RFC 6901).
fn escaped(token: &str) -> std::borrow::Cow<'_, str> {
    if token.contains(['~', '/']) {
        token.replace('~', "~0").replace('/', "~1").into()
    } else {
        token.into()
    }
}

/// Where in the request body a value being read sits: a chain of references on the stack,
/// rendered as an RFC 6901 pointer only when a problem is recorded, so a valid submission
/// builds no pointer strings at all.
#[derive(Debug, Clone, Copy)]
pub enum Pointer<'a> {
    /// A pointer given whole, e.g. `""` for the body or `/3` for a batch item.
    Text(&'a str),
    /// A member of the object at the parent.
    Key(&'a Pointer<'a>, &'a str),
    /// An element of the array at the parent.
    Index(&'a Pointer<'a>, usize),
}

impl<'a> Pointer<'a> {
    /// The member `key` of the object here.
    pub fn key(&'a self, key: &'a str) -> Pointer<'a> {
        Pointer::Key(self, key)
    }

    /// The element `i` of the array here.
    pub fn index(&'a self, i: usize) -> Pointer<'a> {
        Pointer::Index(self, i)
    }
}

impl std::fmt::Display for Pointer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pointer::Text(t) => f.write_str(t),
            Pointer::Key(parent, key) => write!(f, "{parent}/{}", escaped(key)),
            Pointer::Index(parent, i) => write!(f, "{parent}/{i}"),
        }
    }
}

/// A value that can be read from JSON while reporting every problem it finds.
pub trait FromJson: Sized {
    /// Reads `value` found at `pointer`; on failure pushes problems and returns `None`.
    fn from_json(value: &Value, pointer: &Pointer, problems: &mut Problems) -> Option<Self>;

    /// Reads an object member that may be absent; absent is a problem unless overridden.
    fn field(value: Option<&Value>, pointer: &Pointer, problems: &mut Problems) -> Option<Self> {
        match value {
            None | Some(Value::Null) => {
                problems.push(pointer, "is required");
                None
            }
            Some(v) => Self::from_json(v, pointer, problems),
        }
    }
}

impl<T: FromJson> FromJson for Option<T> {
    fn from_json(value: &Value, pointer: &Pointer, problems: &mut Problems) -> Option<Self> {
        T::from_json(value, pointer, problems).map(Some)
    }
    fn field(value: Option<&Value>, pointer: &Pointer, problems: &mut Problems) -> Option<Self> {
        match value {
            None | Some(Value::Null) => Some(None),
            Some(v) => Self::from_json(v, pointer, problems),
        }
    }
}

/// Any JSON (a correction's value); its type is checked where it is put.
impl FromJson for Value {
    fn from_json(value: &Value, _pointer: &Pointer, _problems: &mut Problems) -> Option<Self> {
        Some(value.clone())
    }
}

/// Longest free-standing string accepted in a coded field (ids, org names); personal
/// free text belongs in the `personal` object instead.
pub const MAX_STRING: usize = 200;

impl FromJson for String {
    fn from_json(value: &Value, pointer: &Pointer, problems: &mut Problems) -> Option<Self> {
        match value {
            Value::String(s) if s.trim().is_empty() => {
                problems.push(pointer, "must not be empty");
                None
            }
            Value::String(s) if s.chars().count() > MAX_STRING => {
                problems.push(pointer, format!("must be at most {MAX_STRING} characters"));
                None
            }
            Value::String(s) => Some(s.clone()),
            _ => {
                problems.push(pointer, "must be a string");
                None
            }
        }
    }
}

impl FromJson for bool {
    fn from_json(value: &Value, pointer: &Pointer, problems: &mut Problems) -> Option<Self> {
        match value {
            Value::Bool(b) => Some(*b),
            _ => {
                problems.push(pointer, "must be true or false");
                None
            }
        }
    }
}

impl FromJson for NaiveDate {
    fn from_json(value: &Value, pointer: &Pointer, problems: &mut Problems) -> Option<Self> {
        match value
            .as_str()
            .map(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d"))
        {
            Some(Ok(d)) => Some(d),
            _ => {
                problems.push(pointer, "must be a date as YYYY-MM-DD");
                None
            }
        }
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn from_json(value: &Value, pointer: &Pointer, problems: &mut Problems) -> Option<Self> {
        let Value::Array(items) = value else {
            problems.push(pointer, "must be an array");
            return None;
        };
        let before = problems.0.len();
        let out: Vec<T> = items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| T::from_json(v, &pointer.index(i), problems))
            .collect();
        (problems.0.len() == before).then_some(out)
    }
}

impl FromJson for std::collections::BTreeMap<String, String> {
    fn from_json(value: &Value, pointer: &Pointer, problems: &mut Problems) -> Option<Self> {
        let Value::Object(map) = value else {
            problems.push(pointer, "must be an object of strings");
            return None;
        };
        let before = problems.0.len();
        let mut out = std::collections::BTreeMap::new();
        for (k, v) in map {
            match v.as_str() {
                Some(s) if s.chars().count() <= 4000 => {
                    out.insert(k.clone(), s.to_string());
                }
                Some(_) => problems.push(pointer.key(k), "must be at most 4000 characters"),
                None => problems.push(pointer.key(k), "must be a string"),
            }
        }
        (problems.0.len() == before).then_some(out)
    }
}

/// Returns the object at `pointer` or records that it must be one.
pub fn object<'v>(
    value: &'v Value,
    pointer: &Pointer,
    problems: &mut Problems,
) -> Option<&'v Map<String, Value>> {
    let obj = value.as_object();
    if obj.is_none() {
        problems.push(pointer, "must be an object");
    }
    obj
}

/// Records every member of `obj` that is not one of `known`.
pub fn unknown_members(
    obj: &Map<String, Value>,
    known: &[&str],
    pointer: &Pointer,
    problems: &mut Problems,
) {
    for key in obj.keys() {
        if !known.contains(&key.as_str()) {
            problems.push(
                pointer.key(key),
                format!("unknown field; expected one of: {}", known.join(", ")),
            );
        }
    }
}

/// Declares a data record: a serde + JSON Schema struct whose `FromJson` reads every
/// field, reports every problem, and refuses unknown members (they are usually typos).
#[macro_export]
macro_rules! record {
    ($(#[$m:meta])* pub struct $name:ident { $( $(#[$fm:meta])* pub $f:ident : $t:ty ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name { $( $(#[$fm])* pub $f: $t ),* }

        impl $crate::problems::FromJson for $name {
            fn from_json(value: &serde_json::Value, pointer: &$crate::problems::Pointer, problems: &mut $crate::problems::Problems) -> Option<Self> {
                let obj = $crate::problems::object(value, pointer, problems)?;
                $crate::problems::unknown_members(obj, &[$(stringify!($f)),*], pointer, problems);
                $( let $f = <$t as $crate::problems::FromJson>::field(
                        obj.get(stringify!($f)), &pointer.key(stringify!($f)), problems); )*
                Some(Self { $( $f: $f? ),* })
            }
        }
    };
}

/// Declares a closed code list: SCREAMING_CASE on the wire, every allowed value named
/// in the problem when a submission uses another.
#[macro_export]
macro_rules! codes {
    ($(#[$m:meta])* pub enum $name:ident { $( $(#[$vm:meta])* $v:ident = $s:literal ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
                 serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        pub enum $name { $( $(#[$vm])* #[serde(rename = $s)] $v ),* }

        impl $name {
            /// Every value, in catalogue order.
            pub const ALL: &'static [$name] = &[$($name::$v),*];
            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),* }
            }
            /// Parses the wire spelling.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$v),)* _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::problems::FromJson for $name {
            fn from_json(value: &serde_json::Value, pointer: &$crate::problems::Pointer, problems: &mut $crate::problems::Problems) -> Option<Self> {
                let parsed = value.as_str().and_then($name::parse);
                if parsed.is_none() {
                    let all: Vec<&str> = $name::ALL.iter().map(|c| c.as_str()).collect();
                    problems.push(pointer, format!("must be one of: {}", all.join(", ")));
                }
                parsed
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_render_only_what_is_wrong_with_rfc_6901_escapes() {
        let root = Pointer::Text("/2");
        let data = root.key("data");
        let list = data.key("a/b~c");
        assert_eq!(list.index(7).to_string(), "/2/data/a~1b~0c/7");
        assert_eq!(Pointer::Text("").key("id").to_string(), "/id");

        let mut problems = Problems::default();
        let ok = <Vec<NaiveDate>>::from_json(&json!(["2026-01-02", "x", 3]), &data, &mut problems);
        assert!(ok.is_none());
        let pointers: Vec<&str> = problems.0.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(pointers, ["/2/data/1", "/2/data/2"]);
    }
}
