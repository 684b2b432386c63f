use super::*;
use serde_json::json;

fn schema(name: &str) -> jsonschema::Validator {
    let path = format!("{}/json/{name}.schema.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("schema file");
    jsonschema::validator_for(&serde_json::from_str(&text).expect("schema json")).expect("valid schema")
}

fn parse(value: &[u8]) -> Result<ReviewV1, Poison> {
    parse_review(Some(b"key-1"), Some(value), || "t:0:7".into(), ParseLimits::default())
}

#[test]
fn design_example_review_validates_and_round_trips() {
    let example = json!({"id": "r-000123", "text": "手机很好，漂亮时尚，赠品一般", "source": "jd", "created_at": "2026-11-27T12:00:00Z"});
    assert!(schema("review.v1").is_valid(&example));
    let review = parse(example.to_string().as_bytes()).expect("valid");
    assert_eq!(review.id, "r-000123");
    assert_eq!(review.extra["source"], "jd");
    assert_eq!(serde_json::to_value(&review).expect("serialize"), example);
}

#[test]
fn design_example_classification_validates_and_round_trips() {
    let example = json!({"id": "r-000123", "label": "1", "score": 0.9975, "scores": {"-1": 0.0011, "0": 0.0014, "1": 0.9975},
        "model": "mobile@3f2a9c01b2de", "source": {"topic": "reviews", "partition": 0, "offset": 123},
        "classified_at": "2026-11-27T12:00:00.123Z"});
    assert!(schema("classification.v1").is_valid(&example));
    let c: ClassificationV1 = serde_json::from_value(example.clone()).expect("deserialize");
    // Through text, as on the wire: f32 scores print as their shortest form.
    let back: serde_json::Value = serde_json::from_str(&serde_json::to_string(&c).expect("serialize")).expect("json");
    assert!(schema("classification.v1").is_valid(&back));
    assert_eq!(back["scores"], example["scores"]);
    assert_eq!(serde_json::from_value::<ClassificationV1>(back).expect("again"), c);
}

#[test]
fn schema_rejects_what_the_parser_rejects() {
    for bad in [json!({"id": "x"}), json!({"id": "x", "text": ""}), json!({"id": "x", "text": 5}), json!([1])] {
        assert!(!schema("review.v1").is_valid(&bad), "{bad}");
        assert!(parse(bad.to_string().as_bytes()).is_err(), "{bad}");
    }
}

#[test]
fn id_falls_back_to_key_then_position() {
    assert_eq!(parse(br#"{"text":"ok"}"#).expect("valid").id, "key-1");
    let r = parse_review(None, Some(br#"{"text":"ok"}"#), || "t:0:7".into(), ParseLimits::default());
    assert_eq!(r.expect("valid").id, "t:0:7");
    assert_eq!(parse(br#"{"id":42,"text":"ok"}"#).expect("valid").id, "42");
}

#[test]
fn each_poison_kind_is_named() {
    let limits = ParseLimits::default();
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    let huge = vec![b'a'; limits.max_bytes + 1];
    let cases: Vec<(Option<&[u8]>, &str)> = vec![
        (None, "tombstone"),
        (Some(&huge), "too_large"),
        (Some(b"{\"text\":\"\xff\xfe\"}"), "invalid_utf8"),
        (Some(b"{\"text\": "), "invalid_json"),
        (Some(deep.as_bytes()), "too_deep"),
        (Some(br#"{"id":"a","text":["x"]}"#), "wrong_type"),
        (Some(br#"{"id":{"x":1},"text":"x"}"#), "wrong_type"),
        (Some(br#""just a string""#), "wrong_type"),
        (Some(br#"{"id":"a"}"#), "missing_text"),
        (Some(br#"{"id":"a","text":"  "}"#), "empty_text"),
        (Some(br#"{"id":"a","text":"a\u0000b"}"#), "nul_character"),
        (Some(br#"{"id":"","text":"x"}"#), "invalid_id"),
    ];
    for (value, kind) in cases {
        let err = parse_review(Some(b"k"), value, || "t:0:0".into(), limits).expect_err(kind);
        assert_eq!(err.kind(), kind, "{err}");
    }
}

#[test]
fn brackets_inside_strings_do_not_count_as_depth() {
    let text = format!(r#"{{"id":"a","text":"{}"}}"#, "[".repeat(500));
    assert!(parse(text.as_bytes()).is_ok());
}
