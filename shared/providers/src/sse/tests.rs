use super::*;

const CONTENT: &str = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n";
const USAGE: &str = "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n";
const DONE: &str = "data: [DONE]\n\n";

fn run(filter: &mut UsageFilter, chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend_from_slice(&filter.push(Bytes::copy_from_slice(chunk)).unwrap());
    }
    out.extend_from_slice(&filter.finish());
    out
}

#[test]
fn usage_chunk_is_dropped_unless_asked_for() {
    let stream = format!("{CONTENT}{CONTENT}{USAGE}{DONE}");
    let mut f = UsageFilter::new(false);
    let out = run(&mut f, &[stream.as_bytes()]);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("{CONTENT}{CONTENT}{DONE}")
    );
    assert_eq!(
        f.usage(),
        Some(Usage {
            input_tokens: 3,
            output_tokens: 2
        })
    );
    assert!(f.done());

    let mut f = UsageFilter::new(true);
    let out = run(&mut f, &[stream.as_bytes()]);
    assert_eq!(String::from_utf8(out).unwrap(), stream);
    assert_eq!(f.usage().unwrap().output_tokens, 2);
}

#[test]
fn any_split_gives_the_same_output() {
    let stream = format!("{CONTENT}{CONTENT}{USAGE}{DONE}");
    let bytes = stream.as_bytes();
    for cut in 1..bytes.len() {
        for third in [cut, (cut + 7).min(bytes.len())] {
            let mut f = UsageFilter::new(false);
            let out = run(
                &mut f,
                &[&bytes[..cut], &bytes[cut..third], &bytes[third..]],
            );
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("{CONTENT}{CONTENT}{DONE}"),
                "cut {cut}"
            );
            assert_eq!(f.usage().unwrap().input_tokens, 3, "cut {cut}");
        }
    }
}

#[test]
fn complete_chunks_pass_without_copy() {
    let mut f = UsageFilter::new(false);
    let chunk = Bytes::from_static(CONTENT.as_bytes());
    let out = f.push(chunk.clone()).unwrap();
    assert_eq!(out.as_ptr(), chunk.as_ptr(), "forwarded as the same buffer");
}

#[test]
fn crlf_events_and_usage_on_a_content_chunk() {
    let stream = "data: {\"choices\":[{\"delta\":{}}],\"usage\": {\"prompt_tokens\": 1.5, \"completion_tokens\": 4}}\r\n\r\ndata: [DONE]\r\n\r\n";
    let mut f = UsageFilter::new(false);
    let out = run(&mut f, &[stream.as_bytes()]);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        stream,
        "a chunk with choices is never dropped"
    );
    assert_eq!(
        f.usage(),
        Some(Usage {
            input_tokens: 2,
            output_tokens: 4
        })
    );
}

#[test]
fn an_endless_event_is_refused() {
    let mut f = UsageFilter::new(false);
    let big = Bytes::from(vec![b'a'; 1024 * 1024]);
    let mut result = Ok(Bytes::new());
    for _ in 0..5 {
        result = f.push(big.clone());
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(result, Err(ProviderError::EventTooLarge(_))));
}

#[test]
fn missing_usage_and_done_are_reported() {
    let mut f = UsageFilter::new(false);
    run(&mut f, &[CONTENT.as_bytes()]);
    assert_eq!(f.usage(), None);
    assert!(!f.done());
}

#[test]
fn usage_object_is_found_after_earlier_mentions_of_usage() {
    assert!(!has_usage_object(b""));
    assert!(!has_usage_object(CONTENT.as_bytes()), "\"usage\":null");
    assert!(has_usage_object(USAGE.as_bytes()));
    // A `"usage"` that is not a key, then a null one, then the object: the last one counts.
    let bytes = br#"data: {"content":"\"usage\" x","usage" : null}

data: {"usage" :
 {"prompt_tokens":1}}

"#;
    assert!(has_usage_object(bytes));
    assert!(!has_usage_object(br#"{"content":"ends with \"usage\""#));
    assert!(!has_usage_object(br#"{"usage": [1]}"#));
}
