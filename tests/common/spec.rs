//! Every response the integration suite receives through [`TestApp`]'s
//! helpers is checked against the OpenAPI document the server serves: the
//! status must be documented for the operation (or covered by `default`),
//! and a JSON body must satisfy the documented schema (JSON Schema 2020-12,
//! formats asserted). A mismatch fails the test that saw it, so the
//! document cannot drift from the server.
//!
//! [`TestApp`]: super::TestApp
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use serde_json::{Value, json};

struct Spec {
    doc: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| Spec {
        doc: aduana_host::api::openapi::document(),
        validators: Mutex::default(),
    })
}

impl Spec {
    fn validator(&self, schema_name: &str) -> Arc<jsonschema::Validator> {
        let mut cache = self.validators.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(cache.entry(schema_name.to_owned()).or_insert_with(|| {
            let root = json!({
                "$ref": format!("#/components/schemas/{schema_name}"),
                "components": self.doc["components"],
            });
            Arc::new(
                jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .should_validate_formats(true)
                    .build(&root)
                    .unwrap_or_else(|e| panic!("schema {schema_name} does not compile: {e}")),
            )
        }))
    }

    /// The documented operation (template, its object) for `method` `path`.
    fn operation(&self, method: &str, path: &str) -> Option<(String, &Value)> {
        let segments: Vec<&str> = path.split('/').collect();
        let paths = self.doc["paths"].as_object()?;
        paths.iter().find_map(|(template, item)| {
            let parts: Vec<&str> = template.split('/').collect();
            let matches = parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s);
            let op = item.get(method.to_ascii_lowercase())?;
            matches.then(|| (template.clone(), op))
        })
    }
}

/// Checks one response; panics with what differs.
pub fn check_response(method: &str, path: &str, status: u16, content_type: &str, body: &Value) {
    let spec = spec();
    let path = path.split('?').next().unwrap_or(path);
    let schema_name = match spec.operation(method, path) {
        Some((template, op)) => {
            let responses = &op["responses"];
            let response = responses
                .get(status.to_string())
                .or_else(|| responses.get("default"))
                .unwrap_or_else(|| {
                    panic!("{method} {template}: status {status} is not documented\n{body}")
                });
            let Some(content) = response["content"].as_object() else {
                return;
            };
            // A text answer where text is documented beside JSON.
            if content_type.starts_with("text/plain") && content.contains_key("text/plain") {
                return;
            }
            let Some((media, declared)) = content.iter().next() else {
                return;
            };
            if media != "application/json" {
                assert!(
                    content_type.starts_with(media.as_str()),
                    "{method} {template} {status}: served `{content_type}`, documented `{media}`"
                );
                return;
            }
            declared["schema"]["$ref"]
                .as_str()
                .and_then(|r| r.rsplit('/').next())
                .unwrap_or_else(|| panic!("{method} {template} {status}: no schema reference"))
                .to_owned()
        }
        // Undocumented paths and methods answer with the error body.
        None => {
            assert!(
                status >= 400,
                "{method} {path} answered {status} but is not documented"
            );
            "Error".to_owned()
        }
    };
    assert!(
        content_type.starts_with("application/json"),
        "{method} {path} {status}: served `{content_type}` where JSON is documented"
    );
    let validator = spec.validator(&schema_name);
    let problems: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("  at `{}`: {e}", e.instance_path))
        .take(5)
        .collect();
    assert!(
        problems.is_empty(),
        "{method} {path} {status} does not match schema {schema_name}:\n{}\nbody: {body}",
        problems.join("\n")
    );
}
