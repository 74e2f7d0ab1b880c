//! The reference members' ids, kept as one text: a model of 1,000,000
//! members holds one allocation instead of a million (loading and dropping
//! a million `String`s took a third of the time a large model took to load).

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Member ids in reference order: `ids[i]` is member `i`'s id.
///
/// Serialised as a sequence of strings, like a `Vec<String>`.
///
/// ```
/// use nof1::model::MemberIds;
/// let ids: MemberIds = ["r1", "r2"].into_iter().collect();
/// assert_eq!(ids.len(), 2);
/// assert_eq!(&ids[1], "r2");
/// assert_eq!(ids.get(2), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberIds {
    /// Every id, one after the other.
    text: String,
    /// End of each id in `text` (the start is the previous end, or 0).
    ends: Vec<usize>,
}

impl MemberIds {
    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Id of member `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..end)
    }

    /// The ids in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len()).map(|i| &self[i])
    }

    /// The ids as owned strings.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }

    /// Appends an id.
    pub fn push(&mut self, id: &str) {
        self.text.push_str(id);
        self.ends.push(self.text.len());
    }

    /// The ids of `text` ending at `ends` (each a char boundary, in order).
    ///
    /// # Errors
    /// A message naming the first end that is out of order, beyond the text
    /// or inside a character.
    pub(crate) fn from_parts(text: String, ends: Vec<usize>) -> Result<MemberIds, String> {
        let mut start = 0;
        for (i, &end) in ends.iter().enumerate() {
            if end < start || !text.is_char_boundary(end) {
                return Err(format!("id {i} ends at byte {end}, which splits the ids"));
            }
            start = end;
        }
        Ok(MemberIds { text, ends })
    }

    /// All ids' bytes, one after the other.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Length in bytes of each id.
    pub(crate) fn lengths(&self) -> impl Iterator<Item = usize> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let len = end - start;
            start = end;
            len
        })
    }
}

impl std::ops::Index<usize> for MemberIds {
    type Output = str;

    /// # Panics
    /// If `i` is not below [`MemberIds::len`].
    fn index(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }
}

impl<S: AsRef<str>> FromIterator<S> for MemberIds {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut ids = MemberIds::default();
        for s in iter {
            ids.push(s.as_ref());
        }
        ids
    }
}

impl Serialize for MemberIds {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for id in self.iter() {
            seq.serialize_element(id)?;
        }
        seq.end()
    }
}

/// Reads one id of a sequence straight into the text.
struct AppendId<'a>(&'a mut MemberIds);

impl<'de> DeserializeSeed<'de> for AppendId<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for AppendId<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a member id")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push(v);
        Ok(())
    }
}

struct IdsVisitor;

impl<'de> Visitor<'de> for IdsVisitor {
    type Value = MemberIds;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a sequence of member ids")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MemberIds, A::Error> {
        let mut ids = MemberIds::default();
        // A length hint comes from the file: bounded before reserving.
        ids.ends.reserve(seq.size_hint().unwrap_or(0).min(1 << 20));
        while seq.next_element_seed(AppendId(&mut ids))?.is_some() {}
        Ok(ids)
    }
}

impl<'de> Deserialize<'de> for MemberIds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(IdsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The same bincode bytes as a `Vec<String>`, both ways.
        #[test]
        fn encodes_like_a_vector_of_strings(v in proptest::collection::vec(".{0,8}", 0..30)) {
            let ids: MemberIds = v.iter().collect();
            prop_assert_eq!(ids.len(), v.len());
            prop_assert_eq!(ids.to_vec(), v.clone());
            for (i, s) in v.iter().enumerate() {
                prop_assert_eq!(ids.get(i), Some(s.as_str()));
            }
            let a = bincode::serialize(&ids).unwrap();
            prop_assert_eq!(&a, &bincode::serialize(&v).unwrap());
            let back: MemberIds = bincode::deserialize(&a).unwrap();
            prop_assert_eq!(back, ids);
        }
    }

    #[test]
    fn parts_must_end_on_boundaries_in_order() {
        let ok = MemberIds::from_parts("abé".into(), vec![1, 4]).unwrap();
        assert_eq!(ok.to_vec(), ["a", "bé"]);
        assert!(MemberIds::from_parts("abé".into(), vec![3]).is_err());
        assert!(MemberIds::from_parts("ab".into(), vec![2, 1]).is_err());
        assert!(MemberIds::from_parts("ab".into(), vec![3]).is_err());
        assert_eq!(ok.lengths().collect::<Vec<_>>(), [1, 3]);
    }
}
