//! Scripted faults: what can go wrong, how a request or the settings ask for it, and which
//! faults apply to one request.
//!
//! A request asks with `x-mock-fault: <kind>[, <kind>...]`; settings ask with
//! [`crate::FaultRule`]s matched against the request's model. Refusals (429, 500, 503, 404,
//! timeout) replace the answer and bill nothing; the others shape a normal answer.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::error::MockError;
use crate::settings::FaultRule;

/// One kind of fault, spelled on the wire as in the `x-mock-fault` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// `429`: rate limited, with `retry-after` and `retry-after-ms`.
    RateLimit,
    /// `500`: internal server error.
    ServerError,
    /// `503`: service unavailable.
    Unavailable,
    /// `404`: OpenAI's `model_not_found`.
    ModelNotFound,
    /// `timeout`: never answers (sleeps an hour) until the caller gives up.
    Timeout,
    /// `disconnect`: the connection is aborted mid-body.
    Disconnect,
    /// `no-usage`: usage is omitted everywhere.
    NoUsage,
    /// `fractional-usage`: usage counts are floats (`n - 0.5`, so rounding up gives back `n`).
    FractionalUsage,
}

impl FaultKind {
    /// Every kind, in the order the 400 message for an unknown kind lists them.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::RateLimit,
        FaultKind::ServerError,
        FaultKind::Unavailable,
        FaultKind::ModelNotFound,
        FaultKind::Timeout,
        FaultKind::Disconnect,
        FaultKind::NoUsage,
        FaultKind::FractionalUsage,
    ];

    /// The spelling used in headers and settings.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::RateLimit => "429",
            FaultKind::ServerError => "500",
            FaultKind::Unavailable => "503",
            FaultKind::ModelNotFound => "404",
            FaultKind::Timeout => "timeout",
            FaultKind::Disconnect => "disconnect",
            FaultKind::NoUsage => "no-usage",
            FaultKind::FractionalUsage => "fractional-usage",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown fault kind; its message lists the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown mock fault kind `{0}`; known kinds: 429, 500, 503, 404, timeout, disconnect, no-usage, fractional-usage"
)]
pub struct UnknownFault(pub String);

impl FromStr for FaultKind {
    type Err = UnknownFault;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        FaultKind::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| UnknownFault(text.to_owned()))
    }
}

/// Accepts `kind: 429` (a YAML integer) as well as `kind: "429"` or `kind: no-usage`.
impl<'de> Deserialize<'de> for FaultKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KindVisitor;
        impl Visitor<'_> for KindVisitor {
            type Value = FaultKind;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mock fault kind such as 429 or disconnect")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<FaultKind, E> {
                text.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, code: u64) -> Result<FaultKind, E> {
                self.visit_str(&code.to_string())
            }
            fn visit_i64<E: de::Error>(self, code: i64) -> Result<FaultKind, E> {
                self.visit_str(&code.to_string())
            }
        }
        deserializer.deserialize_any(KindVisitor)
    }
}

/// A fault that replaces the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    RateLimit,
    ServerError,
    Unavailable,
    ModelNotFound,
    Timeout,
}

/// The faults that apply to one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Faults {
    pub refusal: Option<Refusal>,
    pub disconnect: bool,
    pub no_usage: bool,
    pub fractional_usage: bool,
}

impl Faults {
    /// Parses an `x-mock-fault` header value: kinds separated by commas.
    pub fn from_header(value: &str) -> Result<Self, MockError> {
        let mut faults = Faults::default();
        for kind in value.split(',').filter(|kind| !kind.trim().is_empty()) {
            let kind: FaultKind = kind.parse().map_err(MockError::UnknownFault)?;
            faults.add(kind);
        }
        Ok(faults)
    }

    /// Adds one kind; the first refusal added wins.
    pub fn add(&mut self, kind: FaultKind) {
        let refusal = match kind {
            FaultKind::RateLimit => Refusal::RateLimit,
            FaultKind::ServerError => Refusal::ServerError,
            FaultKind::Unavailable => Refusal::Unavailable,
            FaultKind::ModelNotFound => Refusal::ModelNotFound,
            FaultKind::Timeout => Refusal::Timeout,
            FaultKind::Disconnect => {
                self.disconnect = true;
                return;
            }
            FaultKind::NoUsage => {
                self.no_usage = true;
                return;
            }
            FaultKind::FractionalUsage => {
                self.fractional_usage = true;
                return;
            }
        };
        self.refusal.get_or_insert(refusal);
    }

    /// How usage numbers are reported under these faults.
    pub fn usage(self) -> UsageMode {
        if self.no_usage {
            UsageMode::Omitted
        } else if self.fractional_usage {
            UsageMode::Fractional
        } else {
            UsageMode::Integer
        }
    }
}

/// How a response reports its token usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UsageMode {
    Integer,
    Fractional,
    Omitted,
}

/// The settings' fault rules with their firing counters (reset by [`crate::Mock::reset`]).
#[derive(Debug)]
pub(crate) struct FaultRules {
    rules: Vec<(FaultRule, AtomicU64)>,
}

impl FaultRules {
    pub fn new(rules: &[FaultRule]) -> Self {
        let rules = rules
            .iter()
            .map(|rule| (rule.clone(), AtomicU64::new(0)))
            .collect();
        Self { rules }
    }

    /// Adds the faults of every rule that matches `model` and has not used up its `times`.
    pub fn apply(&self, model: &str, faults: &mut Faults) {
        for (rule, fired) in &self.rules {
            if rule.model.as_deref().is_some_and(|m| m != model) {
                continue;
            }
            let fires = match rule.times {
                None => true,
                Some(times) => fired.fetch_add(1, Ordering::Relaxed) < times,
            };
            if fires {
                faults.add(rule.kind);
            }
        }
    }

    pub fn reset(&self) {
        for (_, fired) in &self.rules {
            fired.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_spelling() {
        for kind in FaultKind::ALL {
            assert_eq!(kind.as_str().parse::<FaultKind>(), Ok(kind));
        }
        assert_eq!(
            "bogus".parse::<FaultKind>(),
            Err(UnknownFault("bogus".into()))
        );
    }

    #[test]
    fn header_lists_combine_and_first_refusal_wins() {
        let faults = Faults::from_header("no-usage, 503,429").unwrap();
        assert!(faults.no_usage);
        assert_eq!(faults.refusal, Some(Refusal::Unavailable));
        assert!(Faults::from_header("disconnect,nope").is_err());
        assert_eq!(Faults::from_header("").unwrap(), Faults::default());
    }

    #[test]
    fn rules_match_model_and_honour_times() {
        let rules = FaultRules::new(&[
            FaultRule {
                model: Some("a".into()),
                kind: FaultKind::RateLimit,
                times: Some(1),
            },
            FaultRule {
                model: None,
                kind: FaultKind::NoUsage,
                times: None,
            },
        ]);
        let mut first = Faults::default();
        rules.apply("a", &mut first);
        assert_eq!(first.refusal, Some(Refusal::RateLimit));
        assert!(first.no_usage);
        let mut second = Faults::default();
        rules.apply("a", &mut second);
        assert_eq!(second.refusal, None, "times: 1 fires once");
        let mut other = Faults::default();
        rules.apply("b", &mut other);
        assert_eq!(other.refusal, None);
        assert!(other.no_usage);
        rules.reset();
        let mut again = Faults::default();
        rules.apply("a", &mut again);
        assert_eq!(again.refusal, Some(Refusal::RateLimit));
    }
}
