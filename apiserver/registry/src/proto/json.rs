//! Rendering one decoded protobuf message as the JSON Go's `encoding/json` would print for it.
//!
//! Upstream decodes protobuf into Go structs and marshals those to JSON; this module reproduces
//! the result directly: Go field order, `omitempty` (zero scalars and empty slices/maps are
//! dropped, structs never are), nil pointers/slices/maps as `null` when not `omitempty`, inline
//! embedded structs, base64 for `[]byte`, and the hand-written JSON of apimachinery's special
//! types (`Time`, `MicroTime`, `Duration`, `Quantity`, `IntOrString`, `RawExtension`,
//! `FieldsV1`) and of slice wrapper messages (`ExtraValue`, `Verbs`).

use std::borrow::Cow;
use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Number, Value};

use super::schema::{Field, FieldType, Message, Scalar, schema};
use super::wire::{self, Reader, WireValue};
use crate::status::ApiError;

/// Nesting deeper than this is refused (upstream objects nest a few dozen levels at most).
const MAX_DEPTH: usize = 100;

const TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime";
const DURATION: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Duration";
const FIELDS_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1";
const QUANTITY: &str = "k8s.io.apimachinery.pkg.api.resource.Quantity";
const QUANTITY_VALUE: &str = "k8s.io.apimachinery.pkg.api.resource.QuantityValue";
const INT_OR_STRING: &str = "k8s.io.apimachinery.pkg.util.intstr.IntOrString";
const RAW_EXTENSION: &str = "k8s.io.apimachinery.pkg.runtime.RawExtension";

/// Go's zero `time.Time` (January 1, year 1, UTC) as Unix seconds.
const GO_ZERO_TIME_UNIX: i64 = -62_135_596_800;

fn bad(msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("unable to decode protobuf body: {msg}"))
}

fn wire_err(e: wire::WireError) -> ApiError {
    bad(e.0)
}

/// The fields of a message grouped by number, in wire order within each number.
fn group(buf: &[u8]) -> Result<HashMap<u32, Vec<WireValue<'_>>>, ApiError> {
    let mut by_num: HashMap<u32, Vec<WireValue<'_>>> = HashMap::new();
    for (n, v) in wire::fields(buf).map_err(wire_err)? {
        by_num.entry(n).or_default().push(v);
    }
    Ok(by_num)
}

/// Render message `name` from its encoded bytes.
pub(crate) fn render_message(name: &str, buf: &[u8], depth: usize) -> Result<Value, ApiError> {
    if depth > MAX_DEPTH {
        return Err(bad("object nested too deeply"));
    }
    match name {
        TIME => return render_time(buf, false),
        MICRO_TIME => return render_time(buf, true),
        DURATION => return render_duration(buf),
        QUANTITY | QUANTITY_VALUE => return render_quantity(buf),
        INT_OR_STRING => return render_int_or_string(buf),
        RAW_EXTENSION => return render_raw_json(buf, "RawExtension", depth),
        FIELDS_V1 => return render_raw_json(buf, "FieldsV1", depth),
        _ => {}
    }
    let msg = schema().message(name).ok_or_else(|| ApiError::internal(format!("no protobuf schema for {name}")))?;
    let by_num = group(buf)?;
    if msg.wrapper {
        return render_wrapper(name, msg, &by_num, depth);
    }
    let mut out = Map::new();
    render_fields_into(msg, &by_num, &mut out, depth)?;
    Ok(Value::Object(out))
}

/// A Go slice type masked as a message: JSON is the array of its `items` (field 1).
fn render_wrapper(
    name: &str,
    msg: &Message,
    by_num: &HashMap<u32, Vec<WireValue<'_>>>,
    depth: usize,
) -> Result<Value, ApiError> {
    let field = msg.fields.first().ok_or_else(|| ApiError::internal(format!("wrapper {name} has no items")))?;
    let values = by_num.get(&field.number).map(Vec::as_slice).unwrap_or_default();
    Ok(Value::Array(repeated_values(field, values, depth)?))
}

