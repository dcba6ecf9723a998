//! The billing log, per-key concurrency counts and timing knobs (in paused time).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tokio::time::Instant;

use super::{call, chat_body, request};
use crate::{
    Api, BillingRecord, KeyStats, Mock, MockBody, MockSettings, ModelPrice, TOKENS_PER_MESSAGE,
};

fn streamed() -> serde_json::Value {
    let mut body = chat_body("count my tokens");
    body["stream"] = json!(true);
    body
}

#[tokio::test]
async fn records_carry_caller_ids_tokens_and_cost() {
    let mut prices = BTreeMap::new();
    prices.insert(
        "pricey".to_owned(),
        ModelPrice {
            input_price_nano: 10,
            output_price_nano: 100,
        },
    );
    let mock = Mock::new(MockSettings {
        prices,
        ..MockSettings::default()
    });
    let headers = [
        ("authorization", "Bearer sk-1"),
        ("x-request-id", "req-9"),
        ("x-tollgate-attempt", "2"),
    ];
    call(
        &mock,
        request(Api::ChatCompletions, &chat_body("a b"), &headers),
    )
    .await;
    let pricey = json!({"model": "pricey", "messages": [{"role": "user", "content": "a b"}]});
    call(&mock, request(Api::ChatCompletions, &pricey, &[])).await;
    let prompt = 2 + TOKENS_PER_MESSAGE;
    assert_eq!(
        mock.billing(),
        [
            BillingRecord {
                request_id: "req-9".into(),
                attempt: 2,
                key: "sk-1".into(),
                model: "mock-gpt".into(),
                api: Api::ChatCompletions,
                stream: false,
                prompt_tokens: prompt,
                completion_tokens: 16,
                billed_nano_usd: prompt * 1_000 + 16 * 2_000,
                disconnected: false,
            },
            BillingRecord {
                request_id: "mock-1".into(),
                attempt: 1,
                key: "anonymous".into(),
                model: "pricey".into(),
                api: Api::ChatCompletions,
                stream: false,
                prompt_tokens: prompt,
                completion_tokens: 16,
                billed_nano_usd: prompt * 10 + 16 * 100,
                disconnected: false,
            },
        ]
    );
    let embed = json!({"model": "e", "input": "x y z"});
    call(&mock, request(Api::Embeddings, &embed, &[])).await;
    let last = mock.billing().pop().unwrap();
    assert_eq!(
        (last.api, last.prompt_tokens, last.completion_tokens),
        (Api::Embeddings, 3, 0)
    );
}

#[tokio::test]
async fn a_stream_read_to_the_end_is_billed_once_in_full() {
    let mock = Mock::new(MockSettings::default());
    let answer = call(&mock, request(Api::ChatCompletions, &streamed(), &[])).await;
    assert!(!answer.disconnected);
    let billed = mock.billing();
    assert_eq!(billed.len(), 1);
    assert!(billed[0].stream);
    assert!(!billed[0].disconnected);
    assert_eq!(billed[0].completion_tokens, 16);
}

#[tokio::test]
async fn a_stream_dropped_midway_bills_the_tokens_emitted() {
    let mock = Mock::new(MockSettings::default());
    let response = mock
        .handle(request(Api::ChatCompletions, &streamed(), &[]))
        .await;
    let MockBody::Stream(mut body) = response.body else {
        panic!("expected a stream")
    };
    body.next().await.unwrap().unwrap();
    body.next().await.unwrap().unwrap();
    assert!(
        mock.billing().is_empty(),
        "not billed while the stream is alive"
    );
    assert_eq!(mock.key_stats()["anonymous"].in_flight, 1);
    drop(body);
    let billed = mock.billing();
    assert_eq!(billed.len(), 1);
    assert!(billed[0].disconnected);
    assert_eq!(
        billed[0].completion_tokens, 1,
        "role chunk + one token chunk"
    );
    assert_eq!(
        billed[0].billed_nano_usd,
        billed[0].prompt_tokens * 1_000 + 2_000
    );
    assert_eq!(mock.key_stats()["anonymous"].in_flight, 0);
}

