//! Resource quantities (`100m`, `1Gi`, `1e3`), as upstream's `resource.Quantity`.
//!
//! A quantity is held exactly as a signed count of nano-units (upstream keeps at
//! least nano precision and rounds finer values up), plus the format it was
//! written in, which decides how it prints (`1536Mi`, `1500m`, `2M`, `1e3`).
//! The scheduler, the kubelet and validation share this parser.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

/// How a quantity prints, chosen from the suffix it was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `Ki`, `Mi`, ... (powers of 1024)
    BinarySI,
    /// `n`, `u`, `m`, ``, `k`, `M`, ... (powers of 1000)
    DecimalSI,
    /// `1e3`, `5E-3`
    DecimalExponent,
}

/// A parsed quantity: `nanos` is the value times 10^9.
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    nanos: i128,
    pub format: Format,
}

const NANO: i128 = 1_000_000_000;

/// Upstream's message when a string is not a quantity (`ErrFormatWrong`).
pub const QUANTITY_FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

fn pow10(e: u32) -> Option<i128> {
    10i128.checked_pow(e)
}

/// Divide rounding away from zero (upstream rounds sub-nano values up).
fn div_round_up(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d == 0 {
        q
    } else if n > 0 {
        q + 1
    } else {
        q - 1
    }
}