pub(crate) fn render_fields_into(
    msg: &Message,
    by_num: &HashMap<u32, Vec<WireValue<'_>>>,
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), ApiError> {
    for field in &msg.fields {
        let values = by_num.get(&field.number).map(Vec::as_slice).unwrap_or_default();
        if field.skip {
            continue;
        }
        if field.inline {
            let FieldType::Message(name) = &field.ty else {
                return Err(ApiError::internal(format!("inline field {} is not a message", field.number)));
            };
            if field.pointer && values.is_empty() {
                continue;
            }
            let bytes = merged_bytes(field, values)?;
            if let Value::Object(inner) = render_message(name, &bytes, depth + 1)? {
                out.extend(inner);
            }
            continue;
        }
        if let Some(v) = field_value(field, values, depth)? {
            out.insert(field.json.clone(), v);
        }
    }
    Ok(())
}

/// The JSON of one field, `None` when Go would omit it.
fn field_value(field: &Field, values: &[WireValue<'_>], depth: usize) -> Result<Option<Value>, ApiError> {
    if let Some(key) = field.map_key {
        if values.is_empty() {
            return Ok(if field.omitempty { None } else { Some(Value::Null) });
        }
        let mut obj = Map::new();
        for v in values {
            let WireValue::Bytes(entry) = v else {
                return Err(bad(format!("field {}: map entry has wire type {}", field.json, v.wire_name())));
            };
            let (k, val) = map_entry(field, key, entry, depth)?;
            obj.insert(k, val);
        }
        return Ok(Some(Value::Object(obj)));
    }
    if field.repeated {
        let items = repeated_values(field, values, depth)?;
        if items.is_empty() {
            return Ok(if field.omitempty { None } else { Some(Value::Null) });
        }
        return Ok(Some(Value::Array(items)));
    }
    match &field.ty {
        FieldType::Scalar(s) => {
            let Some(last) = values.last() else {
                if field.pointer || (*s == Scalar::Bytes) {
                    // nil pointer / nil []byte
                    return Ok(if field.omitempty { None } else { Some(Value::Null) });
                }
                return Ok(if field.omitempty { None } else { Some(zero_scalar(*s)) });
            };
            let v = scalar(*s, last, &field.json)?;
            if field.omitempty && !field.pointer && is_zero(&v) {
                return Ok(None);
            }
            Ok(Some(v))
        }
        FieldType::Message(name) => {
            if values.is_empty() && field.pointer {
                return Ok(if field.omitempty { None } else { Some(Value::Null) });
            }
            let bytes = merged_bytes(field, values)?;
            let v = render_message(name, &bytes, depth + 1)?;
            // A slice wrapper (Go slice type) is the only message-typed value omitempty can drop.
            if field.omitempty && !field.pointer && v.as_array().is_some_and(Vec::is_empty) {
                return Ok(None);
            }
            if values.is_empty() && !field.omitempty && v.as_array().is_some_and(Vec::is_empty) {
                return Ok(Some(Value::Null));
            }
            Ok(Some(v))
        }
    }
}

/// The values of a repeated field (scalars possibly packed).
fn repeated_values(field: &Field, values: &[WireValue<'_>], depth: usize) -> Result<Vec<Value>, ApiError> {
    let mut items = Vec::with_capacity(values.len());
    for v in values {
        match &field.ty {
            FieldType::Scalar(s) => match v {
                WireValue::Bytes(packed) if s.packable() => unpack(*s, packed, &field.json, &mut items)?,
                _ => items.push(scalar(*s, v, &field.json)?),
            },
            FieldType::Message(name) => {
                let WireValue::Bytes(b) = v else {
                    return Err(bad(format!("field {}: message has wire type {}", field.json, v.wire_name())));
                };
                items.push(render_message(name, b, depth + 1)?);
            }
        }
    }
    Ok(items)
}

fn unpack(s: Scalar, packed: &[u8], json: &str, items: &mut Vec<Value>) -> Result<(), ApiError> {
    let mut r = Reader::new(packed);
    while !r.is_empty() {
        let wv = match s {
            Scalar::Fixed64 | Scalar::Sfixed64 | Scalar::Double => WireValue::Fixed64(r.fixed64().map_err(wire_err)?),
            Scalar::Fixed32 | Scalar::Sfixed32 | Scalar::Float => WireValue::Fixed32(r.fixed32().map_err(wire_err)?),
            _ => WireValue::Varint(r.varint().map_err(wire_err)?),
        };
        items.push(scalar(s, &wv, json)?);
    }
    Ok(())
}

/// A singular message field's bytes: several occurrences merge, which for protobuf is concatenation.
fn merged_bytes<'a>(field: &Field, values: &[WireValue<'a>]) -> Result<Cow<'a, [u8]>, ApiError> {
    let mut parts = Vec::with_capacity(values.len());
    for v in values {
        let WireValue::Bytes(b) = v else {
            return Err(bad(format!("field {}: message has wire type {}", field.json, v.wire_name())));
        };
        parts.push(*b);
    }
    Ok(match parts.as_slice() {
        [] => Cow::Borrowed(&[][..]),
        [one] => Cow::Borrowed(*one),
        many => Cow::Owned(many.concat()),
    })
}

