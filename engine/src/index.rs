//! Payload indexes: which payload fields a collection indexes, and as what type (Qdrant's
//! `field_schema`). The list lives in the manifest (`docs/format.md`); creating or dropping an
//! index publishes a new manifest.

use std::str::FromStr;

use crate::error::{Error, ErrorKind, Result};

/// How many payload indexes one collection may have.
pub const MAX_INDEXES: usize = 64;
/// The longest indexed key, in bytes.
pub const MAX_INDEX_KEY: usize = 255;

/// The type a payload index reads its field as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Exact strings (match, match any / except, facet).
    Keyword,
    /// Whole numbers (match, range).
    Integer,
    /// Numbers (range).
    Float,
    /// `true` / `false` (match).
    Bool,
    /// UUID strings (match).
    Uuid,
    /// RFC 3339 timestamps (range).
    Datetime,
}

impl FieldType {
    /// Every type, in tag order.
    pub const ALL: [FieldType; 6] = [
        FieldType::Keyword,
        FieldType::Integer,
        FieldType::Float,
        FieldType::Bool,
        FieldType::Uuid,
        FieldType::Datetime,
    ];

    /// Qdrant's name of the type (`keyword`, `integer`…).
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Keyword => "keyword",
            FieldType::Integer => "integer",
            FieldType::Float => "float",
            FieldType::Bool => "bool",
            FieldType::Uuid => "uuid",
            FieldType::Datetime => "datetime",
        }
    }

    pub(crate) fn tag(self) -> u8 {
        match self {
            FieldType::Keyword => 0,
            FieldType::Integer => 1,
            FieldType::Float => 2,
            FieldType::Bool => 3,
            FieldType::Uuid => 4,
            FieldType::Datetime => 5,
        }
    }

    pub(crate) fn from_tag(t: u8) -> Option<FieldType> {
        FieldType::ALL.get(usize::from(t)).copied()
    }
}

impl FromStr for FieldType {
    type Err = Error;
    /// Qdrant's names; `geo` and `text` are valid Qdrant types Strata does not index yet
    /// ([`ErrorKind::Unimplemented`]).
    fn from_str(s: &str) -> Result<FieldType> {
        match FieldType::ALL.into_iter().find(|t| t.name() == s) {
            Some(t) => Ok(t),
            None if s == "geo" || s == "text" => Err(Error::new(
                ErrorKind::Unimplemented,
                format!("field_schema: {s}"),
            )),
            None => Err(Error::invalid(format!(
                "field_schema: expected one of keyword, integer, float, bool, uuid, datetime, got {s:?}"
            ))),
        }
    }
}

/// A collection's payload indexes, sorted by key (one type per key).
pub type PayloadIndexes = Vec<(String, FieldType)>;

/// Checks a key to index: a payload path as filters write it (`a`, `a.b`, `a[].b`).
pub(crate) fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_INDEX_KEY {
        return Err(Error::invalid(format!(
            "field_name: must be 1 to {MAX_INDEX_KEY} bytes, got {}",
            key.len()
        )));
    }
    if key.split('.').any(|p| p.trim_end_matches("[]").is_empty()) {
        return Err(Error::invalid(format!(
            "field_name: {key:?} has an empty path segment"
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(Error::invalid(
            "field_name: must not contain control characters",
        ));
    }
    Ok(())
}

/// `indexes` with `key` indexed as `ty` (replacing its previous type), or an error naming the
/// limit.
pub(crate) fn with_index(
    indexes: &PayloadIndexes,
    key: &str,
    ty: FieldType,
) -> Result<PayloadIndexes> {
    validate_key(key)?;
    let mut next = indexes.clone();
    match next.binary_search_by(|(k, _)| k.as_str().cmp(key)) {
        Ok(i) => next[i].1 = ty,
        Err(i) => {
            if next.len() >= MAX_INDEXES {
                return Err(Error::invalid(format!(
                    "field_name: a collection has at most {MAX_INDEXES} payload indexes"
                )));
            }
            next.insert(i, (key.to_string(), ty));
        }
    }
    Ok(next)
}

/// Checks a decoded index list as the API would have built it.
pub(crate) fn validate(indexes: &PayloadIndexes) -> Result<()> {
    if indexes.len() > MAX_INDEXES {
        return Err(Error::invalid(format!(
            "{} payload indexes, over the limit of {MAX_INDEXES}",
            indexes.len()
        )));
    }
    for (k, _) in indexes {
        validate_key(k)?;
    }
    if indexes.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(Error::invalid(
            "payload index keys are not sorted and unique",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tags_round_trip() {
        for t in FieldType::ALL {
            assert_eq!(FieldType::from_tag(t.tag()), Some(t));
            assert_eq!(t.name().parse::<FieldType>().expect("ok"), t);
        }
        assert_eq!(FieldType::from_tag(6), None);
        assert_eq!(
            "text".parse::<FieldType>().expect_err("refused").kind(),
            ErrorKind::Unimplemented
        );
        assert_eq!(
            "words".parse::<FieldType>().expect_err("refused").kind(),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn keys_are_checked_and_kept_sorted() {
        let a = with_index(&Vec::new(), "metadata.doc_id", FieldType::Keyword).expect("ok");
        let b = with_index(&a, "a[].n", FieldType::Integer).expect("ok");
        let c = with_index(&b, "metadata.doc_id", FieldType::Uuid).expect("ok");
        assert_eq!(
            c,
            vec![
                ("a[].n".to_string(), FieldType::Integer),
                ("metadata.doc_id".to_string(), FieldType::Uuid)
            ]
        );
        validate(&c).expect("ok");
        for bad in ["", "a..b", ".a", "a.", "[]", "a\nb"] {
            assert!(with_index(&c, bad, FieldType::Bool).is_err(), "{bad:?}");
        }
        let mut full = Vec::new();
        for i in 0..MAX_INDEXES {
            full = with_index(&full, &format!("k{i:03}"), FieldType::Float).expect("ok");
        }
        let e = with_index(&full, "more", FieldType::Float).expect_err("refused");
        assert!(e.message().contains("at most"), "{e}");
        assert!(
            validate(&vec![
                ("b".into(), FieldType::Bool),
                ("a".into(), FieldType::Bool)
            ])
            .is_err()
        );
    }
}
