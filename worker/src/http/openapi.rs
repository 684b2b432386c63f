//! `GET /openapi.json`: OpenAPI 3.1 built from the endpoint list the router
//! mounts (`routes::ENDPOINTS`), the error table and the JSON Schemas of the
//! bodies below.

use serde_json::{json, Map, Value};

use super::endpoint::{Access, Endpoint};
use super::error::{ADMIN_DISABLED, ERRORS};

/// The description of `endpoints`; every API endpoint also lists the refusals
/// any of them may give (from the error table).
pub fn document(endpoints: &[Endpoint], model: &str) -> Value {
    let mut paths = Map::new();
    for e in endpoints {
        let guarded = matches!(e.access, Access::Api | Access::Admin);
        let refusals = ERRORS
            .iter()
            .filter(|k| guarded && k.any_api_endpoint || e.access == Access::Admin && k.code == ADMIN_DISABLED.code)
            .map(|k| (k.status, "Error"));
        let mut responses = Map::new();
        for (status, body) in e.responses.iter().copied().chain(refusals) {
            let content = if schema(body).is_some() {
                json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}})
            } else {
                json!({ body: {} })
            };
            responses.insert(status.to_string(), json!({"description": description(status), "content": content}));
        }
        let mut op =
            json!({"summary": e.summary, "operationId": operation_id(e.method, e.path), "responses": responses});
        if let Some(body) = e.request {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}});
            if body == "QueryRequest" {
                op["requestBody"]["content"]["application/x-www-form-urlencoded"] =
                    json!({"schema": {"$ref": "#/components/schemas/QueryRequest"}});
            }
        }
        let params = parameters(e.path);
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        match e.access {
            Access::Api => op["security"] = json!([{"bearer": []}, {}]),
            Access::Admin => op["security"] = json!([{"admin": []}]),
            Access::Public => {}
        }
        let item = paths.entry(e.path).or_insert_with(|| json!({}));
        item[e.method] = op;
    }
    let schemas: Map<String, Value> =
        SCHEMAS.iter().filter_map(|name| Some((name.to_string(), schema(name)?))).collect();
    json!({
        "openapi": "3.1.0",
        "info": {"title": "bertstream", "version": env!("CARGO_PKG_VERSION"),
                 "description": format!("Text classification: the stream's results and synchronous queries. Model: {model}")},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Required when the worker has API_TOKENS"},
                "admin": {"type": "http", "scheme": "bearer", "description": "One of the worker's ADMIN_TOKENS"}
            }
        }
    })
}

fn operation_id(method: &str, path: &str) -> String {
    let words: String = path.split(['/', '{', '}', '.']).filter(|w| !w.is_empty()).collect::<Vec<_>>().join("_");
    format!("{method}_{}", if words.is_empty() { "index" } else { &words })
}

/// "OK" for 200; for a refusal, what the error table says of its kinds.
fn description(status: u16) -> String {
    if status == 200 {
        return "OK".into();
    }
    ERRORS.iter().filter(|k| k.status == status).map(|k| k.description).collect::<Vec<_>>().join("; ")
}

fn parameters(path: &str) -> Vec<Value> {
    let query = |name: &str, schema: Value, text: &str| json!({"name": name, "in": "query", "required": false, "schema": schema, "description": text});
    match path {
        "/v1/reviews/{id}" => vec![json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}})],
        "/static/{file}" => vec![json!({"name": "file", "in": "path", "required": true, "schema": {"type": "string"}})],
        "/v1/reviews" => vec![
            query("label", json!({"type": "string"}), "only this label"),
            query(
                "below",
                json!({"type": "number", "minimum": 0, "maximum": 1}),
                "only results whose top score is under this (the review queue)",
            ),
            query("limit", json!({"type": "integer", "minimum": 1, "maximum": 500, "default": 50}), "rows per page"),
            query("before", json!({"type": "string"}), "the `next` cursor of the previous page"),
        ],
        "/v1/models/compare" => vec![
            json!({"name": "a", "in": "query", "required": true, "schema": {"type": "string"}, "description": "a model id"}),
            json!({"name": "b", "in": "query", "required": true, "schema": {"type": "string"}, "description": "another model id"}),
            query("since", json!({"type": "string", "format": "date-time"}), "only reviews `a` scored from then on"),
        ],
        _ => vec![],
    }
}

const SCHEMAS: &[&str] = &[
    "Error",
    "ClassifyRequest",
    "ClassifyResponse",
    "TextResult",
    "StoredReview",
    "ReviewPage",
    "Stats",
    "EncodeRequest",
    "EncodeResponse",
    "QueryRequest",
    "QueryResponse",
    "Ready",
    "Models",
    "LoadedModel",
    "Comparison",
    "SwapRequest",
    "ModelChange",
];

