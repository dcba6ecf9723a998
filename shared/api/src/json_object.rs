use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON object read without copying: its keys in their original order, each value kept as the
/// client's own bytes. Only the fields the gateway changes are re-encoded, so every field it does
/// not know reaches the upstream untouched (numbers keep their precision, order is kept).
#[derive(Clone, Debug, Default)]
pub struct JsonObject<'a> {
    fields: Vec<(Cow<'a, str>, Field<'a>)>,
}

#[derive(Clone, Debug)]
enum Field<'a> {
    Borrowed(&'a RawValue),
    Owned(String),
}

impl Field<'_> {
    fn json(&self) -> &str {
        match self {
            Field::Borrowed(raw) => raw.get(),
            Field::Owned(json) => json,
        }
    }
}

impl<'a> JsonObject<'a> {
    /// Parses `bytes` as one JSON object. The error is serde_json's, with line and column.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The raw JSON text of the last field named `name` (JSON allows repeats; the last wins, as
    /// in OpenAI's own parser).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.json())
    }

    /// Sets `name` to the JSON text `json` (the caller guarantees it is valid JSON), replacing
    /// every earlier occurrence in place or appending it.
    pub fn set(&mut self, name: &str, json: String) {
        let mut json = Some(json);
        self.fields.retain_mut(|(key, value)| {
            if key != name {
                return true;
            }
            match json.take() {
                Some(json) => {
                    *value = Field::Owned(json);
                    true
                }
                None => false,
            }
        });
        if let Some(json) = json {
            self.fields
                .push((Cow::Owned(name.to_owned()), Field::Owned(json)));
        }
    }

    /// Removes every field named `name`.
    pub fn remove(&mut self, name: &str) {
        self.fields.retain(|(key, _)| key != name);
    }

    /// The object as compact JSON.
    pub fn to_vec(&self) -> Vec<u8> {
        let capacity = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.json().len() + 4)
            .sum::<usize>()
            + 2;
        let mut out = Vec::with_capacity(capacity);
        out.push(b'{');
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_string(&mut out, key);
            out.push(b':');
            out.extend_from_slice(value.json().as_bytes());
        }
        out.push(b'}');
        out
    }
}

/// Appends `s` as a JSON string literal.
pub(crate) fn write_json_string(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[derive(serde::Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for JsonObject<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = JsonObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    fields.push((key, Field::Borrowed(value)));
                }
                Ok(JsonObject { fields })
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_order_and_bytes() {
        let body = br#"{"z":1.000000000000000001,"model":"a","weird\"key":[1, 2],"n":null}"#;
        let mut obj = JsonObject::parse(body).unwrap();
        obj.set("model", "\"b\"".into());
        let out = String::from_utf8(obj.to_vec()).unwrap();
        assert_eq!(
            out,
            r#"{"z":1.000000000000000001,"model":"b","weird\"key":[1, 2],"n":null}"#
        );
    }

    #[test]
    fn set_appends_and_dedupes() {
        let body = br#"{"a":1,"a":2}"#;
        let mut obj = JsonObject::parse(body).unwrap();
        assert_eq!(obj.get("a"), Some("2"));
        obj.set("a", "3".into());
        obj.set("b", "true".into());
        assert_eq!(obj.to_vec(), br#"{"a":3,"b":true}"#);
        obj.remove("a");
        assert_eq!(obj.to_vec(), br#"{"b":true}"#);
    }

    #[test]
    fn rejects_non_objects() {
        assert!(JsonObject::parse(b"[1]").is_err());
        assert!(JsonObject::parse(b"\"x\"").is_err());
        assert!(JsonObject::parse(b"{").is_err());
    }
}
