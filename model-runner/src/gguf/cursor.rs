//! Bounds-checked little-endian reads over a byte slice.
//!
//! Invariant: `pos <= bytes.len()`. Every read checks the remaining length first and
//! never advances on failure, so a malformed file can only produce an error.

use super::error::GgufError;

/// A failed read: `needed` bytes were requested at `at`, only `available` remained.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Short {
    pub at: u64,
    pub needed: u64,
    pub available: u64,
}

impl Short {
    /// Turns the short read into an error describing what was being read.
    pub fn eof(self, what: impl Into<String>) -> GgufError {
        GgufError::UnexpectedEof {
            what: what.into(),
            at: self.at,
            needed: self.needed,
            available: self.available,
        }
    }
}

/// Read position within an untrusted byte slice.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Absolute byte offset of the next read.
    pub fn pos(&self) -> u64 {
        self.pos as u64
    }

    /// Bytes left after the current position.
    pub fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    /// Takes the next `n` bytes, or fails without moving if fewer remain.
    pub fn take(&mut self, n: u64) -> Result<&'a [u8], Short> {
        let short = Short {
            at: self.pos(),
            needed: n,
            available: self.remaining(),
        };
        if n > self.remaining() {
            return Err(short);
        }
        // `n <= remaining <= usize::MAX`, so the conversion and the slice are in range.
        let n = usize::try_from(n).map_err(|_| short)?;
        let out = self.bytes.get(self.pos..self.pos + n).ok_or(short)?;
        self.pos += n;
        Ok(out)
    }

    /// Takes exactly `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Short> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }

    pub fn u32(&mut self) -> Result<u32, Short> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, Short> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_checked_and_do_not_advance_on_failure() {
        let mut c = Cursor::new(&[1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(c.u32().unwrap(), 1);
        assert_eq!(c.u64().unwrap(), 2);
        let short = c.u32().unwrap_err();
        assert_eq!((short.at, short.needed, short.available), (12, 4, 1));
        assert_eq!(c.pos(), 12);
        assert!(c.take(u64::MAX).is_err());
        assert_eq!(c.take(1).unwrap(), &[9]);
        assert_eq!(c.remaining(), 0);
        assert_eq!(c.take(0).unwrap(), &[] as &[u8]);
    }
}
