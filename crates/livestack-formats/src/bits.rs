//! A big-endian bit reader over codec RBSP data, with exp-Golomb codes.
//!
//! Owns: reading bits MSB-first from a byte slice and removing H.264/H.265
//! emulation-prevention bytes. Must not: allocate per read or panic on short
//! input; every read past the end is an `Err(EndOfData)`.

/// The input ended before a field did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EndOfData;

/// Reads bits MSB-first from a byte slice.
#[derive(Debug, Clone)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader positioned at the first bit of `data`.
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Bits not yet read.
    pub(crate) fn remaining(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    /// One bit as a flag.
    pub(crate) fn flag(&mut self) -> Result<bool, EndOfData> {
        Ok(self.bits(1)? == 1)
    }

    /// `n` bits (at most 32) as an unsigned number.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, EndOfData> {
        debug_assert!(n <= 32, "bits() reads at most 32 bits");
        let n = n.min(32) as usize;
        if n > self.remaining() {
            return Err(EndOfData);
        }
        let mut value: u64 = 0;
        for _ in 0..n {
            let byte = self.data[self.pos / 8];
            let bit = (byte >> (7 - (self.pos % 8))) & 1;
            value = (value << 1) | u64::from(bit);
            self.pos += 1;
        }
        // n <= 32, so the value fits.
        Ok(value as u32)
    }

    /// A byte-sized field.
    pub(crate) fn u8(&mut self) -> Result<u8, EndOfData> {
        // 8 bits always fit in a u8.
        Ok(self.bits(8)? as u8)
    }

    /// Skips `n` bits.
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), EndOfData> {
        if n > self.remaining() {
            return Err(EndOfData);
        }
        self.pos += n;
        Ok(())
    }

    /// An unsigned exp-Golomb code, `ue(v)`.
    ///
    /// Codes with 32 or more leading zeros do not fit 32 bits and are
    /// refused as if the data had ended: no valid stream uses them.
    pub(crate) fn ue(&mut self) -> Result<u32, EndOfData> {
        let mut zeros = 0u32;
        while !self.flag()? {
            zeros += 1;
            if zeros > 31 {
                return Err(EndOfData);
            }
        }
        let suffix = self.bits(zeros)?;
        // (2^zeros - 1) + suffix <= 2^32 - 2 for zeros <= 31.
        Ok(((1u64 << zeros) - 1 + u64::from(suffix)) as u32)
    }

    /// A signed exp-Golomb code, `se(v)`.
    pub(crate) fn se(&mut self) -> Result<i32, EndOfData> {
        let k = i64::from(self.ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        // |v| <= 2^31 - 1, so it fits an i32.
        Ok(v as i32)
    }
}

/// Copies a NAL unit without its emulation-prevention bytes (the `03` in
/// `00 00 03`), giving the raw byte sequence payload the syntax is read from.
pub(crate) fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_read_msb_first_across_bytes() {
        let mut r = BitReader::new(&[0b1010_0000, 0b1100_0000]);
        assert_eq!(r.bits(3), Ok(0b101));
        assert_eq!(r.bits(7), Ok(0b000_0011));
        assert_eq!(r.remaining(), 6);
    }

    #[test]
    fn exp_golomb_codes_decode_to_their_values() {
        // 1 | 010 | 011 | 00100 | 00101 -> ue 0, 1, 2, 3, 4
        let mut r = BitReader::new(&[0b1010_0110, 0b0100_0010, 0b1000_0000]);
        for want in 0..5 {
            assert_eq!(r.ue(), Ok(want));
        }
        // se: 1 -> 0, 010 -> 1, 011 -> -1, 00100 -> 2, 00101 -> -2
        let mut r = BitReader::new(&[0b1010_0110, 0b0100_0010, 0b1000_0000]);
        for want in [0, 1, -1, 2, -2] {
            assert_eq!(r.se(), Ok(want));
        }
    }

    #[test]
    fn reading_past_the_end_is_an_error_not_a_panic() {
        let mut r = BitReader::new(&[0xFF]);
        assert_eq!(r.bits(9), Err(EndOfData));
        let mut r = BitReader::new(&[0, 0, 0, 0, 0]);
        assert_eq!(r.ue(), Err(EndOfData));
        let mut r = BitReader::new(&[]);
        assert_eq!(r.flag(), Err(EndOfData));
        assert_eq!(r.skip(1), Err(EndOfData));
    }

    #[test]
    fn the_largest_exp_golomb_code_fits_32_bits() {
        // 31 zeros, a one, 31 ones.
        let mut bytes = vec![0u8; 3];
        bytes.extend_from_slice(&[0b0000_0001, 0xFF, 0xFF, 0xFF, 0xFE]);
        let mut r = BitReader::new(&bytes);
        assert_eq!(r.ue(), Ok(u32::MAX - 1));
    }

    #[test]
    fn emulation_prevention_bytes_are_removed() {
        assert_eq!(
            unescape_rbsp(&[0x67, 0, 0, 3, 1, 0, 0, 3, 0, 3]),
            vec![0x67, 0, 0, 1, 0, 0, 0, 3]
        );
    }
}