#[tokio::test]
async fn an_unread_stream_bills_the_prompt_only() {
    let mock = Mock::new(MockSettings::default());
    drop(
        mock.handle(request(Api::AnthropicMessages, &streamed(), &[]))
            .await,
    );
    let billed = mock.billing();
    assert_eq!(
        (billed[0].completion_tokens, billed[0].disconnected),
        (0, true)
    );
    assert_eq!(billed[0].api, Api::AnthropicMessages);
}

#[tokio::test]
async fn concurrency_counts_return_to_zero_and_keep_the_peak() {
    let mock = Mock::new(MockSettings::default());
    let key = [("authorization", "Bearer sk-c")];
    let first = mock
        .handle(request(Api::ChatCompletions, &streamed(), &key))
        .await;
    let second = mock
        .handle(request(Api::ChatCompletions, &streamed(), &key))
        .await;
    assert_eq!(
        mock.key_stats()["sk-c"],
        KeyStats {
            in_flight: 2,
            peak_in_flight: 2,
            requests: 2
        }
    );
    drop(first);
    let (_, _) = super::read(second.body).await;
    call(&mock, request(Api::ChatCompletions, &chat_body("x"), &key)).await;
    assert_eq!(
        mock.key_stats()["sk-c"],
        KeyStats {
            in_flight: 0,
            peak_in_flight: 2,
            requests: 3
        }
    );
    mock.reset();
    assert!(mock.key_stats().is_empty());
    assert!(mock.billing().is_empty());
}

#[tokio::test(start_paused = true)]
async fn latency_delays_non_streamed_answers_and_counts_as_in_flight() {
    let settings = MockSettings {
        latency_ms: 250,
        ..MockSettings::default()
    };
    let mock = Mock::new(settings);
    let start = Instant::now();
    let (a, b) = tokio::join!(
        call(&mock, request(Api::ChatCompletions, &chat_body("x"), &[])),
        call(
            &mock,
            request(
                Api::ChatCompletions,
                &chat_body("y"),
                &[("x-mock-latency-ms", "400")]
            )
        ),
    );
    assert_eq!((a.status.as_u16(), b.status.as_u16()), (200, 200));
    assert_eq!(start.elapsed(), Duration::from_millis(400));
    let stats = mock.key_stats()["anonymous"];
    assert_eq!((stats.in_flight, stats.peak_in_flight), (0, 2));
}

#[tokio::test(start_paused = true)]
async fn ttft_and_tokens_per_second_pace_the_stream() {
    let mock = Mock::new(MockSettings::default());
    let mut body = streamed();
    body["max_tokens"] = json!(4);
    let headers = [
        ("x-mock-ttft-ms", "300"),
        ("x-mock-tokens-per-second", "10"),
    ];
    let response = mock
        .handle(request(Api::ChatCompletions, &body, &headers))
        .await;
    let MockBody::Stream(mut stream) = response.body else {
        panic!("expected a stream")
    };
    let start = Instant::now();
    let mut arrivals = Vec::new();
    while let Some(item) = stream.next().await {
        item.unwrap();
        arrivals.push(start.elapsed().as_millis());
    }
    // role chunk after ttft, then 4 tokens 100 ms apart, then finish chunk and [DONE] at once.
    assert_eq!(arrivals, [300, 400, 500, 600, 700, 700, 700]);
}

#[tokio::test(start_paused = true)]
async fn unpaced_streams_take_no_time() {
    let mock = Mock::new(MockSettings::default());
    let start = Instant::now();
    let answer = call(&mock, request(Api::ChatCompletions, &streamed(), &[])).await;
    assert_eq!(answer.chunks.len(), 19);
    assert_eq!(start.elapsed(), Duration::ZERO);
}
