//! Which models a caller may use. One function answers it for both inference and discovery
//! (`GET /v1/models` lists exactly what a key may call), so the two can never disagree.

use std::collections::HashMap;

/// On a key: "whatever my team may use".
pub const ALL_TEAM_MODELS: &str = "all-team-models";
/// On any list: every model of the proxy.
pub const ALL_PROXY_MODELS: &str = "all-proxy-models";

/// `model_info.access_groups` from the config: a group name in a `models` list grants every
/// model of the group.
#[derive(Clone, Debug, Default)]
pub struct AccessGroups {
    groups: HashMap<String, Vec<String>>,
}

impl AccessGroups {
    /// Builds the groups from `(group, model_name)` pairs.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut groups: HashMap<String, Vec<String>> = HashMap::new();
        for (group, model) in pairs {
            let models = groups.entry(group).or_default();
            if !models.contains(&model) {
                models.push(model);
            }
        }
        Self { groups }
    }

    /// Whether one level's `models` list admits `model`. An empty list restricts nothing; it
    /// defers to the other levels.
    pub fn allows(&self, list: &[String], model: &str) -> bool {
        list.is_empty() || list.iter().any(|entry| self.entry_allows(entry, model))
    }

    fn entry_allows(&self, entry: &str, model: &str) -> bool {
        if entry == model || entry == "*" || entry == ALL_PROXY_MODELS {
            return true;
        }
        if let Some(prefix) = entry.strip_suffix('*')
            && model.starts_with(prefix)
        {
            return true;
        }
        self.groups
            .get(entry)
            .is_some_and(|models| models.iter().any(|m| m == model))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn exact_wildcard_group_and_empty() {
        let groups = AccessGroups::new([("beta".to_owned(), "gpt-5".to_owned())]);
        assert!(groups.allows(&[], "anything"));
        assert!(groups.allows(&list(&["gpt-4o"]), "gpt-4o"));
        assert!(!groups.allows(&list(&["gpt-4o"]), "gpt-4o-mini"));
        assert!(groups.allows(&list(&["openai/*"]), "openai/gpt-4o"));
        assert!(!groups.allows(&list(&["openai/*"]), "anthropic/claude"));
        assert!(groups.allows(&list(&["beta"]), "gpt-5"));
        assert!(!groups.allows(&list(&["beta"]), "gpt-4o"));
        assert!(groups.allows(&list(&["all-proxy-models"]), "x"));
    }
}
