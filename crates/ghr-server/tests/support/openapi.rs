//! Reading `openapi.json` and checking real answers against its schemas: types, `required`, `nullable`,
//! `enum`, `allOf`, formats of instants, and (stricter than OpenAPI) that every field an answer carries is
//! documented, so the document cannot fall behind the server.

use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// The document, as shipped with the crate.
pub const DOCUMENT: &str = include_str!("../../openapi.json");
/// The HTTP methods an OpenAPI path item may hold.
pub const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// One operation of the document.
#[derive(Debug, Clone)]
pub struct Operation {
    pub method: String,
    pub path: String,
    pub body: Value,
}

pub struct Spec {
    doc: Value,
}

impl Spec {
    pub fn load() -> Spec {
        let doc: Value = serde_json::from_str(DOCUMENT).expect("openapi.json is valid JSON");
        assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.0.")), Some(true), "an OpenAPI 3.0 document");
        Spec { doc }
    }

    pub fn doc(&self) -> &Value {
        &self.doc
    }

    pub fn operations(&self) -> Vec<Operation> {
        let paths = self.doc["paths"].as_object().expect("the document has paths");
        let mut out = Vec::new();
        for (path, item) in paths {
            for method in METHODS {
                if let Some(body) = item.get(*method) {
                    out.push(Operation { method: (*method).to_owned(), path: path.clone(), body: body.clone() });
                }
            }
        }
        out
    }

    pub fn operation(&self, method: &str, path: &str) -> Operation {
        self.operations()
            .into_iter()
            .find(|op| op.method == method && op.path == path)
            .unwrap_or_else(|| panic!("openapi.json has no operation {method} {path}"))
    }

    /// Follow `$ref`s (local ones only) to the value they name.
    pub fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
            let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("non-local $ref {reference}"));
            value = self.doc.pointer(pointer).unwrap_or_else(|| panic!("dangling $ref {reference}"));
        }
        value
    }

    /// Whether the operation needs the bearer token (its own `security`, or the document's).
    pub fn is_protected(&self, op: &Operation) -> bool {
        let security = op.body.get("security").unwrap_or(&self.doc["security"]);
        security.as_array().is_some_and(|s| !s.is_empty())
    }

    /// The schema of an answer: `method path` answering `status` with `media`.
    pub fn response_schema(&self, method: &str, path: &str, status: u16, media: &str) -> &Value {
        let op = self.doc["paths"][path][method].clone();
        assert!(!op.is_null(), "openapi.json has no operation {method} {path}");
        let response = self.doc.pointer(&format!("/paths/{}/{method}/responses/{status}", escape(path)));
        let response = self.resolve(response.unwrap_or_else(|| panic!("{method} {path} documents no {status}")));
        let schema = response
            .pointer(&format!("/content/{}/schema", escape(media)))
            .unwrap_or_else(|| panic!("{method} {path} {status} documents no {media} schema"));
        self.resolve(schema)
    }

    /// Check a real answer against the documented one; panics with every mismatch.
    #[track_caller]
    pub fn assert_answer(&self, method: &str, path: &str, status: u16, value: &Value) {
        let schema = self.response_schema(method, path, status, "application/json");
        let mut errors = Vec::new();
        self.check(schema, value, "$", &mut errors);
        assert!(
            errors.is_empty(),
            "{method} {path} answered {status} unlike openapi.json:\n{}\n{value:#}",
            errors.join("\n")
        );
    }

    /// The names of the `required` fields of a (component) schema, `allOf` parts included.
    pub fn required_fields(&self, schema: &Value) -> BTreeSet<String> {
        let merged = self.merge(self.resolve(schema));
        merged["required"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
    }

    pub fn schema(&self, name: &str) -> &Value {
        let schema = &self.doc["components"]["schemas"][name];
        assert!(!schema.is_null(), "openapi.json has no schema {name}");
        schema
    }

    /// Validate `value` against `schema`, collecting mismatches with their location.
    pub fn check(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if value.is_null() {
            if schema.get("nullable") != Some(&Value::Bool(true)) {
                errors.push(format!("{at}: null, but the schema is not nullable"));
            }
            return;
        }
        if schema.get("allOf").is_some() {
            let merged = self.merge(schema);
            return self.check(&merged, value, at, errors);
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("object") => self.check_object(schema, value, at, errors),
            Some("array") => match value.as_array() {
                Some(items) => {
                    let item_schema = schema.get("items").unwrap_or(&Value::Null);
                    for (i, item) in items.iter().enumerate() {
                        self.check(item_schema, item, &format!("{at}[{i}]"), errors);
                    }
                }
                None => errors.push(format!("{at}: {value} is not an array")),
            },
            Some("string") => match value.as_str() {
                Some(text) if schema.get("format").and_then(Value::as_str) == Some("date-time") => {
                    if chrono::DateTime::parse_from_rfc3339(text).is_err() {
                        errors.push(format!("{at}: {text:?} is not an RFC 3339 instant"));
                    }
                }
                Some(_) => {}
                None => errors.push(format!("{at}: {value} is not a string")),
            },
            Some("integer") => {
                let fits = value.as_i64().map(|n| n as f64).or(value.as_u64().map(|n| n as f64));
                match (fits, schema.get("minimum").and_then(Value::as_f64)) {
                    (None, _) => errors.push(format!("{at}: {value} is not an integer")),
                    (Some(n), Some(min)) if n < min => errors.push(format!("{at}: {value} is below {min}")),
                    _ => {}
                }
            }
            Some("number") if !value.is_number() => errors.push(format!("{at}: {value} is not a number")),
            Some("boolean") if !value.is_boolean() => errors.push(format!("{at}: {value} is not a boolean")),
            Some("number" | "boolean") | None => {}
            Some(other) => errors.push(format!("{at}: unsupported schema type {other}")),
        }
    }

    fn check_object(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let Some(fields) = value.as_object() else {
            errors.push(format!("{at}: {value} is not an object"));
            return;
        };
        for name in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            if let Some(name) = name.as_str()
                && !fields.contains_key(name)
            {
                errors.push(format!("{at}: required field {name:?} is missing"));
            }
        }
        let documented = schema.get("properties").and_then(Value::as_object);
        let extra = schema.get("additionalProperties").filter(|a| a.is_object());
        for (name, field) in fields {
            let here = format!("{at}.{name}");
            match (documented.and_then(|d| d.get(name)), extra) {
                (Some(property), _) => self.check(property, field, &here, errors),
                (None, Some(extra)) => self.check(extra, field, &here, errors),
                (None, None) => errors.push(format!("{here}: the server sends a field openapi.json does not document")),
            }
        }
    }

    /// One object schema from an `allOf` (properties and required fields united); a single part stands alone.
    fn merge(&self, schema: &Value) -> Value {
        let Some(parts) = schema.get("allOf").and_then(Value::as_array) else {
            return schema.clone();
        };
        if let [only] = parts.as_slice() {
            return self.merge(self.resolve(only));
        }
        let mut properties = Map::new();
        let mut required = Vec::new();
        for part in parts {
            let part = self.merge(self.resolve(part));
            if let Some(props) = part.get("properties").and_then(Value::as_object) {
                properties.extend(props.clone());
            }
            required.extend(part.get("required").and_then(Value::as_array).cloned().unwrap_or_default());
        }
        serde_json::json!({ "type": "object", "properties": properties, "required": required })
    }
}

/// Escape a key for a JSON pointer.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