/// Parse a quantity string; `None` when upstream would reject it (or it overflows our range).
pub fn parse_quantity(s: &str) -> Option<Quantity> {
    if s.is_empty() {
        return None;
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut negative = false;
    if bytes[0] == b'+' || bytes[0] == b'-' {
        negative = bytes[0] == b'-';
        i = 1;
    }
    // Number part: digits with at most one '.'.
    let mut mantissa: i128 = 0;
    let mut frac_digits: u32 = 0;
    let mut seen_dot = false;
    let mut digits = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_digit() {
            digits += 1;
            if digits > 30 {
                return None;
            }
            mantissa = mantissa * 10 + i128::from(c - b'0');
            if seen_dot {
                frac_digits += 1;
            }
        } else if c == b'.' && !seen_dot {
            seen_dot = true;
        } else {
            break;
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    let suffix = &s[i..];
    // value = mantissa * 10^-frac * mult; compute nanos = value * 10^9.
    let (num, den, format): (i128, i128, Format) = match suffix {
        "" => (NANO, 1, Format::DecimalSI),
        "n" => (1, 1, Format::DecimalSI),
        "u" => (1_000, 1, Format::DecimalSI),
        "m" => (1_000_000, 1, Format::DecimalSI),
        "k" => (NANO * 1_000, 1, Format::DecimalSI),
        "M" => (NANO * pow10(6)?, 1, Format::DecimalSI),
        "G" => (NANO * pow10(9)?, 1, Format::DecimalSI),
        "T" => (NANO * pow10(12)?, 1, Format::DecimalSI),
        "P" => (NANO * pow10(15)?, 1, Format::DecimalSI),
        "E" => (NANO * pow10(18)?, 1, Format::DecimalSI),
        "Ki" => (NANO << 10, 1, Format::BinarySI),
        "Mi" => (NANO << 20, 1, Format::BinarySI),
        "Gi" => (NANO << 30, 1, Format::BinarySI),
        "Ti" => (NANO << 40, 1, Format::BinarySI),
        "Pi" => (NANO << 50, 1, Format::BinarySI),
        "Ei" => (NANO << 60, 1, Format::BinarySI),
        other => {
            let rest = other.strip_prefix('e').or_else(|| other.strip_prefix('E'))?;
            let body = rest.strip_prefix('+').or_else(|| rest.strip_prefix('-')).unwrap_or(rest);
            if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) || body.len() > 4 {
                return None;
            }
            let exp: i32 = rest.parse().ok()?;
            let e = exp + 9;
            if e >= 0 {
                (pow10(u32::try_from(e).ok()?)?, 1, Format::DecimalExponent)
            } else {
                (1, pow10(u32::try_from(-e).ok()?)?, Format::DecimalExponent)
            }
        }
    };
    let den = den.checked_mul(pow10(frac_digits)?)?;
    let scaled = mantissa.checked_mul(num)?;
    let mut nanos = div_round_up(scaled, den);
    if negative {
        nanos = -nanos;
    }
    Some(Quantity { nanos, format })
}

/// Parse a quantity as it appears in JSON: a string, or a bare number.
pub fn parse_quantity_value(v: &Value) -> Option<Quantity> {
    match v {
        Value::String(s) => parse_quantity(s),
        Value::Number(n) => parse_quantity(&n.to_string()),
        _ => None,
    }
}

impl Quantity {
    pub fn from_nanos(nanos: i128, format: Format) -> Self {
        Self { nanos, format }
    }
    pub fn from_milli(milli: i64, format: Format) -> Self {
        Self { nanos: i128::from(milli) * 1_000_000, format }
    }
    pub fn from_int(v: i64, format: Format) -> Self {
        Self { nanos: i128::from(v) * NANO, format }
    }
    pub fn zero() -> Self {
        Self { nanos: 0, format: Format::DecimalSI }
    }
    /// The exact value times 10^9.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }
    /// The value in milli-units, rounded up (upstream's `MilliValue`).
    pub fn milli_value(&self) -> i128 {
        div_round_up(self.nanos, 1_000_000)
    }
    /// The value in whole units, rounded up (upstream's `Value`).
    pub fn value(&self) -> i128 {
        div_round_up(self.nanos, NANO)
    }
    pub fn as_f64(&self) -> f64 {
        self.nanos as f64 / NANO as f64
    }
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }
    /// -1, 0 or 1.
    pub fn sign(&self) -> i32 {
        self.nanos.signum() as i32
    }
    pub fn add(&self, other: &Quantity) -> Quantity {
        Quantity { nanos: self.nanos.saturating_add(other.nanos), format: self.format }
    }
    pub fn sub(&self, other: &Quantity) -> Quantity {
        Quantity { nanos: self.nanos.saturating_sub(other.nanos), format: self.format }
    }
    /// Canonical JSON form (a string), as upstream serializes it.
    pub fn to_value(&self) -> Value {
        Value::String(self.to_string())
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}
impl Eq for Quantity {}
impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl fmt::Display for Quantity {
    /// Upstream's canonical form: the largest suffix that keeps an integer mantissa.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return write!(f, "0");
        }
        let mut format = self.format;
        if format == Format::BinarySI && (self.nanos.abs() < 1024 * NANO || self.nanos % NANO != 0) {
            format = Format::DecimalSI;
        }
        if format == Format::BinarySI {
            let mut v = self.nanos / NANO;
            let mut k = 0;
            while k < 6 && v % 1024 == 0 {
                v /= 1024;
                k += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][k];
            return write!(f, "{v}{suffix}");
        }
        // Decimal: exponent (multiple of 3) from -9 up to 18.
        let mut v = self.nanos;
        let mut exp: i32 = -9;
        while exp < 18 && v % 1000 == 0 {
            v /= 1000;
            exp += 3;
        }
        if format == Format::DecimalExponent {
            if exp == 0 { write!(f, "{v}") } else { write!(f, "{v}e{exp}") }
        } else {
            let suffix = match exp {
                -9 => "n",
                -6 => "u",
                -3 => "m",
                0 => "",
                3 => "k",
                6 => "M",
                9 => "G",
                12 => "T",
                15 => "P",
                _ => "E",
            };
            write!(f, "{v}{suffix}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let cases: &[(&str, i128, &str)] = &[
            ("100m", 100_000_000, "100m"),
            ("1", NANO, "1"),
            ("0.5", 500_000_000, "500m"),
            (".5", 500_000_000, "500m"),
            ("1000m", NANO, "1"),
            ("1500m", 1_500_000_000, "1500m"),
            ("1Gi", NANO << 30, "1Gi"),
            ("1.5Gi", (NANO << 30) * 3 / 2, "1536Mi"),
            ("1024Mi", NANO << 30, "1Gi"),
            ("512Ki", NANO * 512 * 1024, "512Ki"),
            ("100Ki", NANO * 100 * 1024, "100Ki"),
            ("1e3", 1000 * NANO, "1e3"),
            ("1E3", 1000 * NANO, "1e3"),
            ("5e-3", 5_000_000, "5e-3"),
            ("2000000", 2_000_000 * NANO, "2M"),
            ("128974848", 128_974_848 * NANO, "128974848"),
            ("129M", 129_000_000 * NANO, "129M"),
            ("123Mi", (123 * NANO) << 20, "123Mi"),
            ("-1", -NANO, "-1"),
            ("+1k", 1000 * NANO, "1k"),
            ("1n", 1, "1n"),
            ("0.1n", 1, "1n"),
            ("0", 0, "0"),
            ("500Mi", (500 * NANO) << 20, "500Mi"),
            ("100", 100 * NANO, "100"),
            ("1000Ki", 1000 * 1024 * NANO, "1000Ki"),
        ];
        for (s, nanos, canon) in cases {
            let q = parse_quantity(s).unwrap_or_else(|| panic!("{s} should parse"));
            assert_eq!(q.nanos(), *nanos, "{s}");
            assert_eq!(q.to_string(), *canon, "{s}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for s in ["", "abc", "1.2.3", "1Zi", "m", "1 Gi", "1e", "1ee3", "--1", "1KiB", "."] {
            assert!(parse_quantity(s).is_none(), "{s} should not parse");
        }
    }

    #[test]
    fn compares_across_formats() {
        let a = parse_quantity("1Gi").unwrap();
        let b = parse_quantity("1G").unwrap();
        assert!(a > b);
        assert_eq!(parse_quantity("1").unwrap(), parse_quantity("1000m").unwrap());
        assert!(parse_quantity("250m").unwrap() < parse_quantity("0.5").unwrap());
        assert_eq!(parse_quantity("1.5").unwrap().milli_value(), 1500);
        assert_eq!(parse_quantity("1500m").unwrap().value(), 2);
        assert_eq!(parse_quantity_value(&serde_json::json!(2)).unwrap().value(), 2);
    }
}
