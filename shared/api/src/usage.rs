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
        #[derive(Deserialize)]
        struct Envelope {
            usage: Option<RawUsage>,
        }
        serde_json::from_slice::<Envelope>(body)
            .ok()?
            .usage
            .map(RawUsage::into_usage)
    }
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
    fn missing_usage_is_none() {
        assert_eq!(Usage::from_response(br#"{"id":"x"}"#), None);
        assert_eq!(Usage::from_response(br#"{"usage":null}"#), None);
        assert_eq!(Usage::from_response(b"not json"), None);
    }
}
