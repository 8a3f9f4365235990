//! Self-signed certificates made with openssl, for the test servers that need TLS.

/// A self-signed certificate for `/CN=subject` with the openssl extension lines `extensions`
/// (e.g. `subjectAltName=IP:127.0.0.1`), valid for 30 days: its PEM and its key's PEM.
pub fn self_signed(subject: &str, extensions: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let mut command = std::process::Command::new("openssl");
    command.args([
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
    ]);
    command.args(["-subj", &format!("/CN={subject}")]);
    for extension in extensions {
        command.args(["-addext", extension]);
    }
    let made = command
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{made:?}");
    (
        std::fs::read_to_string(cert).unwrap(),
        std::fs::read_to_string(key).unwrap(),
    )
}
