//! The mock never panics: hand-picked garbage bodies and a deterministic fuzz of byte-level
//! mutations of valid bodies, for every API, must each get a 200 or a 400 (drained to the end).

use bytes::Bytes;
use http::HeaderMap;

use super::read;
use crate::{Api, Mock, MockRequest, MockSettings};

const APIS: [Api; 5] = [
    Api::ChatCompletions,
    Api::Completions,
    Api::Embeddings,
    Api::Models,
    Api::AnthropicMessages,
];

const GARBAGE: &[&str] = &[
    "",
    " ",
    "null",
    "[]",
    "{}",
    "42",
    "\"text\"",
    "{",
    "{\"model\":",
    "{\"model\": 5, \"messages\": []}",
    "{\"model\": \"m\", \"messages\": \"hello\"}",
    "{\"model\": \"m\", \"messages\": [null]}",
    "{\"model\": \"m\", \"messages\": [{\"content\": 5}]}",
    "{\"model\": \"m\", \"messages\": [{\"content\": [1, 2]}]}",
    "{\"model\": \"m\", \"messages\": [{\"content\": [{\"text\": null}]}]}",
    "{\"model\": \"m\", \"messages\": [{}], \"max_tokens\": -1}",
    "{\"model\": \"m\", \"messages\": [{}], \"max_tokens\": 1e400}",
    "{\"model\": \"m\", \"messages\": [{}], \"stream\": \"yes\"}",
    "{\"model\": \"m\", \"messages\": [{}], \"stream_options\": []}",
    "{\"model\": \"m\", \"prompt\": [[\"a\"]]}",
    "{\"model\": \"m\", \"prompt\": {}}",
    "{\"model\": \"m\", \"input\": []}",
    "{\"model\": \"m\", \"input\": [[]], \"dimensions\": 0}",
    "{\"model\": \"m\", \"input\": \"x\", \"encoding_format\": \"hex\"}",
    "{\"model\": \"m\", \"system\": 3, \"messages\": [{}]}",
    "{\"model\": \"\\ud800\", \"messages\": [{\"content\": \"\\u0000\"}]}",
    "\u{feff}{\"model\": \"m\"}",
    "{\"model\": \"m\", \"messages\": [{\"content\": \"   \"}], \"mock_response\": \"  \"}",
    "{\"model\": \"m\", \"messages\": [{\"content\": \"x\"}], \"max_tokens\": 18446744073709551615}",
];

const VALID: &[&str] = &[
    r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi you"}]}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":3}"#,
    r#"{"model":"m","prompt":["a b",[1,2]],"stream":false,"mock_response":"é ü  ñ"}"#,
    r#"{"model":"m","input":[[1,2],[3]],"dimensions":4,"encoding_format":"base64"}"#,
    r#"{"model":"m","system":[{"type":"text","text":"s"}],"messages":[{"role":"user","content":"x"}],"stream":true}"#,
];

async fn answer(mock: &Mock, api: Api, body: Bytes) -> u16 {
    let request = MockRequest {
        api,
        body,
        headers: HeaderMap::new(),
        deployment: None,
    };
    let response = mock.handle(request).await;
    let status = response.status.as_u16();
    read(response.body).await;
    status
}

#[tokio::test]
async fn garbage_bodies_are_400_never_a_panic() {
    let mock = Mock::new(MockSettings::default());
    for api in APIS {
        for body in GARBAGE {
            let status = answer(&mock, api, Bytes::from_static(body.as_bytes())).await;
            match api {
                Api::Models => assert_eq!(status, 200),
                _ => assert!(
                    status == 400 || status == 200,
                    "{api:?} {body:?} -> {status}"
                ),
            }
        }
    }
    // The clearly invalid ones really are rejected.
    assert_eq!(
        answer(&mock, Api::ChatCompletions, Bytes::from_static(b"{")).await,
        400
    );
    assert_eq!(
        answer(
            &mock,
            Api::Embeddings,
            Bytes::from_static(b"{\"model\":\"m\",\"input\":[]}")
        )
        .await,
        400
    );
}

/// xorshift64*: a fixed sequence, so a failure reproduces.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn mutate(valid: &[u8], state: &mut u64) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    for _ in 0..=next(state) % 4 {
        let at = (next(state) % (bytes.len() as u64 + 1)) as usize;
        match next(state) % 4 {
            0 => bytes.truncate(at),
            1 if at < bytes.len() => bytes[at] = (next(state) % 256) as u8,
            2 => {
                const ALPHABET: &[u8] = b"{}[]\",:0-e\\u ";
                bytes.insert(at, ALPHABET[(next(state) % ALPHABET.len() as u64) as usize]);
            }
            _ if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => {}
        }
    }
    bytes
}

#[tokio::test]
async fn mutated_valid_bodies_never_panic() {
    let mock = Mock::new(MockSettings::default());
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut statuses = [0usize; 2];
    for round in 0..3_000 {
        let valid = VALID[round % VALID.len()];
        let api = APIS[(round / VALID.len()) % APIS.len()];
        let body = mutate(valid.as_bytes(), &mut state);
        let status = answer(&mock, api, Bytes::from(body.clone())).await;
        assert!(
            status == 200 || status == 400,
            "{api:?} {:?} -> {status}",
            String::from_utf8_lossy(&body)
        );
        statuses[usize::from(status == 200)] += 1;
    }
    assert!(
        statuses[0] > 100 && statuses[1] > 100,
        "the fuzz exercises both paths: {statuses:?}"
    );
}
