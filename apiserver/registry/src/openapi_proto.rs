//! OpenAPI v2 as protobuf: encodes a swagger 2.0 JSON document into the wire
//! format of gnostic's `openapi.v2.Document` (github.com/google/gnostic-models,
//! `openapiv2/OpenAPIv2.proto`), which is what `/openapi/v2` answers to
//! `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`
//! (client-go discovery's `OpenAPISchema`, used by kubectl ≤ 1.27 for
//! validation and `explain`).
//!
//! The mapping follows gnostic's JSON → message compiler: `$ref` becomes `_ref`,
//! `type` a `TypeItem`, `items` an `ItemsItem`, `properties` and `definitions`
//! lists of `NamedSchema` (in the JSON's key order), oneofs are chosen the way
//! gnostic chooses them (`in: body` → `BodyParameter`, `in: query|path|header|
//! formData` → the matching `NonBodyParameter` variant, `$ref` →
//! `JsonReference`, `type: file` → `FileSchema`, security schemes by `type` and
//! `flow`), and every `x-…` key travels as a `NamedAny` whose `Any.yaml` holds
//! the value as YAML text. `default`, `example` and `enum` values are `Any`s too.
//! As in proto3, zero scalars are left out; an object present in the JSON is
//! always written, even when empty (kubectl tells a kind with `properties: {}`
//! from a map by that presence).
//!
//! Pure function, no I/O; a malformed document is encoded as far as it makes
//! sense (values of the wrong JSON type are skipped), never a panic.

use serde_json::{Map, Value};

