use super::*;

#[test]
fn the_builtin_file_parses_and_every_entry_has_a_price() {
    let table = PriceTable::from_json(BUILTIN_JSON).unwrap();
    assert!((40..=100).contains(&table.len()), "{} models", table.len());
    assert_eq!(PriceTable::builtin().len(), table.len());
    assert!(!table.is_empty());
    for (model, price) in table.iter() {
        // Every model charges for its prompt; only embeddings have a free output.
        assert!(price.input.nano_usd_per_mtok > 0, "{model}");
        let embedding = model.contains("embed");
        assert_eq!(price.output.nano_usd_per_mtok == 0, embedding, "{model}");
        // Together does not publish a completion limit apart from the context window.
        if !embedding && !model.starts_with("meta-llama/") {
            assert!(price.max_output_tokens.is_some(), "{model}");
        }
        assert!(price.max_input_tokens.is_some(), "{model}");
    }
}

#[test]
fn prices_are_exact_integers() {
    let table = PriceTable::builtin();
    let mini = table.get("gpt-4o-mini").unwrap();
    assert_eq!(mini.input.nano_usd_per_mtok, 150_000_000);
    assert_eq!(mini.output.nano_usd_per_mtok, 600_000_000);
    assert_eq!(mini.max_output_tokens, Some(16_384));
    assert_eq!(mini.max_input_tokens, Some(128_000));
    let sonnet = table.get("claude-3-5-sonnet-20241022").unwrap();
    assert_eq!(sonnet.input.nano_usd_per_mtok, 3_000_000_000);
    assert_eq!(sonnet.output.nano_usd_per_mtok, 15_000_000_000);
    // 1,000 prompt + 500 completion tokens of gpt-4o: $0.0025 + $0.005.
    let gpt4o = table.get("gpt-4o").unwrap();
    assert_eq!(gpt4o.cost_nano(1_000, 500), 7_500_000);
    let embedding = table.get("text-embedding-3-small").unwrap();
    assert_eq!(embedding.output, Price::default());
    assert_eq!(embedding.max_output_tokens, None);
}

#[test]
fn the_common_models_of_each_provider_are_listed() {
    let table = PriceTable::builtin();
    for model in [
        "gpt-4o",
        "gpt-4.1-nano",
        "gpt-5-mini",
        "o3-mini",
        "o4-mini",
        "gpt-3.5-turbo",
        "text-embedding-ada-002",
        "claude-3-5-haiku",
        "claude-3-7-sonnet-20250219",
        "claude-sonnet-4-20250514",
        "claude-opus-4",
        "claude-3-opus-20240229",
        "gemini-1.5-flash",
        "gemini-2.5-pro",
        "mistral-large-latest",
        "codestral-latest",
        "open-mistral-nemo",
        "deepseek-chat",
        "deepseek-reasoner",
        "llama-3.1-8b-instant",
        "llama-3.3-70b-versatile",
    ] {
        assert!(table.get(model).is_some(), "{model}");
    }
}

#[test]
fn provider_prefixes_are_stripped_one_at_a_time() {
    let table = PriceTable::builtin();
    let gpt4o = table.get("gpt-4o");
    assert!(gpt4o.is_some());
    assert_eq!(table.get("openai/gpt-4o"), gpt4o);
    assert_eq!(table.get("azure/gpt-4o"), gpt4o);
    assert_eq!(table.get("openrouter/openai/gpt-4o"), gpt4o);
    assert_eq!(
        table.get("anthropic/claude-3-5-sonnet-20241022"),
        table.get("claude-3-5-sonnet-20241022")
    );
    assert!(table.get("deepseek/deepseek-chat").is_some());
    assert!(table.get("groq/llama-3.3-70b-versatile").is_some());
    assert!(table.get("gemini/gemini-2.0-flash").is_some());
    // Together's names contain a slash of their own, and are found with or without the prefix.
    let together = table.get("meta-llama/Llama-3.3-70B-Instruct-Turbo");
    assert!(together.is_some());
    assert_eq!(
        table.get("together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo"),
        together
    );
}

#[test]
fn unknown_models_have_no_price() {
    let table = PriceTable::builtin();
    for model in [
        "",
        "/",
        "gpt-4o/",
        "my-finetune",
        "openai/my-finetune",
        "GPT-4O",
        "gpt-4o-mini-x",
    ] {
        assert_eq!(table.get(model), None, "{model:?}");
    }
}

#[test]
fn invalid_files_are_refused_with_the_model_named() {
    let duplicate = r#"{"m": {"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6},
                         "m": {"input_cost_per_token": 2e-6, "output_cost_per_token": 2e-6}}"#;
    let error = PriceTable::from_json(duplicate).unwrap_err();
    assert_eq!(error.to_string(), "m: listed twice");
    let negative = r#"{"m": {"input_cost_per_token": -1e-6, "output_cost_per_token": 0}}"#;
    let error = PriceTable::from_json(negative).unwrap_err();
    assert_eq!(error.to_string(), "m: invalid price");
    let missing = r#"{"m": {"input_cost_per_token": 1e-6}}"#;
    assert!(matches!(
        PriceTable::from_json(missing),
        Err(PriceTableError::Json(_))
    ));
    // Extra LiteLLM fields are ignored.
    let extra = r#"{"m": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
                          "supports_vision": true, "max_tokens": 10, "mode": "chat"}}"#;
    let table = PriceTable::from_json(extra).unwrap();
    assert_eq!(
        table.get("m").unwrap().output.nano_usd_per_mtok,
        2_000_000_000
    );
}
