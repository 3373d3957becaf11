//! Nix's base-32 encoding ("nix32"): the alphabet without `e o u t`, and the byte order in which Nix writes hashes
//! (the last character encodes the lowest bits of the first byte). Pure; used by `hash` and `store_path`.

/// The 32 characters Nix uses, in value order.
pub const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// The length of the nix32 text for `n` bytes.
pub const fn encoded_len(n: usize) -> usize {
    (n * 8).div_ceil(5)
}

/// Encodes bytes as Nix does: characters for the highest bit positions come first.
pub fn encode(bytes: &[u8]) -> String {
    let len = encoded_len(bytes.len());
    let mut out = String::with_capacity(len);
    for k in (0..len).rev() {
        let b = k * 5;
        let i = b / 8;
        let j = b % 8;
        let low = u16::from(bytes[i]) >> j;
        let high = if i + 1 < bytes.len() { u16::from(bytes[i + 1]) << (8 - j) } else { 0 };
        out.push(char::from(ALPHABET[usize::from((low | high) & 31)]));
    }
    out
}

fn digit(c: u8) -> Option<u8> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u8)
}

/// Decodes nix32 text into `n` bytes; `None` if a character is outside the alphabet, the length is not
/// `encoded_len(n)`, or bits beyond the `n` bytes are set (Nix rejects those too).
pub fn decode(text: &str, n: usize) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if text.len() != encoded_len(n) {
        return None;
    }
    let mut out = vec![0u8; n];
    for (pos, &c) in text.iter().enumerate() {
        let d = digit(c)?;
        let k = text.len() - 1 - pos;
        let b = k * 5;
        let i = b / 8;
        let j = b % 8;
        let wide = u16::from(d) << j;
        out[i] |= (wide & 0xff) as u8;
        let carry = wide >> 8;
        if i + 1 < n {
            out[i + 1] |= carry as u8;
        } else if carry != 0 {
            return None;
        }
    }
    Some(out)
}

/// Returns true if and only if every byte of `text` is in the nix32 alphabet.
pub fn is_nix32(text: &str) -> bool {
    text.bytes().all(|c| digit(c).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vector() {
        // sha256 of the NAR of a file holding "hello\n" (checked against nix-hash).
        let hex = "1c37d01af40be2e80691de3cc3df44377a699afbb17c68f080964b2fd071fc13";
        let bytes = data_encoding::HEXLOWER.decode(hex.as_bytes()).unwrap();
        assert_eq!(encode(&bytes), "04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw");
        assert_eq!(decode(&encode(&bytes), 32).unwrap(), bytes);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(decode("e", 1).is_none());
        assert!(decode("00", 2).is_none());
        // 2 chars carry 10 bits; the top 2 bits do not fit in one byte.
        assert!(decode("z0", 1).is_none());
    }

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let text = encode(&bytes);
            prop_assert_eq!(text.len(), encoded_len(bytes.len()));
            prop_assert_eq!(decode(&text, bytes.len()).unwrap(), bytes);
        }
    }
}