/// The protobuf (gnostic openapi.v2.Document) encoding of a swagger 2.0 JSON document.
pub fn encode_v2(doc: &Value) -> Vec<u8> {
    match doc.as_object() {
        Some(o) => document(o).buf,
        None => Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Wire format

/// One protobuf message being written.
#[derive(Default)]
struct Msg {
    buf: Vec<u8>,
}

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;

/// Appends `v` as a protobuf varint (also used by the protobuf decoder's tests to craft input).
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

impl Msg {
    fn tag(&mut self, field: u32, wire: u32) {
        put_varint(&mut self.buf, u64::from((field << 3) | wire));
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.tag(field, LEN);
        put_varint(&mut self.buf, b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    /// A message field: always written (presence matters for message fields).
    fn msg(&mut self, field: u32, m: Msg) {
        self.bytes(field, &m.buf);
    }

    /// A proto3 string: left out when empty.
    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    /// One element of a repeated string: written even when empty.
    fn repeated_string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    /// A proto3 bool: left out when false.
    fn bool(&mut self, field: u32, b: bool) {
        if b {
            self.oneof_bool(field, b);
        }
    }

    /// A bool inside a oneof: written whatever its value.
    fn oneof_bool(&mut self, field: u32, b: bool) {
        self.tag(field, VARINT);
        self.buf.push(u8::from(b));
    }

    fn int64(&mut self, field: u32, v: i64) {
        if v != 0 {
            self.tag(field, VARINT);
            put_varint(&mut self.buf, v as u64);
        }
    }

    fn double(&mut self, field: u32, v: f64) {
        if v.to_bits() != 0 {
            self.tag(field, FIXED64);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }

    // --- fields read from a JSON object -----------------------------------

    fn str_of(&mut self, field: u32, o: &Map<String, Value>, key: &str) {
        if let Some(s) = o.get(key).and_then(scalar_string) {
            self.string(field, &s);
        }
    }

    fn bool_of(&mut self, field: u32, o: &Map<String, Value>, key: &str) {
        if let Some(b) = o.get(key).and_then(Value::as_bool) {
            self.bool(field, b);
        }
    }

    fn int_of(&mut self, field: u32, o: &Map<String, Value>, key: &str) {
        if let Some(i) = o.get(key).and_then(Value::as_i64) {
            self.int64(field, i);
        }
    }

    fn double_of(&mut self, field: u32, o: &Map<String, Value>, key: &str) {
        if let Some(f) = o.get(key).and_then(Value::as_f64) {
            self.double(field, f);
        }
    }

    fn strings_of(&mut self, field: u32, o: &Map<String, Value>, key: &str) {
        for s in o.get(key).and_then(Value::as_array).into_iter().flatten().filter_map(scalar_string) {
            self.repeated_string(field, &s);
        }
    }

    fn any_of(&mut self, field: u32, o: &Map<String, Value>, key: &str) {
        if let Some(v) = o.get(key) {
            self.msg(field, any(v));
        }
    }

    fn anys_of(&mut self, field: u32, o: &Map<String, Value>, key: &str) {
        for v in o.get(key).and_then(Value::as_array).into_iter().flatten() {
            self.msg(field, any(v));
        }
    }

    /// A message field built from `o[key]` when that is an object.
    fn obj_of(&mut self, field: u32, o: &Map<String, Value>, key: &str, f: fn(&Map<String, Value>) -> Msg) {
        if let Some(inner) = o.get(key).and_then(Value::as_object) {
            self.msg(field, f(inner));
        }
    }

    /// A repeated message field built from each object of the array `o[key]`.
    fn objs_of(&mut self, field: u32, o: &Map<String, Value>, key: &str, f: fn(&Map<String, Value>) -> Msg) {
        for inner in o.get(key).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_object) {
            self.msg(field, f(inner));
        }
    }

    /// `repeated NamedAny vendor_extension`: every `x-` key, in order.
    fn extensions(&mut self, field: u32, o: &Map<String, Value>) {
        for (k, v) in o.iter().filter(|(k, _)| k.starts_with("x-")) {
            self.msg(field, named_any(k, v));
        }
    }
}

/// gnostic reads strings from string, integer and null scalars.
fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// `Named<X>{name = 1, value = 2}` for each object-valued entry of a map,
/// written as `field` of a wrapper message.
fn named_map(o: &Map<String, Value>, field: u32, f: fn(&Map<String, Value>) -> Msg) -> Msg {
    let mut m = Msg::default();
    for (k, v) in o {
        if let Some(inner) = v.as_object() {
            m.msg(field, named(k, f(inner)));
        }
    }
    m
}

fn named(name: &str, value: Msg) -> Msg {
    let mut m = Msg::default();
    m.string(1, name);
    m.msg(2, value);
    m
}

// ---------------------------------------------------------------------------
// Messages

fn document(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.str_of(1, o, "swagger");
    m.obj_of(2, o, "info", info);
    m.str_of(3, o, "host");
    m.str_of(4, o, "basePath");
    m.strings_of(5, o, "schemes");
    m.strings_of(6, o, "consumes");
    m.strings_of(7, o, "produces");
    m.obj_of(8, o, "paths", paths);
    m.obj_of(9, o, "definitions", |d| named_map(d, 1, schema));
    m.obj_of(10, o, "parameters", |d| named_map(d, 1, parameter));
    m.obj_of(11, o, "responses", |d| named_map(d, 1, response));
    m.objs_of(12, o, "security", security_requirement);
    m.obj_of(13, o, "securityDefinitions", |d| named_map(d, 1, security_definitions_item));
    m.objs_of(14, o, "tags", tag);
    m.obj_of(15, o, "externalDocs", external_docs);
    m.extensions(16, o);
    m
}

fn info(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.str_of(1, o, "title");
    m.str_of(2, o, "version");
    m.str_of(3, o, "description");
    m.str_of(4, o, "termsOfService");
    m.obj_of(5, o, "contact", contact);
    m.obj_of(6, o, "license", license);
    m.extensions(7, o);
    m
}

fn contact(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.str_of(1, o, "name");
    m.str_of(2, o, "url");
    m.str_of(3, o, "email");
    m.extensions(4, o);
    m
}

fn license(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.str_of(1, o, "name");
    m.str_of(2, o, "url");
    m.extensions(3, o);
    m
}

fn external_docs(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.str_of(1, o, "description");
    m.str_of(2, o, "url");
    m.extensions(3, o);
    m
}

fn tag(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.str_of(1, o, "name");
    m.str_of(2, o, "description");
    m.obj_of(3, o, "externalDocs", external_docs);
    m.extensions(4, o);
    m
}

fn paths(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.extensions(1, o);
    for (k, v) in o.iter().filter(|(k, _)| k.starts_with('/')) {
        if let Some(item) = v.as_object() {
            m.msg(2, named(k, path_item(item)));
        }
    }
    m
}

fn path_item(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.str_of(1, o, "$ref");
    for (field, verb) in [(2, "get"), (3, "put"), (4, "post"), (5, "delete"), (6, "options"), (7, "head"), (8, "patch")]
    {
        m.obj_of(field, o, verb, operation);
    }
    m.objs_of(9, o, "parameters", parameters_item);
    m.extensions(10, o);
    m
}

fn operation(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.strings_of(1, o, "tags");
    m.str_of(2, o, "summary");
    m.str_of(3, o, "description");
    m.obj_of(4, o, "externalDocs", external_docs);
    m.str_of(5, o, "operationId");
    m.strings_of(6, o, "produces");
    m.strings_of(7, o, "consumes");
    m.objs_of(8, o, "parameters", parameters_item);
    m.obj_of(9, o, "responses", responses);
    m.strings_of(10, o, "schemes");
    m.bool_of(11, o, "deprecated");
    m.objs_of(12, o, "security", security_requirement);
    m.extensions(13, o);
    m
}

/// `ParametersItem`: oneof parameter = 1 | json_reference = 2.
fn parameters_item(o: &Map<String, Value>) -> Msg {
    value_or_reference(o, parameter)
}

/// The `oneof <value> = 1 | json_reference = 2` messages: a reference when `$ref` is there.
fn value_or_reference(o: &Map<String, Value>, value: fn(&Map<String, Value>) -> Msg) -> Msg {
    let mut m = Msg::default();
    if o.contains_key("$ref") {
        m.msg(2, json_reference(o));
    } else {
        m.msg(1, value(o));
    }
    m
}

fn json_reference(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.str_of(1, o, "$ref");
    m.str_of(2, o, "description");
    m
}

/// `Parameter`: oneof body_parameter = 1 | non_body_parameter = 2, by `in`.
fn parameter(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    let location = o.get("in").and_then(Value::as_str).unwrap_or("");
    if location == "body" {
        m.msg(1, body_parameter(o));
        return m;
    }
    // NonBodyParameter: header = 1, formData = 2, query = 3, path = 4.
    let (field, sub) = match location {
        "header" => (1, header_or_path_parameter(o)),
        "formData" => (2, query_or_form_parameter(o)),
        "query" => (3, query_or_form_parameter(o)),
        "path" => (4, header_or_path_parameter(o)),
        // gnostic matches no variant: an empty NonBodyParameter.
        _ => {
            m.msg(2, Msg::default());
            return m;
        }
    };
    let mut non_body = Msg::default();
    non_body.msg(field, sub);
    m.msg(2, non_body);
    m
}

fn body_parameter(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.str_of(1, o, "description");
    m.str_of(2, o, "name");
    m.str_of(3, o, "in");
    m.bool_of(4, o, "required");
    m.obj_of(5, o, "schema", schema);
    m.extensions(6, o);
    m
}

/// The 17 fields `type` … `multipleOf` shared (in this order, numbered from
/// `first`) by PrimitivesItems, Header and the non-body parameter sub-schemas.
fn primitive_fields(m: &mut Msg, o: &Map<String, Value>, first: u32) {
    m.str_of(first, o, "type");
    m.str_of(first + 1, o, "format");
    m.obj_of(first + 2, o, "items", primitives_items);
    m.str_of(first + 3, o, "collectionFormat");
    m.any_of(first + 4, o, "default");
    m.double_of(first + 5, o, "maximum");
    m.bool_of(first + 6, o, "exclusiveMaximum");
    m.double_of(first + 7, o, "minimum");
    m.bool_of(first + 8, o, "exclusiveMinimum");
    m.int_of(first + 9, o, "maxLength");
    m.int_of(first + 10, o, "minLength");
    m.str_of(first + 11, o, "pattern");
    m.int_of(first + 12, o, "maxItems");
    m.int_of(first + 13, o, "minItems");
    m.bool_of(first + 14, o, "uniqueItems");
    m.anys_of(first + 15, o, "enum");
    m.double_of(first + 16, o, "multipleOf");
}

/// HeaderParameterSubSchema and PathParameterSubSchema share one layout.
fn header_or_path_parameter(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.bool_of(1, o, "required");
    m.str_of(2, o, "in");
    m.str_of(3, o, "description");
    m.str_of(4, o, "name");
    primitive_fields(&mut m, o, 5);
    m.extensions(22, o);
    m
}

/// QueryParameterSubSchema and FormDataParameterSubSchema share one layout.
fn query_or_form_parameter(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.bool_of(1, o, "required");
    m.str_of(2, o, "in");
    m.str_of(3, o, "description");
    m.str_of(4, o, "name");
    m.bool_of(5, o, "allowEmptyValue");
    primitive_fields(&mut m, o, 6);
    m.extensions(23, o);
    m
}

fn primitives_items(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    primitive_fields(&mut m, o, 1);
    m.extensions(18, o);
    m
}

fn header(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    primitive_fields(&mut m, o, 1);
    m.str_of(18, o, "description");
    m.extensions(19, o);
    m
}

fn responses(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    for (k, v) in o {
        let is_code = k == "default" || (k.len() == 3 && k.bytes().all(|b| b.is_ascii_digit()));
        if let (true, Some(r)) = (is_code, v.as_object()) {
            m.msg(1, named(k, response_value(r)));
        }
    }
    m.extensions(2, o);
    m
}

/// `ResponseValue`: oneof response = 1 | json_reference = 2.
fn response_value(o: &Map<String, Value>) -> Msg {
    value_or_reference(o, response)
}

fn response(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.str_of(1, o, "description");
    m.obj_of(2, o, "schema", schema_item);
    m.obj_of(3, o, "headers", |h| named_map(h, 1, header));
    if let Some(examples) = o.get("examples").and_then(Value::as_object) {
        let mut e = Msg::default();
        for (k, v) in examples {
            e.msg(1, named_any(k, v));
        }
        m.msg(4, e);
    }
    m.extensions(5, o);
    m
}

/// `SchemaItem`: oneof schema = 1 | file_schema = 2 (`type: file`).
fn schema_item(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    if o.get("type").and_then(Value::as_str) == Some("file") {
        m.msg(2, file_schema(o));
    } else {
        m.msg(1, schema(o));
    }
    m
}

fn file_schema(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.str_of(1, o, "format");
    m.str_of(2, o, "title");
    m.str_of(3, o, "description");
    m.any_of(4, o, "default");
    m.strings_of(5, o, "required");
    m.str_of(6, o, "type");
    m.bool_of(7, o, "readOnly");
    m.obj_of(8, o, "externalDocs", external_docs);
    m.any_of(9, o, "example");
    m.extensions(10, o);
    m
}

fn schema(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.str_of(1, o, "$ref");
    m.str_of(2, o, "format");
    m.str_of(3, o, "title");
    m.str_of(4, o, "description");
    m.any_of(5, o, "default");
    m.double_of(6, o, "multipleOf");
    m.double_of(7, o, "maximum");
    m.bool_of(8, o, "exclusiveMaximum");
    m.double_of(9, o, "minimum");
    m.bool_of(10, o, "exclusiveMinimum");
    m.int_of(11, o, "maxLength");
    m.int_of(12, o, "minLength");
    m.str_of(13, o, "pattern");
    m.int_of(14, o, "maxItems");
    m.int_of(15, o, "minItems");
    m.bool_of(16, o, "uniqueItems");
    m.int_of(17, o, "maxProperties");
    m.int_of(18, o, "minProperties");
    m.strings_of(19, o, "required");
    m.anys_of(20, o, "enum");
    // AdditionalPropertiesItem: oneof schema = 1 | boolean = 2.
    match o.get("additionalProperties") {
        Some(Value::Object(s)) => {
            let mut a = Msg::default();
            a.msg(1, schema(s));
            m.msg(21, a);
        }
        Some(Value::Bool(b)) => {
            let mut a = Msg::default();
            a.oneof_bool(2, *b);
            m.msg(21, a);
        }
        _ => {}
    }
    // TypeItem{repeated string value = 1}: a single type or a list of them.
    match o.get("type") {
        Some(Value::String(t)) => {
            let mut t_item = Msg::default();
            t_item.repeated_string(1, t);
            m.msg(22, t_item);
        }
        Some(Value::Array(ts)) => {
            let mut t_item = Msg::default();
            for t in ts.iter().filter_map(Value::as_str) {
                t_item.repeated_string(1, t);
            }
            m.msg(22, t_item);
        }
        _ => {}
    }
    // ItemsItem{repeated Schema schema = 1}.
    match o.get("items") {
        Some(Value::Object(s)) => {
            let mut items = Msg::default();
            items.msg(1, schema(s));
            m.msg(23, items);
        }
        Some(Value::Array(list)) => {
            let mut items = Msg::default();
            for s in list.iter().filter_map(Value::as_object) {
                items.msg(1, schema(s));
            }
            m.msg(23, items);
        }
        _ => {}
    }
    m.objs_of(24, o, "allOf", schema);
    m.obj_of(25, o, "properties", |p| named_map(p, 1, schema));
    m.str_of(26, o, "discriminator");
    m.bool_of(27, o, "readOnly");
    m.obj_of(28, o, "xml", xml);
    m.obj_of(29, o, "externalDocs", external_docs);
    m.any_of(30, o, "example");
    m.extensions(31, o);
    m
}

fn xml(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.str_of(1, o, "name");
    m.str_of(2, o, "namespace");
    m.str_of(3, o, "prefix");
    m.bool_of(4, o, "attribute");
    m.bool_of(5, o, "wrapped");
    m.extensions(6, o);
    m
}

/// `SecurityRequirement{repeated NamedStringArray additional_properties = 1}`.
fn security_requirement(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    for (k, v) in o {
        let mut values = Msg::default();
        for s in v.as_array().into_iter().flatten().filter_map(scalar_string) {
            values.repeated_string(1, &s);
        }
        m.msg(1, named(k, values));
    }
    m
}

/// `SecurityDefinitionsItem`: the variant is chosen by `type` (and `flow` for oauth2).
fn security_definitions_item(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    let flow = o.get("flow").and_then(Value::as_str).unwrap_or("");
    match o.get("type").and_then(Value::as_str).unwrap_or("") {
        "basic" => {
            let mut s = Msg::default();
            s.str_of(1, o, "type");
            s.str_of(2, o, "description");
            s.extensions(3, o);
            m.msg(1, s);
        }
        "apiKey" => {
            let mut s = Msg::default();
            s.str_of(1, o, "type");
            s.str_of(2, o, "name");
            s.str_of(3, o, "in");
            s.str_of(4, o, "description");
            s.extensions(5, o);
            m.msg(2, s);
        }
        "oauth2" => {
            let mut s = Msg::default();
            s.str_of(1, o, "type");
            s.str_of(2, o, "flow");
            s.obj_of(3, o, "scopes", oauth2_scopes);
            let field = match flow {
                "implicit" => {
                    s.str_of(4, o, "authorizationUrl");
                    s.str_of(5, o, "description");
                    s.extensions(6, o);
                    3
                }
                "password" | "application" => {
                    s.str_of(4, o, "tokenUrl");
                    s.str_of(5, o, "description");
                    s.extensions(6, o);
                    if flow == "password" { 4 } else { 5 }
                }
                "accessCode" => {
                    s.str_of(4, o, "authorizationUrl");
                    s.str_of(5, o, "tokenUrl");
                    s.str_of(6, o, "description");
                    s.extensions(7, o);
                    6
                }
                _ => return m,
            };
            m.msg(field, s);
        }
        _ => {}
    }
    m
}

fn oauth2_scopes(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    for (k, v) in o {
        let mut pair = Msg::default();
        pair.string(1, k);
        if let Some(s) = scalar_string(v) {
            pair.string(2, &s);
        }
        m.msg(1, pair);
    }
    m
}

/// `Any{yaml = 2}`: the value as YAML text.
fn any(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.string(2, &to_yaml(v));
    m
}

fn named_any(name: &str, v: &Value) -> Msg {
    named(name, any(v))
}

// ---------------------------------------------------------------------------
// YAML text of a JSON value (block style, as gnostic's `Any.yaml` carries it)

/// A JSON value as a YAML document: block mappings and sequences, plain
/// scalars where YAML would read them back as the same string, double-quoted
/// (with escapes) otherwise. Ends with a newline.
pub(crate) fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    yaml_node(v, 0, &mut out);
    out
}

/// Writes `v`, whose first line continues the current line; later lines of a
/// collection start at column `indent`.
fn yaml_node(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (i, (k, val)) in map.iter().enumerate() {
                if i > 0 {
                    push_indent(out, indent);
                }
                yaml_scalar_string(k, out);
                out.push(':');
                yaml_value_after(val, indent, out);
            }
        }
        Value::Array(list) if !list.is_empty() => {
            for (i, item) in list.iter().enumerate() {
                if i > 0 {
                    push_indent(out, indent);
                }
                out.push_str("- ");
                yaml_node(item, indent + 2, out);
            }
        }
        _ => {
            yaml_scalar(v, out);
            out.push('\n');
        }
    }
}

/// The value of a mapping entry, after `key:`.
fn yaml_value_after(v: &Value, indent: usize, out: &mut String) {
    let nested = match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    };
    if nested {
        out.push('\n');
        push_indent(out, indent + 2);
        yaml_node(v, indent + 2, out);
    } else {
        out.push(' ');
        yaml_scalar(v, out);
        out.push('\n');
    }
}

