//! Unpadded base64 as Matrix uses it.
//!
//! Matrix writes base64 without padding: the standard alphabet for keys, signatures and hashes,
//! the URL-safe alphabet for event ids of room versions 4 and later. Decoding accepts input with
//! or without padding, as the spec asks of implementations.

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};

/// Which base64 alphabet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alphabet {
    Standard,
    UrlSafe,
}

const DECODE_CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_encode_padding(false)
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    // The spec's own test seed `...MW+3XA1` has non-zero trailing bits; other servers accept it.
    .with_decode_allow_trailing_bits(true);
const STANDARD_DECODER: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::STANDARD, DECODE_CONFIG);
const URL_SAFE_DECODER: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::URL_SAFE, DECODE_CONFIG);

/// Encodes without padding.
pub fn encode(bytes: &[u8], alphabet: Alphabet) -> String {
    match alphabet {
        Alphabet::Standard => general_purpose::STANDARD_NO_PAD.encode(bytes),
        Alphabet::UrlSafe => general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    }
}

/// Encodes with the standard alphabet, without padding.
pub fn encode_standard(bytes: &[u8]) -> String {
    encode(bytes, Alphabet::Standard)
}

/// Decodes padded or unpadded input.
pub fn decode(text: &str, alphabet: Alphabet) -> Result<Vec<u8>, base64::DecodeError> {
    match alphabet {
        Alphabet::Standard => STANDARD_DECODER.decode(text),
        Alphabet::UrlSafe => URL_SAFE_DECODER.decode(text),
    }
}

/// Decodes standard-alphabet input, padded or not.
pub fn decode_standard(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    decode(text, Alphabet::Standard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_without_padding() {
        for len in 0..10 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 250) as u8).collect();
            for alphabet in [Alphabet::Standard, Alphabet::UrlSafe] {
                let text = encode(&bytes, alphabet);
                assert!(!text.ends_with('='));
                assert_eq!(decode(&text, alphabet).unwrap(), bytes);
            }
        }
    }

    #[test]
    fn accepts_padding_and_distinguishes_alphabets() {
        assert_eq!(decode_standard("YQ==").unwrap(), b"a");
        assert_eq!(decode_standard("YQ").unwrap(), b"a");
        assert_eq!(encode(&[0xfb, 0xff], Alphabet::Standard), "+/8");
        assert_eq!(encode(&[0xfb, 0xff], Alphabet::UrlSafe), "-_8");
        assert!(decode("-_8", Alphabet::Standard).is_err());
        assert!(decode("+/8", Alphabet::UrlSafe).is_err());
    }
}