/// One map entry (`key = 1`, `value = 2`) as a JSON key and value.
fn map_entry(field: &Field, key_ty: Scalar, entry: &[u8], depth: usize) -> Result<(String, Value), ApiError> {
    let mut key = None;
    let mut val: Vec<WireValue<'_>> = Vec::new();
    for (n, v) in wire::fields(entry).map_err(wire_err)? {
        match n {
            1 => key = Some(v),
            2 => val.push(v),
            _ => {}
        }
    }
    let key = match key {
        Some(k) => scalar(key_ty, &k, &field.json)?,
        None => zero_scalar(key_ty),
    };
    let key = match key {
        Value::String(s) => s,
        other => other.to_string(),
    };
    let value = match &field.ty {
        FieldType::Scalar(s) => match val.last() {
            Some(v) => scalar(*s, v, &field.json)?,
            None => zero_scalar(*s),
        },
        FieldType::Message(name) => {
            let bytes = merged_bytes(field, &val)?;
            render_message(name, &bytes, depth + 1)?
        }
    };
    Ok((key, value))
}

fn zero_scalar(s: Scalar) -> Value {
    match s {
        Scalar::String | Scalar::Bytes => Value::String(String::new()),
        Scalar::Bool => Value::Bool(false),
        Scalar::Double | Scalar::Float => Value::from(0.0),
        _ => Value::from(0),
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Null => true,
        _ => false,
    }
}

fn float(f: f64, json: &str) -> Result<Value, ApiError> {
    Number::from_f64(f).map(Value::Number).ok_or_else(|| bad(format!("field {json}: unsupported value {f}")))
}

/// Decode one scalar as JSON.
fn scalar(s: Scalar, v: &WireValue<'_>, json: &str) -> Result<Value, ApiError> {
    let mismatch = || bad(format!("field {json}: wire type {} does not fit {s:?}", v.wire_name()));
    Ok(match (s, v) {
        (Scalar::String, WireValue::Bytes(b)) => Value::String(String::from_utf8_lossy(b).into_owned()),
        // Standard base64 with padding, as Go's `encoding/json` prints `[]byte`.
        (Scalar::Bytes, WireValue::Bytes(b)) => Value::String(BASE64.encode(b)),
        (Scalar::Bool, WireValue::Varint(n)) => Value::Bool(*n != 0),
        (Scalar::Int32, WireValue::Varint(n)) => Value::from(*n as i32),
        (Scalar::Int64, WireValue::Varint(n)) => Value::from(*n as i64),
        (Scalar::Uint32, WireValue::Varint(n)) => Value::from(*n as u32),
        (Scalar::Uint64, WireValue::Varint(n)) => Value::from(*n),
        (Scalar::Sint32, WireValue::Varint(n)) => Value::from((((*n as u32) >> 1) as i32) ^ -((*n as u32 & 1) as i32)),
        (Scalar::Sint64, WireValue::Varint(n)) => Value::from(((*n >> 1) as i64) ^ -((*n & 1) as i64)),
        (Scalar::Fixed32, WireValue::Fixed32(n)) => Value::from(*n),
        (Scalar::Sfixed32, WireValue::Fixed32(n)) => Value::from(*n as i32),
        (Scalar::Float, WireValue::Fixed32(n)) => float(f64::from(f32::from_bits(*n)), json)?,
        (Scalar::Fixed64, WireValue::Fixed64(n)) => Value::from(*n),
        (Scalar::Sfixed64, WireValue::Fixed64(n)) => Value::from(*n as i64),
        (Scalar::Double, WireValue::Fixed64(n)) => float(f64::from_bits(*n), json)?,
        _ => return Err(mismatch()),
    })
}

