//! Database passwords: 32 characters from the operating system's cryptographic random source.
//! Called only when the credentials Secret does not exist yet.

use crate::error::{Error, Result};

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LENGTH: usize = 32;

/// A new random password (about 190 bits), safe in URIs and shell variables.
pub fn password() -> Result<String> {
    // Bytes of 248 and above are dropped so that every character is equally likely
    // (248 is the largest multiple of 62 that fits in a byte).
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let mut out = String::with_capacity(LENGTH);
    while out.len() < LENGTH {
        let mut buf = [0u8; 64];
        getrandom::fill(&mut buf).map_err(|e| Error::Random(e.to_string()))?;
        for byte in buf.into_iter().filter(|b| *b < limit) {
            out.push(ALPHABET[usize::from(byte) % ALPHABET.len()] as char);
            if out.len() == LENGTH {
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_alphanumeric_and_different() {
        let a = password().unwrap();
        let b = password().unwrap();
        assert_eq!(a.len(), LENGTH);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)));
        assert_ne!(a, b);
    }
}
