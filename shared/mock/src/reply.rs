//! The answer to a text request, independent of wire format, and how its token counts are
//! written (integers, fractional floats, or not at all).

use serde::{Serialize, Serializer};

use crate::fault::UsageMode;
use crate::generate::{Completion, Finish};

/// Fixed `created` timestamp of every answer (2023-11-14), so output is fully deterministic.
pub const CREATED: u64 = 1_700_000_000;

/// Everything a wire format needs to render one answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reply<'a> {
    /// Content hash of the request; ids are derived from it.
    pub seed: u64,
    pub model: &'a str,
    pub completion: &'a Completion,
    pub prompt_tokens: u64,
    pub usage: UsageMode,
}

impl Reply<'_> {
    /// A token count as this reply reports it.
    pub fn count(&self, n: u64) -> Count {
        Count::new(n, self.usage)
    }

    pub fn completion_tokens(&self) -> u64 {
        self.completion.tokens()
    }

    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion.tokens())
    }

    /// Whether usage is reported at all.
    pub fn has_usage(&self) -> bool {
        self.usage != UsageMode::Omitted
    }

    /// OpenAI's `finish_reason`.
    pub fn finish_reason(&self) -> &'static str {
        match self.completion.finish() {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }

    /// Anthropic's `stop_reason`.
    pub fn stop_reason(&self) -> &'static str {
        match self.completion.finish() {
            Finish::Stop => "end_turn",
            Finish::Length => "max_tokens",
        }
    }
}

/// A token count on the wire. Fractional counts are `n - 0.5` (0 stays 0.0), so a reader that
/// rounds up, as the gateway must, recovers exactly what was billed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Count {
    n: u64,
    fractional: bool,
}

impl Count {
    pub fn new(n: u64, usage: UsageMode) -> Self {
        Self {
            n,
            fractional: usage == UsageMode::Fractional,
        }
    }
}

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.fractional {
            let value = if self.n == 0 {
                0.0
            } else {
                self.n as f64 - 0.5
            };
            serializer.serialize_f64(value)
        } else {
            serializer.serialize_u64(self.n)
        }
    }
}