/// Last varint / bytes of field `n` in a small special message.
fn varint_field(by_num: &HashMap<u32, Vec<WireValue<'_>>>, n: u32, what: &str) -> Result<u64, ApiError> {
    match by_num.get(&n).and_then(|v| v.last()) {
        None => Ok(0),
        Some(WireValue::Varint(x)) => Ok(*x),
        Some(other) => Err(bad(format!("{what}: wire type {} for field {n}", other.wire_name()))),
    }
}

fn bytes_field<'a>(
    by_num: &HashMap<u32, Vec<WireValue<'a>>>,
    n: u32,
    what: &str,
) -> Result<Option<&'a [u8]>, ApiError> {
    match by_num.get(&n).and_then(|v| v.last()) {
        None => Ok(None),
        Some(WireValue::Bytes(b)) => Ok(Some(b)),
        Some(other) => Err(bad(format!("{what}: wire type {} for field {n}", other.wire_name()))),
    }
}

/// `metav1.Time` (seconds precision) / `metav1.MicroTime` (microseconds): RFC 3339 in UTC, zero → null.
fn render_time(buf: &[u8], micro: bool) -> Result<Value, ApiError> {
    if buf.is_empty() {
        return Ok(Value::Null);
    }
    let f = group(buf)?;
    let seconds = varint_field(&f, 1, "Time")? as i64;
    let nanos = varint_field(&f, 2, "Time")? as i32;
    // Time keeps whole seconds (its protobuf decoder drops nanos); MicroTime truncates to µs.
    let nanos = if micro { i64::from(nanos) / 1000 * 1000 } else { 0 };
    let (seconds, nanos) = (seconds + nanos.div_euclid(1_000_000_000), nanos.rem_euclid(1_000_000_000));
    if seconds == GO_ZERO_TIME_UNIX && nanos == 0 {
        return Ok(Value::Null);
    }
    let t = chrono::DateTime::from_timestamp(seconds, nanos as u32)
        .ok_or_else(|| bad(format!("time {seconds}s out of range")))?;
    let fmt = if micro { "%Y-%m-%dT%H:%M:%S%.6fZ" } else { "%Y-%m-%dT%H:%M:%SZ" };
    Ok(Value::String(t.format(fmt).to_string()))
}

/// `metav1.Duration`: Go's `time.Duration.String()`.
fn render_duration(buf: &[u8]) -> Result<Value, ApiError> {
    let f = group(buf)?;
    Ok(Value::String(go_duration(varint_field(&f, 1, "Duration")? as i64)))
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub(crate) fn go_duration(d: i64) -> String {
    if d == 0 {
        return "0s".into();
    }
    let u = d.unsigned_abs();
    let sign = if d < 0 { "-" } else { "" };
    let frac = |v: u64, div: u64, digits: usize| -> String {
        let int = v / div;
        let rest = v % div;
        if rest == 0 {
            return int.to_string();
        }
        let f = format!("{rest:0digits$}");
        format!("{int}.{}", f.trim_end_matches('0'))
    };
    if u < 1_000_000_000 {
        let (div, digits, unit) = if u < 1_000 {
            (1, 0, "ns")
        } else if u < 1_000_000 {
            (1_000, 3, "µs")
        } else {
            (1_000_000, 6, "ms")
        };
        return format!("{sign}{}{unit}", frac(u, div, digits));
    }
    let secs = u / 1_000_000_000;
    let s = frac(u % 60_000_000_000, 1_000_000_000, 9);
    let (h, m) = (secs / 3600, (secs / 60) % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}s")
    } else {
        format!("{sign}{s}s")
    }
}

/// `resource.Quantity`: its canonical string; the zero quantity is `"0"`.
fn render_quantity(buf: &[u8]) -> Result<Value, ApiError> {
    let f = group(buf)?;
    let Some(s) = bytes_field(&f, 1, "Quantity")? else {
        return Ok(Value::String("0".into()));
    };
    let s = String::from_utf8_lossy(s);
    let q = crate::quantity::parse_quantity(&s)
        .ok_or_else(|| bad(format!("quantity {s:?}: {}", crate::quantity::QUANTITY_FORMAT_ERROR)))?;
    Ok(Value::String(q.to_string()))
}