fn schema(name: &str) -> Option<Value> {
    let scores =
        json!({"type": "object", "additionalProperties": {"type": "number"}, "description": "probability per label"});
    let s = match name {
        "Error" => {
            json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string", "enum": ERRORS.iter().map(|k| k.code).collect::<Vec<_>>()},
                           "message": {"type": "string"}}}}})
        }
        "ClassifyRequest" => {
            json!({"type": "object", "additionalProperties": false, "description": "exactly one of texts, text",
            "properties": {"texts": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}, "text": {"type": "string", "minLength": 1}}})
        }
        "TextResult" => json!({"type": "object", "required": ["label", "score", "scores"],
            "properties": {"label": {"type": "string"}, "score": {"type": "number"}, "scores": scores}}),
        "ClassifyResponse" => json!({"type": "object", "required": ["model", "labels", "results", "took_ms"],
            "properties": {"model": {"type": "string"}, "labels": {"type": "array", "items": {"type": "string"}}, "results": {"type": "array", "items": {"$ref": "#/components/schemas/TextResult"}}, "took_ms": {"type": "number"}}}),
        "StoredReview" => {
            json!({"type": "object", "required": ["id", "text", "label", "score", "scores", "model", "source", "classified_at"],
            "properties": {"id": {"type": "string"}, "text": {"type": "string"}, "label": {"type": "string"}, "score": {"type": "number"}, "scores": scores,
                "model": {"type": "string"}, "classified_at": {"type": "string", "format": "date-time"}, "fields": {"type": "object"},
                "text_truncated": {"type": "boolean", "description": "in a list: the text was cut at 1000 characters"},
                "source": {"type": "object", "properties": {"topic": {"type": "string"}, "partition": {"type": "integer"}, "offset": {"type": "integer"}}}}})
        }
        "ReviewPage" => json!({"type": "object", "required": ["items", "next"],
            "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/StoredReview"}}, "next": {"type": ["string", "null"]}}}),
        "Stats" => {
            json!({"type": "object", "properties": {"model": {"type": "string"}, "labels": {"type": "array", "items": {"type": "string"}},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}}, "total": {"type": "integer"}, "recent": {"type": "integer"},
            "window_secs": {"type": "integer"}, "per_second": {"type": "number"}, "consumer_lag": {"type": "integer"},
            "partition_lag": {"type": "object", "additionalProperties": {"type": "integer"}, "description": "lag by assigned input partition"},
            "drain_seconds": {"type": ["number", "null"], "description": "lag over the recent rate of results; null when none are being made"},
            "queue_depth": {"type": "integer"}}})
        }
        "EncodeRequest" => {
            json!({"type": "object", "required": ["texts"], "properties": {"id": {"description": "echoed back"},
            "texts": {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}},
            "is_tokenized": {"type": "boolean", "default": false}}})
        }
        "EncodeResponse" => {
            json!({"type": "object", "required": ["id", "result", "status"], "properties": {"id": {}, "status": {"const": 200},
            "result": {"type": "array", "minItems": 1, "maxItems": 1, "items": {"type": "object", "properties": {
                "pred_label": {"type": "array", "items": {"type": "string"}}, "score": {"type": "array", "items": {"type": "number"}}}}}}})
        }
        "QueryRequest" => {
            json!({"type": "object", "required": ["text"], "properties": {"text": {"type": "string", "description": "one sentence per line"}}})
        }
        "QueryResponse" => json!({"type": "object", "required": ["result"], "properties": {
            "result": {"oneOf": [{"type": "array", "items": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "string"}], "description": "[label, line]"}},
                                 {"const": "error", "description": "the text was empty"}]},
            "score": {"type": "array", "items": {"type": "number"}}, "model": {"type": "string"}}}),
        "Ready" => {
            json!({"type": "object", "properties": {"ready": {"type": "boolean"}, "model": {"type": "string"}, "postgres": {"type": "boolean"}, "kafka": {"type": "boolean"},
                "sinks": {"type": "boolean", "description": "false when batches have waited SINK_STALL_SECS without any becoming durable"}}})
        }
        "LoadedModel" => json!({"type": "object", "required": ["id", "labels", "device", "loaded_at", "scored"],
            "properties": {"id": {"type": "string"}, "labels": {"type": "array", "items": {"type": "string"}},
                "device": {"type": "string"}, "loaded_at": {"type": "string", "format": "date-time"},
                "scored": {"type": "integer", "description": "texts this worker scored with it since it was loaded"}}}),
        "Models" => json!({"type": "object", "required": ["primary", "shadow", "shadow_sample", "rolling"],
            "properties": {"primary": {"$ref": "#/components/schemas/LoadedModel"},
                "shadow": {"oneOf": [{"$ref": "#/components/schemas/LoadedModel"}, {"type": "null"}]},
                "shadow_sample": {"type": "number"},
                "rolling": {"type": "object", "description": "over the last `window` results: agreement of shadow and primary, label shares by role"}}}),
        "Comparison" => json!({"type": "object", "required": ["a", "b", "reviews", "agreement", "confusion"],
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}, "reviews": {"type": "integer"},
                "agreement": {"type": ["number", "null"]}, "mean_score_difference": {"type": ["number", "null"]},
                "confusion": {"type": "object", "description": "confusion[a_label][b_label] = reviews"},
                "a_labels": {"type": "object"}, "b_labels": {"type": "object"}}}),
        "SwapRequest" => json!({"type": "object", "required": ["dir"], "additionalProperties": false,
            "properties": {"dir": {"type": "string", "description": "a model directory on the worker's machine"}}}),
        "ModelChange" => json!({"type": "object", "required": ["primary", "previous"],
            "properties": {"primary": {"type": "string"}, "previous": {"type": "string"}, "shadow": {"type": ["string", "null"]}}}),
        _ => return None,
    };
    Some(s)
}
