//! The built-in price table: what the common models of OpenAI, Anthropic, Google, Mistral,
//! DeepSeek, Groq and Together cost per token, for deployments whose config sets no price.
//!
//! The table is a data file, `prices.json`, in the shape of LiteLLM's cost map (model name →
//! `input_cost_per_token`, `output_cost_per_token` in USD, `max_output_tokens`,
//! `max_input_tokens`, plus fields this crate ignores), compiled into the binary and parsed
//! once. Prices become integer [`Price`]s on parsing; no float survives it.
//!
//! # Layout
//! - `lib.rs`: [`PriceTable`] (parsing and lookup with provider prefixes) and [`ModelPrice`].
//! - `prices.json`: the data, edited by hand when list prices change.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::OnceLock;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use tollgate_ledger::{Nanos, Price};

/// The data file compiled into the binary.
const BUILTIN_JSON: &str = include_str!("../prices.json");

/// What one model costs, and its token limits when known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelPrice {
    /// Price of a prompt token.
    pub input: Price,
    /// Price of a completion token (0 for embedding models).
    pub output: Price,
    /// The most tokens one completion may have.
    pub max_output_tokens: Option<u64>,
    /// The context window for the prompt.
    pub max_input_tokens: Option<u64>,
}

impl ModelPrice {
    /// The cost of a call in nano-USD, each part rounded up.
    pub fn cost_nano(&self, input_tokens: u64, output_tokens: u64) -> Nanos {
        self.input
            .cost_nano(input_tokens)
            .saturating_add(self.output.cost_nano(output_tokens))
    }
}

/// Prices by model name.
#[derive(Clone, Debug, Default)]
pub struct PriceTable {
    models: HashMap<String, ModelPrice>,
}

/// A price file that could not be read.
#[derive(Debug)]
pub enum PriceTableError {
    /// Not JSON, not an object of objects, or an entry without both prices.
    Json(serde_json::Error),
    /// A price that is negative, not finite or above $1,000 per token.
    InvalidPrice { model: String },
    /// The same model twice (JSON parsers would silently keep the last one).
    Duplicate { model: String },
}

impl fmt::Display for PriceTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PriceTableError::Json(e) => write!(f, "not a valid price file: {e}"),
            PriceTableError::InvalidPrice { model } => write!(f, "{model}: invalid price"),
            PriceTableError::Duplicate { model } => write!(f, "{model}: listed twice"),
        }
    }
}

impl std::error::Error for PriceTableError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PriceTableError::Json(e) => Some(e),
            PriceTableError::InvalidPrice { .. } | PriceTableError::Duplicate { .. } => None,
        }
    }
}

impl PriceTable {
    /// The table compiled from `prices.json`, parsed on first use.
    pub fn builtin() -> &'static PriceTable {
        static BUILTIN: OnceLock<PriceTable> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            PriceTable::from_json(BUILTIN_JSON)
                .expect("the built-in prices.json is valid (a unit test parses it)")
        })
    }

    /// Parses a price file in LiteLLM's cost-map shape. Fields other than the two prices and
    /// two token limits are ignored.
    pub fn from_json(text: &str) -> Result<PriceTable, PriceTableError> {
        let Entries(entries) = serde_json::from_str(text).map_err(PriceTableError::Json)?;
        let mut models = HashMap::with_capacity(entries.len());
        for (model, raw) in entries {
            let (Some(input), Some(output)) = (
                Price::from_usd_per_token(raw.input_cost_per_token),
                Price::from_usd_per_token(raw.output_cost_per_token),
            ) else {
                return Err(PriceTableError::InvalidPrice { model });
            };
            let price = ModelPrice {
                input,
                output,
                max_output_tokens: raw.max_output_tokens,
                max_input_tokens: raw.max_input_tokens,
            };
            match models.entry(model) {
                Entry::Occupied(entry) => {
                    return Err(PriceTableError::Duplicate {
                        model: entry.key().clone(),
                    });
                }
                Entry::Vacant(entry) => {
                    entry.insert(price);
                }
            }
        }
        Ok(PriceTable { models })
    }

    /// The price of `model`: the exact name, else the name without its provider prefixes,
    /// removed one at a time (`openrouter/openai/gpt-4o` → `openai/gpt-4o` → `gpt-4o`).
    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        let mut name = model;
        loop {
            if let Some(price) = self.models.get(name) {
                return Some(price);
            }
            name = name.split_once('/')?.1;
        }
    }

    /// Every model and its price, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ModelPrice)> {
        self.models
            .iter()
            .map(|(name, price)| (name.as_str(), price))
    }

    /// Number of models.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether the table has no model.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

/// One entry of the file as written. Both prices are required.
#[derive(Deserialize)]
struct RawPrice {
    input_cost_per_token: f64,
    output_cost_per_token: f64,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    max_input_tokens: Option<u64>,
}

/// The file's entries in order, duplicates included, so they can be reported.
struct Entries(Vec<(String, RawPrice)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;

        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of model names to prices")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }

        deserializer.deserialize_map(EntriesVisitor)
    }
}

#[cfg(test)]
mod tests;