/// `intstr.IntOrString`: a number (type 0) or a string (type 1).
fn render_int_or_string(buf: &[u8]) -> Result<Value, ApiError> {
    let f = group(buf)?;
    match varint_field(&f, 1, "IntOrString")? {
        0 => Ok(Value::from(varint_field(&f, 2, "IntOrString")? as i32)),
        1 => {
            let s = bytes_field(&f, 3, "IntOrString")?.unwrap_or_default();
            Ok(Value::String(String::from_utf8_lossy(s).into_owned()))
        }
        t => Err(bad(format!("impossible IntOrString.Type {t}"))),
    }
}

/// `runtime.RawExtension` / `metav1.FieldsV1`: field 1 holds the JSON itself; nil → null.
/// An embedded protobuf object (magic prefix) is decoded in turn.
fn render_raw_json(buf: &[u8], what: &str, depth: usize) -> Result<Value, ApiError> {
    let f = group(buf)?;
    let Some(raw) = bytes_field(&f, 1, what)? else {
        return Ok(Value::Null);
    };
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    if super::is_protobuf(raw) {
        return super::decode_at_depth(raw, depth + 1);
    }
    serde_json::from_slice(raw).map_err(|e| bad(format!("{what} does not hold JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi_proto::put_varint;

    #[test]
    fn go_duration_strings() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1), "1ns");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(1_500_000), "1.5ms");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(3_723_500_000_000), "1h2m3.5s");
        assert_eq!(go_duration(-2_000_000_000), "-2s");
        assert_eq!(go_duration(i64::MIN), "-2562047h47m16.854775808s");
    }

    #[test]
    fn bytes_render_as_std_base64() {
        let render = |b: &[u8]| scalar(Scalar::Bytes, &WireValue::Bytes(b), "data").unwrap_or(Value::Null);
        assert_eq!(render(b""), "");
        assert_eq!(render(b"\x03"), "Aw==");
        assert_eq!(render(b"ab"), "YWI=");
        assert_eq!(render(b"abc"), "YWJj");
        assert_eq!(render(b"\xfb\xff"), "+/8=");
        assert_eq!(render(b"hello world"), "aGVsbG8gd29ybGQ=");
    }

    #[test]
    fn time_formats() {
        // 1: seconds = 1199149261 (2008-01-01T01:01:01Z), 2: nanos = 123456789
        let mut b = vec![0x08];
        put_varint(&mut b, 1_199_149_261);
        b.push(0x10);
        put_varint(&mut b, 123_456_789);
        assert_eq!(render_time(&b, false).unwrap(), Value::from("2008-01-01T01:01:01Z"));
        assert_eq!(render_time(&b, true).unwrap(), Value::from("2008-01-01T01:01:01.123456Z"));
        assert_eq!(render_time(&[], false).unwrap(), Value::Null, "zero time is null");
        assert_eq!(render_time(&[0x08, 0x00], false).unwrap(), Value::from("1970-01-01T00:00:00Z"));
    }

    #[test]
    fn quantities_are_canonical_and_bad_ones_rejected() {
        assert_eq!(render_quantity(b"\x0a\x051000m").unwrap(), Value::from("1"));
        assert_eq!(render_quantity(b"\x0a\x05128Mi").unwrap(), Value::from("128Mi"));
        assert_eq!(render_quantity(b"").unwrap(), Value::from("0"));
        assert_eq!(render_quantity(b"\x0a\x03abc").unwrap_err().code, 400);
    }

    #[test]
    fn int_or_string() {
        assert_eq!(render_int_or_string(&[0x08, 0x00, 0x10, 0x05]).unwrap(), Value::from(5));
        assert_eq!(render_int_or_string(b"\x08\x01\x1a\x0325%").unwrap(), Value::from("25%"));
        assert_eq!(render_int_or_string(&[0x08, 0x07]).unwrap_err().code, 400);
    }

    #[test]
    fn raw_extension_embeds_json() {
        assert_eq!(render_raw_json(b"\x0a\x07{\"a\":1}", "RawExtension", 0).unwrap(), serde_json::json!({"a": 1}));
        assert_eq!(render_raw_json(b"", "RawExtension", 0).unwrap(), Value::Null);
        assert_eq!(render_raw_json(b"\x0a\x03{no", "RawExtension", 0).unwrap_err().code, 400);
    }
}