fn push_indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn yaml_scalar(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => yaml_scalar_string(s, out),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
    }
}

/// Words YAML 1.1 or 1.2 resolvers read as booleans or null.
const RESERVED: &[&str] = &["y", "n", "yes", "no", "true", "false", "on", "off", "null"];

fn is_plain_safe(s: &str) -> bool {
    let first_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '_');
    first_ok
        && !s.ends_with(' ')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-' | ' '))
        && !RESERVED.iter().any(|w| w.eq_ignore_ascii_case(s))
}

fn yaml_scalar_string(s: &str, out: &mut String) {
    if is_plain_safe(s) {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // Characters YAML does not allow raw in a document.
            c if (c as u32) < 0x20
                || ((0x7f..=0x9f).contains(&(c as u32)) && c != '\u{85}')
                || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}') =>
            {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // --- a small protobuf reader, for the tests only -----------------------

    #[derive(Debug, Clone)]
    enum Field {
        Varint(u64),
        Fixed64(u64),
        Bytes(Vec<u8>),
    }

    fn read_varint(b: &[u8], pos: &mut usize) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let byte = b[*pos];
            *pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return v;
            }
            shift += 7;
            assert!(shift < 70, "varint too long");
        }
    }

    /// Parses one message into (field number, value) pairs; panics on malformed input.
    fn parse(b: &[u8]) -> Vec<(u32, Field)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < b.len() {
            let key = read_varint(b, &mut pos);
            let (field, wire) = ((key >> 3) as u32, (key & 7) as u32);
            assert!(field > 0, "field 0");
            let v = match wire {
                VARINT => Field::Varint(read_varint(b, &mut pos)),
                FIXED64 => {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(&b[pos..pos + 8]);
                    pos += 8;
                    Field::Fixed64(u64::from_le_bytes(a))
                }
                LEN => {
                    let n = read_varint(b, &mut pos) as usize;
                    let v = b[pos..pos + n].to_vec();
                    pos += n;
                    Field::Bytes(v)
                }
                w => panic!("unexpected wire type {w}"),
            };
            out.push((field, v));
        }
        assert_eq!(pos, b.len());
        out
    }

    #[derive(Debug, Clone)]
    struct Dec(Vec<(u32, Field)>);

    impl Dec {
        fn of(b: &[u8]) -> Dec {
            Dec(parse(b))
        }
        fn all_bytes(&self, f: u32) -> Vec<&[u8]> {
            self.0
                .iter()
                .filter(|(n, _)| *n == f)
                .filter_map(|(_, v)| if let Field::Bytes(b) = v { Some(b.as_slice()) } else { None })
                .collect()
        }
        fn has(&self, f: u32) -> bool {
            self.0.iter().any(|(n, _)| *n == f)
        }
        fn msg(&self, f: u32) -> Dec {
            let all = self.all_bytes(f);
            assert_eq!(all.len(), 1, "field {f} of {self:?}");
            Dec::of(all[0])
        }
        fn msgs(&self, f: u32) -> Vec<Dec> {
            self.all_bytes(f).into_iter().map(Dec::of).collect()
        }
        fn str(&self, f: u32) -> String {
            self.all_bytes(f).first().map(|b| String::from_utf8(b.to_vec()).unwrap()).unwrap_or_default()
        }
        fn strs(&self, f: u32) -> Vec<String> {
            self.all_bytes(f).into_iter().map(|b| String::from_utf8(b.to_vec()).unwrap()).collect()
        }
        fn varint(&self, f: u32) -> Option<u64> {
            self.0.iter().find_map(|(n, v)| match v {
                Field::Varint(x) if *n == f => Some(*x),
                _ => None,
            })
        }
        fn double(&self, f: u32) -> Option<f64> {
            self.0.iter().find_map(|(n, v)| match v {
                Field::Fixed64(x) if *n == f => Some(f64::from_bits(*x)),
                _ => None,
            })
        }
        /// Value of the `Named*{name=1, value=2}` entry named `name` in repeated field `f`.
        fn named(&self, f: u32, name: &str) -> Dec {
            self.msgs(f).into_iter().find(|e| e.str(1) == name).unwrap_or_else(|| panic!("no {name}")).msg(2)
        }
        fn names(&self, f: u32) -> Vec<String> {
            self.msgs(f).iter().map(|e| e.str(1)).collect()
        }
        /// `Any.yaml` of vendor extension `name` in field `f`.
        fn ext(&self, f: u32, name: &str) -> String {
            self.named(f, name).str(2)
        }
    }

    fn full_doc() -> Value {
        let res: Vec<_> = crate::resources::all().iter().collect();
        crate::openapi::v2(&res)
    }

    // --- wire format --------------------------------------------------------

    #[test]
    fn varints_and_scalars() {
        let mut m = Msg::default();
        m.int64(1, 300);
        assert_eq!(m.buf, vec![0x08, 0xac, 0x02]);
        let mut m = Msg::default();
        m.int64(2, -1);
        assert_eq!(m.buf.len(), 11, "negative int64 is a 10-byte varint");
        assert_eq!(Dec::of(&m.buf).varint(2), Some(u64::MAX));
        let mut m = Msg::default();
        m.int64(1, 0);
        m.bool(2, false);
        m.string(3, "");
        m.double(4, 0.0);
        assert!(m.buf.is_empty(), "proto3 zero values are left out");
        m.double(4, 2.5);
        assert_eq!(Dec::of(&m.buf).double(4), Some(2.5));
        let mut m = Msg::default();
        m.string(20, "ab");
        assert_eq!(m.buf, vec![0xa2, 0x01, 2, b'a', b'b'], "field 20 needs a two-byte tag");
    }

    // --- the served document --------------------------------------------------

    #[test]
    fn document_header_and_security() {
        let d = Dec::of(&encode_v2(&full_doc()));
        assert_eq!(d.str(1), "2.0");
        assert_eq!(d.msg(2).str(1), "Kubernetes");
        assert_eq!(d.msg(2).str(2), crate::openapi::KUBERNETES_VERSION);
        let sec = d.msgs(12);
        assert_eq!(sec.len(), 1);
        assert_eq!(sec[0].names(1), vec!["BearerToken"]);
        assert!(sec[0].named(1, "BearerToken").0.is_empty(), "empty scope list");
        let bearer = d.msg(13).named(1, "BearerToken");
        let api_key = bearer.msg(2);
        assert_eq!(api_key.str(1), "apiKey");
        assert_eq!(api_key.str(2), "authorization");
        assert_eq!(api_key.str(3), "header");
    }

    #[test]
    fn definitions_carry_types_refs_and_extensions() {
        let doc = full_doc();
        let d = Dec::of(&encode_v2(&doc));
        let defs = d.msg(9);
        let json_names: Vec<String> = doc["definitions"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(defs.names(1), json_names, "definitions keep the JSON order");

        let deploy = defs.named(1, "io.k8s.api.apps.v1.Deployment");
        assert_eq!(deploy.msg(22).strs(1), vec!["object"]);
        assert_eq!(
            deploy.ext(31, "x-kubernetes-group-version-kind"),
            "- group: apps\n  kind: Deployment\n  version: v1\n"
        );
        let props = deploy.msg(25);
        assert_eq!(props.named(1, "spec").str(1), "#/definitions/io.k8s.api.apps.v1.DeploymentSpec");
        assert!(props.named(1, "metadata").str(4).contains("metadata"), "description kept");

        let pod_spec = defs.named(1, "io.k8s.api.core.v1.PodSpec");
        assert!(pod_spec.strs(19).contains(&"containers".to_string()));
        let containers = pod_spec.msg(25).named(1, "containers");
        assert_eq!(containers.msg(22).strs(1), vec!["array"]);
        assert_eq!(containers.ext(31, "x-kubernetes-patch-merge-key"), "name\n");
        assert_eq!(containers.ext(31, "x-kubernetes-patch-strategy"), "merge\n");
        let item = containers.msg(23).msgs(1);
        assert_eq!(item.len(), 1);
        assert_eq!(item[0].str(1), "#/definitions/io.k8s.api.core.v1.Container");

        // A map: additionalProperties as the schema variant of the oneof.
        let labels = defs.named(1, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta").msg(25).named(1, "labels");
        assert_eq!(labels.msg(22).strs(1), vec!["object"]);
        assert_eq!(labels.msg(21).msg(1).msg(22).strs(1), vec!["string"]);
        assert!(!labels.has(25), "a map has no properties message");

        // Integer formats and defaults.
        let replicas = defs.named(1, "io.k8s.api.apps.v1.DeploymentSpec").msg(25).named(1, "replicas");
        assert_eq!(replicas.str(2), "int32");
    }

    #[test]
    fn paths_operations_and_parameters() {
        let doc = full_doc();
        let d = Dec::of(&encode_v2(&doc));
        let paths = d.msg(8);
        let json_paths: Vec<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(paths.names(2), json_paths, "paths keep the JSON order");

        let item = paths.named(2, "/apis/apps/v1/namespaces/{namespace}/deployments/{name}");
        let patch = item.msg(8);
        assert_eq!(patch.str(5), "patchAppsV1NamespacedDeployment");
        assert_eq!(patch.ext(13, "x-kubernetes-action"), "patch\n");
        assert_eq!(patch.ext(13, "x-kubernetes-group-version-kind"), "group: apps\nkind: Deployment\nversion: v1\n");
        assert!(patch.strs(7).iter().any(|c| c == "application/strategic-merge-patch+json"));

        // kubectl's query-param verifier looks for a query parameter named fieldValidation.
        let params = patch.msgs(8);
        let query_names: Vec<String> = params
            .iter()
            .filter(|p| p.has(1))
            .map(|p| p.msg(1))
            .filter(|p| p.has(2))
            .map(|p| p.msg(2))
            .filter(|nb| nb.has(3))
            .map(|nb| nb.msg(3).str(4))
            .collect();
        assert!(query_names.contains(&"fieldValidation".to_string()), "{query_names:?}");
        let body = params.iter().filter(|p| p.has(1)).map(|p| p.msg(1)).find(|p| p.has(1)).expect("a body parameter");
        let body = body.msg(1);
        assert_eq!(body.str(2), "body");
        assert_eq!(body.str(3), "body");
        assert_eq!(body.varint(4), Some(1), "required");
        assert!(body.has(5), "schema");

        // Path parameters sit in the path variant (4), with required = true.
        let path_param = params
            .iter()
            .chain(item.msgs(9).iter())
            .filter(|p| p.has(1))
            .map(|p| p.msg(1))
            .filter(|p| p.has(2))
            .map(|p| p.msg(2))
            .find(|nb| nb.has(4))
            .expect("a path parameter");
        assert_eq!(path_param.msg(4).varint(1), Some(1), "required");
        assert_eq!(path_param.msg(4).str(2), "path");

        // Responses: the 200 response refers to the Deployment definition.
        let get = item.msg(2);
        let ok = get.msg(9).named(1, "200");
        let schema = ok.msg(1).msg(2).msg(1);
        assert_eq!(schema.str(1), "#/definitions/io.k8s.api.apps.v1.Deployment");
        assert_eq!(get.msg(9).named(1, "401").msg(1).str(1), "Unauthorized");
    }

    #[test]
    fn oneofs_and_rarer_fields() {
        let doc = json!({
            "swagger": "2.0",
            "host": "example.com",
            "basePath": "/v1",
            "schemes": ["https"],
            "consumes": ["application/json"],
            "produces": ["application/json", "application/yaml"],
            "x-top": {"a": 1},
            "paths": {
                "x-paths-ext": true,
                "/b": {"parameters": [{"$ref": "#/parameters/pretty"}]},
                "/a": {
                    "get": {
                        "deprecated": true,
                        "parameters": [
                            {"name": "h", "in": "header", "type": "string"},
                            {"name": "f", "in": "formData", "type": "file", "allowEmptyValue": true},
                            {"name": "n", "in": "query", "type": "integer", "maximum": 10, "minimum": -3,
                             "default": 5, "enum": [1, 5], "items": {"type": "string"}},
                            {"name": "p", "in": "path", "required": true, "type": "string", "maxLength": 7}
                        ],
                        "responses": {
                            "default": {"$ref": "#/responses/err"},
                            "200": {"description": "file", "schema": {"type": "file"},
                                    "headers": {"X-Rate": {"type": "integer", "description": "rate"}},
                                    "examples": {"application/json": {"k": "v"}}},
                            "x-resp": "r"
                        }
                    }
                }
            },
            "definitions": {
                "Closed": {"type": "object", "properties": {}, "additionalProperties": false,
                           "allOf": [{"$ref": "#/definitions/Other"}], "readOnly": true,
                           "xml": {"name": "c", "wrapped": true}, "example": "x"},
                "Multi": {"type": ["string", "null"], "maxProperties": 3, "multipleOf": 0.5}
            },
            "parameters": {"pretty": {"name": "pretty", "in": "query", "type": "string"}},
            "responses": {"err": {"description": "error"}},
            "securityDefinitions": {
                "basic": {"type": "basic"},
                "imp": {"type": "oauth2", "flow": "implicit", "authorizationUrl": "https://a", "scopes": {"read": "r"}},
                "pw": {"type": "oauth2", "flow": "password", "tokenUrl": "https://t", "scopes": {}},
                "app": {"type": "oauth2", "flow": "application", "tokenUrl": "https://t", "scopes": {}},
                "code": {"type": "oauth2", "flow": "accessCode", "authorizationUrl": "https://a",
                         "tokenUrl": "https://t", "scopes": {}}
            },
            "tags": [{"name": "t", "description": "d", "externalDocs": {"url": "https://docs"}}],
            "externalDocs": {"url": "https://root"},
            "info": {"title": "T", "version": "1", "contact": {"name": "me", "email": "m@x"},
                     "license": {"name": "Apache-2.0", "url": "https://l"}, "termsOfService": "tos"}
        });
        let d = Dec::of(&encode_v2(&doc));
        assert_eq!(d.str(3), "example.com");
        assert_eq!(d.str(4), "/v1");
        assert_eq!(d.strs(5), vec!["https"]);
        assert_eq!(d.strs(6), vec!["application/json"]);
        assert_eq!(d.strs(7), vec!["application/json", "application/yaml"]);
        assert_eq!(d.ext(16, "x-top"), "a: 1\n");
        let info = d.msg(2);
        assert_eq!(info.str(4), "tos");
        assert_eq!(info.msg(5).str(3), "m@x");
        assert_eq!(info.msg(6).str(2), "https://l");
        assert_eq!(d.msgs(14)[0].msg(3).str(2), "https://docs");
        assert_eq!(d.msg(15).str(2), "https://root");

        let paths = d.msg(8);
        assert_eq!(paths.ext(1, "x-paths-ext"), "true\n");
        let b_ref = paths.named(2, "/b").msgs(9);
        assert_eq!(b_ref[0].msg(2).str(1), "#/parameters/pretty", "a $ref parameter is a JsonReference");

        let get = paths.named(2, "/a").msg(2);
        assert_eq!(get.varint(11), Some(1), "deprecated");
        let nb: Vec<Dec> = get.msgs(8).iter().map(|p| p.msg(1).msg(2)).collect();
        assert_eq!(nb[0].msg(1).str(4), "h", "header variant");
        assert_eq!(nb[1].msg(2).str(4), "f", "formData variant");
        assert_eq!(nb[1].msg(2).varint(5), Some(1), "allowEmptyValue");
        assert_eq!(nb[1].msg(2).str(6), "file");
        let q = nb[2].msg(3);
        assert_eq!(q.str(6), "integer");
        assert_eq!(q.double(11), Some(10.0));
        assert_eq!(q.double(13), Some(-3.0));
        assert_eq!(q.msg(10).str(2), "5\n", "default as Any yaml");
        assert_eq!(q.msgs(21).iter().map(|a| a.str(2)).collect::<Vec<_>>(), vec!["1\n", "5\n"]);
        assert_eq!(q.msg(8).str(1), "string", "PrimitivesItems");
        let p = nb[3].msg(4);
        assert_eq!(p.varint(1), Some(1));
        assert_eq!(p.varint(14), Some(7), "maxLength");

        let responses = get.msg(9);
        assert_eq!(responses.names(1), vec!["200", "default"]);
        assert_eq!(responses.named(1, "default").msg(2).str(1), "#/responses/err");
        let ok = responses.named(1, "200").msg(1);
        assert_eq!(ok.msg(2).msg(2).str(6), "file", "type: file is a FileSchema");
        let rate = ok.msg(3).named(1, "X-Rate");
        assert_eq!(rate.str(1), "integer");
        assert_eq!(rate.str(18), "rate");
        assert_eq!(ok.msg(4).ext(1, "application/json"), "k: v\n");
        assert_eq!(responses.ext(2, "x-resp"), "r\n");

        let defs = d.msg(9);
        let closed = defs.named(1, "Closed");
        assert!(closed.has(25) && closed.msg(25).0.is_empty(), "empty properties are still present");
        let ap = closed.msg(21);
        assert_eq!(ap.varint(2), Some(0), "additionalProperties: false is written in the oneof");
        assert_eq!(closed.msgs(24)[0].str(1), "#/definitions/Other");
        assert_eq!(closed.varint(27), Some(1));
        assert_eq!(closed.msg(28).str(1), "c");
        assert_eq!(closed.msg(28).varint(5), Some(1));
        assert_eq!(closed.msg(30).str(2), "x\n");
        let multi = defs.named(1, "Multi");
        assert_eq!(multi.msg(22).strs(1), vec!["string", "null"]);
        assert_eq!(multi.varint(17), Some(3));
        assert_eq!(multi.double(6), Some(0.5));

        let pretty = d.msg(10).named(1, "pretty");
        assert_eq!(pretty.msg(2).msg(3).str(4), "pretty");
        assert_eq!(d.msg(11).named(1, "err").str(1), "error");

        let sd = d.msg(13);
        assert_eq!(sd.named(1, "basic").msg(1).str(1), "basic");
        let imp = sd.named(1, "imp").msg(3);
        assert_eq!(imp.str(4), "https://a");
        let scope = &imp.msg(3).msgs(1)[0];
        assert_eq!((scope.str(1), scope.str(2)), ("read".to_string(), "r".to_string()));
        assert_eq!(sd.named(1, "pw").msg(4).str(4), "https://t");
        assert_eq!(sd.named(1, "app").msg(5).str(4), "https://t");
        assert_eq!(sd.named(1, "code").msg(6).str(5), "https://t");
    }

    #[test]
    fn malformed_input_does_not_panic() {
        assert!(encode_v2(&json!("not an object")).is_empty());
        let odd = json!({"swagger": 2, "paths": {"/x": {"get": {"parameters": [{"in": "cookie"}, 3],
            "responses": {"200": "nope"}}}}, "definitions": {"A": {"type": 7, "items": [1, {"type": "string"}],
            "additionalProperties": "?", "maxLength": 1.5}}});
        let d = Dec::of(&encode_v2(&odd));
        assert_eq!(d.str(1), "2", "integers are read as strings, like gnostic");
        let a = d.msg(9).named(1, "A");
        assert!(!a.has(22) && !a.has(21) && !a.has(11));
        assert_eq!(a.msg(23).msgs(1).len(), 1);
    }

    // --- YAML text --------------------------------------------------------------

    #[test]
    fn yaml_scalars_are_quoted_when_needed() {
        assert_eq!(to_yaml(&json!("name")), "name\n");
        assert_eq!(to_yaml(&json!("io.k8s.api/v1 x")), "io.k8s.api/v1 x\n");
        for (s, want) in [
            ("true", "\"true\"\n"),
            ("No", "\"No\"\n"),
            ("123", "\"123\"\n"),
            ("", "\"\"\n"),
            ("a: b", "\"a: b\"\n"),
            ("-x", "\"-x\"\n"),
            ("say \"hi\"\n", "\"say \\\"hi\\\"\\n\"\n"),
            ("tail ", "\"tail \"\n"),
            ("bell\u{7}", "\"bell\\u0007\"\n"),
            ("é", "\"é\"\n"),
        ] {
            assert_eq!(to_yaml(&json!(s)), want, "{s:?}");
        }
        assert_eq!(to_yaml(&json!(null)), "null\n");
        assert_eq!(to_yaml(&json!(false)), "false\n");
        assert_eq!(to_yaml(&json!(-2.5)), "-2.5\n");
        assert_eq!(to_yaml(&json!({})), "{}\n");
        assert_eq!(to_yaml(&json!([])), "[]\n");
    }

    #[test]
    fn yaml_collections_nest_in_block_style() {
        let v = json!({"a": {"b": [1, {"c": "d", "e": []}], "f": {}}, "g": [[1, 2], "h"]});
        let want = "a:\n  b:\n    - 1\n    - c: d\n      e: []\n  f: {}\ng:\n  - - 1\n    - 2\n  - h\n";
        assert_eq!(to_yaml(&v), want);
    }
}
