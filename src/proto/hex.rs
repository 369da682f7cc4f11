//! Lower-case hexadecimal for digests: as a `String`, or written straight into any
//! `fmt::Write` (a hasher, a file) without an intermediate string.
//!
//! Invariants: two characters per byte, high nibble first, digits `0-9a-f` only.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `bytes` as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    Hex(bytes).to_string()
}

/// Displays its bytes as lower-case hex, a chunk at a time from a buffer on the stack.
pub struct Hex<'a>(pub &'a [u8]);

impl std::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buffer = [0u8; 64];
        for chunk in self.0.chunks(buffer.len() / 2) {
            for (index, byte) in chunk.iter().enumerate() {
                buffer[2 * index] = DIGITS[usize::from(byte >> 4)];
                buffer[2 * index + 1] = DIGITS[usize::from(byte & 0xf)];
            }
            let text =
                std::str::from_utf8(&buffer[..2 * chunk.len()]).expect("hex digits are ASCII");
            f.write_str(text)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_hex_across_chunks() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        let long: Vec<u8> = (0..=255u8).collect();
        let expected: String = long.iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(hex(&long), expected);
    }
}
