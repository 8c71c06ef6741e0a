//! The protobuf wire format, read-only: splitting a message's bytes into (field number, value) pairs.
//!
//! Knows nothing about Kubernetes types; `json.rs` gives the values meaning through the schema.
//! Every malformation (truncated varint, length past the end, group wire types) is a `WireError`.

/// One field value as it sits on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl WireValue<'_> {
    pub(crate) fn wire_name(&self) -> &'static str {
        match self {
            Self::Varint(_) => "varint",
            Self::Fixed64(_) => "fixed64",
            Self::Bytes(_) => "length-delimited",
            Self::Fixed32(_) => "fixed32",
        }
    }
}

/// Bytes that are not a well-formed protobuf message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WireError(pub String);

/// A cursor over a byte slice.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(WireError("unexpected end of data in varint".into()));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(WireError("varint overflows 64 bits".into()));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(WireError("varint overflows 64 bits".into()))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(WireError("unexpected end of data".into()));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn fixed64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub(crate) fn fixed32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(u32::from_le_bytes(a))
    }

    /// The next (field number, value), or `None` at the end.
    pub(crate) fn field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, WireError> {
        if self.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > (1 << 29) - 1 {
            return Err(WireError(format!("illegal field number {number}")));
        }
        let number = number as u32;
        let value = match key & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => WireValue::Fixed64(self.fixed64()?),
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| WireError("length overflows".into()))?;
                WireValue::Bytes(self.take(len)?)
            }
            5 => WireValue::Fixed32(self.fixed32()?),
            t => return Err(WireError(format!("unsupported wire type {t} for field {number}"))),
        };
        Ok(Some((number, value)))
    }
}

/// All fields of a message, in wire order.
pub(crate) fn fields(buf: &[u8]) -> Result<Vec<(u32, WireValue<'_>)>, WireError> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while let Some(f) = r.field()? {
        out.push(f);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_wire_type() {
        // 1: varint 150, 2: "hi", 3: fixed64 1, 4: fixed32 2
        let buf = [0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i', 0x19, 1, 0, 0, 0, 0, 0, 0, 0, 0x25, 2, 0, 0, 0];
        let f = fields(&buf).unwrap();
        assert_eq!(
            f,
            vec![
                (1, WireValue::Varint(150)),
                (2, WireValue::Bytes(b"hi")),
                (3, WireValue::Fixed64(1)),
                (4, WireValue::Fixed32(2)),
            ]
        );
    }

    #[test]
    fn negative_int_is_ten_byte_varint() {
        let buf = [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(fields(&buf).unwrap(), vec![(1, WireValue::Varint(u64::MAX))]);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(fields(&[0x08]).is_err(), "truncated varint");
        assert!(fields(&[0x12, 0x05, b'a']).is_err(), "length past end");
        assert!(fields(&[0x0b]).is_err(), "start-group wire type");
        assert!(fields(&[0x00, 0x00]).is_err(), "field number 0");
        assert!(fields(&[0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err(), "huge length");
        assert!(fields(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]).is_err(), "overflow");
        assert!(fields(&[0x19, 1, 2]).is_err(), "short fixed64");
    }

    #[test]
    fn empty_message_has_no_fields() {
        assert!(fields(&[]).unwrap().is_empty());
    }
}
