//! Client-side encryption of dumps with age (X25519 recipients): the store only ever holds
//! ciphertext, and only the holders of the private keys (where restores run) can read it.

use std::io::Write;
use std::str::FromStr;

use age::x25519::Recipient;

/// Parses one age public key (`age1...`).
pub fn recipient(text: &str) -> Result<Recipient, String> {
    Recipient::from_str(text.trim()).map_err(|e| e.to_string())
}

/// Parses public keys given one per line or comma-separated; empty entries are ignored.
pub fn recipients(text: &str) -> Result<Vec<Recipient>, String> {
    let keys: Vec<Recipient> = text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(recipient)
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err("no age public key given".into());
    }
    Ok(keys)
}

/// A new key pair as age-keygen writes it: a comment with the public key, then the private
/// key on a line of its own.
pub fn keygen() -> String {
    use age::secrecy::ExposeSecret;
    let identity = age::x25519::Identity::generate();
    format!(
        "# public key: {}\n{}\n",
        identity.to_public(),
        identity.to_string().expose_secret()
    )
}

/// A writer that encrypts everything written to it into `output`, to every recipient;
/// `finish` writes the last chunk and gives `output` back.
pub fn encrypting_writer<W: Write>(
    keys: &[Recipient],
    output: W,
) -> std::io::Result<age::stream::StreamWriter<W>> {
    let encryptor = age::Encryptor::with_recipients(keys.iter().map(|k| k as &dyn age::Recipient))
        .map_err(std::io::Error::other)?;
    encryptor.wrap_output(output)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use age::secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn what_is_encrypted_is_read_back_only_with_a_recipients_private_key() {
        let ours = age::x25519::Identity::generate();
        let theirs = age::x25519::Identity::generate();
        let mut out = Vec::new();
        let mut writer = encrypting_writer(&[ours.to_public()], &mut out).unwrap();
        writer.write_all(b"PGDMP patient rows").unwrap();
        writer.finish().unwrap();
        assert!(!out.windows(5).any(|w| w == b"PGDMP"));

        let read = |identity: &age::x25519::Identity| {
            let decryptor = age::Decryptor::new(&out[..]).map_err(|e| e.to_string())?;
            let mut plain = Vec::new();
            decryptor
                .decrypt(std::iter::once(identity as &dyn age::Identity))
                .map_err(|e| e.to_string())?
                .read_to_end(&mut plain)
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(plain)
        };
        assert_eq!(read(&ours).unwrap(), b"PGDMP patient rows");
        assert!(read(&theirs).is_err());
        let parsed = recipients(&format!(" {} ,\n", ours.to_public())).unwrap();
        assert_eq!(parsed.len(), 1);
        assert!(
            ours.to_string()
                .expose_secret()
                .starts_with("AGE-SECRET-KEY-")
        );
        assert!(recipients("").is_err());
        let pair = keygen();
        let public = pair
            .lines()
            .next()
            .unwrap()
            .strip_prefix("# public key: ")
            .unwrap();
        let private: age::x25519::Identity = pair.lines().nth(1).unwrap().parse().unwrap();
        assert_eq!(private.to_public().to_string(), public);
        assert!(recipients("age1nope").is_err());
    }
}
