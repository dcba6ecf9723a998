use serde::{Deserialize, Deserializer};

/// Token counts of one upstream call. Providers disagree on names (`prompt_tokens` vs
/// `input_tokens`) and some send fractional numbers; both are accepted and fractions are rounded
/// up, so a lenient parse can only over-count, never under-bill.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Usage {
    /// Reads `usage` out of a whole OpenAI-style response body (or one stream chunk). `None` when
    /// the body has no usage object (absent or `null`).
    pub fn from_response(body: &[u8]) -> Option<Usage> {
        trailing_usage(body).unwrap_or_else(|| parsed_usage(body))
    }
}

/// `usage` read by parsing the whole body.
fn parsed_usage(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Envelope {
        usage: Option<RawUsage>,
    }
    serde_json::from_slice::<Envelope>(body)
        .ok()?
        .usage
        .map(RawUsage::into_usage)
}

/// The common shape read without parsing the whole body: `usage` as the last member of the
/// top-level object, as OpenAI-compatible servers write it. The last `"usage"` key is taken when
/// it is one (after `{` or `,`: inside a JSON string a quote is always escaped, so the bytes
/// `"usage"` there can only close a string, never follow `{`/`,` and precede `:`) and when only
/// the closing brace of the object its value belongs to, and whitespace, follow that value:
/// then that object is the top-level one. `None` leaves the body to the full parse (on the
/// benchmark's 360-byte response the full parse was ~7,000 instructions, this ~700).
fn trailing_usage(body: &[u8]) -> Option<Option<Usage>> {
    let at = memchr::memmem::rfind(body, b"\"usage\"")?;
    let before = body[..at].iter().rev().find(|b| !b.is_ascii_whitespace())?;
    if !matches!(before, b'{' | b',') {
        return None;
    }
    let rest = body[at + b"\"usage\"".len()..].trim_ascii_start();
    let rest = rest.strip_prefix(b":")?;
    let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<Option<RawUsage>>();
    let usage = values.next()?.ok()?;
    if rest[values.byte_offset()..].trim_ascii() != b"}" {
        return None;
    }
    Some(usage.map(RawUsage::into_usage))
}

#[derive(Deserialize)]
struct RawUsage {
    #[serde(default, alias = "input_tokens")]
    prompt_tokens: Count,
    #[serde(default, alias = "output_tokens")]
    completion_tokens: Count,
}

impl RawUsage {
    fn into_usage(self) -> Usage {
        Usage {
            input_tokens: self.prompt_tokens.0,
            output_tokens: self.completion_tokens.0,
        }
    }
}

/// A token count that accepts integers, floats (rounded up), numeric strings and null.
#[derive(Default)]
struct Count(u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Lenient {
            Int(u64),
            Float(f64),
            Text(String),
            Null(()),
        }
        let count = match Lenient::deserialize(deserializer)? {
            Lenient::Int(n) => n,
            Lenient::Float(f) => ceil_count(f),
            Lenient::Text(s) => s.trim().parse::<f64>().map(ceil_count).unwrap_or(0),
            Lenient::Null(()) => 0,
        };
        Ok(Count(count))
    }
}

fn ceil_count(f: f64) -> u64 {
    if f.is_finite() && f > 0.0 {
        // Saturating float-to-int conversion is what `as` does; counts are far below 2^53.
        f.ceil() as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_openai_and_anthropic_names() {
        let u = Usage::from_response(br#"{"usage":{"prompt_tokens":3,"completion_tokens":4}}"#);
        assert_eq!(
            u,
            Some(Usage {
                input_tokens: 3,
                output_tokens: 4
            })
        );
        let u = Usage::from_response(br#"{"usage":{"input_tokens":5,"output_tokens":6}}"#);
        assert_eq!(
            u,
            Some(Usage {
                input_tokens: 5,
                output_tokens: 6
            })
        );
    }

    #[test]
    fn fractional_and_odd_numbers_round_up() {
        let u = Usage::from_response(
            br#"{"usage":{"prompt_tokens":12.5,"completion_tokens":"7.1","total_tokens":19.6}}"#,
        );
        assert_eq!(
            u,
            Some(Usage {
                input_tokens: 13,
                output_tokens: 8
            })
        );
        let u = Usage::from_response(br#"{"usage":{"prompt_tokens":-1,"completion_tokens":null}}"#);
        assert_eq!(u, Some(Usage::default()));
    }

    #[test]
    fn the_trailing_usage_shortcut_agrees_with_the_full_parse() {
        let cases: &[&[u8]] = &[
            br#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":4,"completion_tokens":16}}"#,
            b"{\n  \"id\": \"x\",\n  \"usage\" : {\"prompt_tokens\": 1, \"completion_tokens\": 2}\n}\n",
            br#"{"usage":{"prompt_tokens":3,"completion_tokens":4},"id":"after"}"#,
            br#"{"choices":[{"usage":{"prompt_tokens":99}}],"usage":{"prompt_tokens":2}}"#,
            br#"{"usage":{"prompt_tokens":2},"choices":[{"usage":{"prompt_tokens":99}}]}"#,
            br#"{"choices":[{"message":{"content":"say \"usage\": {\"prompt_tokens\":9}"}}],"usage":{"prompt_tokens":5}}"#,
            br#"{"choices":[{"message":{"content":"x\",\"usage\":{\"prompt_tokens\":9}}"}}]}"#,
            br#"{"a":{"usage":{"prompt_tokens":7}}}"#,
            br#"{"usage":null}"#,
            br#"{"id":"x","usage":{"prompt_tokens":1.5,"completion_tokens":"2"}}"#,
            br#"{"id":"x","usage":{"prompt_tokens":1}"#,
            br#"{"id":"x","usage":{"prompt_tokens":1}}}"#,
            br#"{"id":"x","usage":{"prompt_tokens":1}} trailing"#,
            br#"["usage",{"prompt_tokens":1}]"#,
            b"",
        ];
        for body in cases {
            assert_eq!(
                Usage::from_response(body),
                parsed_usage(body),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(
            trailing_usage(cases[0]).is_some(),
            "the common shape takes the shortcut"
        );
        assert_eq!(
            trailing_usage(cases[2]),
            None,
            "usage not last: the full parse decides"
        );
    }

    #[test]
    fn missing_usage_is_none() {
        assert_eq!(Usage::from_response(br#"{"id":"x"}"#), None);
        assert_eq!(Usage::from_response(br#"{"usage":null}"#), None);
        assert_eq!(Usage::from_response(b"not json"), None);
    }
}
