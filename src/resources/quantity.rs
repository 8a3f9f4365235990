//! Kubernetes quantities as numbers, for the few sums the operator makes (the namespace quota
//! holds the database and its backup claim; does the quota leave room for the database
//! pod). Admission has already checked that the spec's quantities are quantities; anything
//! else is `None`.

const BINARY: [(&str, u32); 6] = [
    ("Ki", 1),
    ("Mi", 2),
    ("Gi", 3),
    ("Ti", 4),
    ("Pi", 5),
    ("Ei", 6),
];
const DECIMAL: [(&str, u32); 7] = [
    ("k", 1),
    ("M", 2),
    ("G", 3),
    ("T", 4),
    ("P", 5),
    ("E", 6),
    ("", 0),
];

/// The bytes `quantity` stands for, rounded up to a whole byte (`1.5Gi`, `500M`, `1e9`, `42`).
pub fn bytes(quantity: &str) -> Option<u128> {
    scaled(quantity, 1)
}

/// Thousandths of `quantity`, as CPU is counted (`500m` is 500, `2` is 2000), rounded up.
pub fn milli(quantity: &str) -> Option<u128> {
    scaled(quantity, 1000)
}

/// `quantity` times `scale`, rounded up to a whole number.
fn scaled(quantity: &str, scale: u128) -> Option<u128> {
    let quantity = quantity.trim();
    let end = quantity
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits: u128 = format!("{whole}{fraction}").parse().ok()?;
    let mut divisor = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    let multiplier = if let Some((_, power)) = BINARY.iter().find(|(s, _)| *s == suffix) {
        1024u128.checked_pow(*power)?
    } else if let Some((_, power)) = DECIMAL.iter().find(|(s, _)| *s == suffix) {
        1000u128.checked_pow(*power)?
    } else if suffix == "m" {
        divisor = divisor.checked_mul(1000)?;
        1
    } else {
        let exponent: u32 = suffix.strip_prefix(['e', 'E'])?.parse().ok()?;
        10u128.checked_pow(exponent)?
    };
    let value = digits.checked_mul(multiplier)?.checked_mul(scale)?;
    Some(value.div_ceil(divisor))
}

/// `bytes` as a quantity: in the largest binary unit that divides it, else plain bytes.
pub fn from_bytes(bytes: u128) -> String {
    for (suffix, power) in BINARY.iter().rev() {
        let unit = 1024u128.pow(*power);
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_read_as_bytes() {
        assert_eq!(bytes("200Gi"), Some(200 * 1024 * 1024 * 1024));
        assert_eq!(bytes("1.5Gi"), Some(3 * 512 * 1024 * 1024));
        assert_eq!(bytes("500M"), Some(500_000_000));
        assert_eq!(bytes("1e9"), Some(1_000_000_000));
        assert_eq!(bytes("42"), Some(42));
        assert_eq!(bytes("0.5"), Some(1), "rounded up to a whole byte");
        assert_eq!(bytes("Gi"), None);
        assert_eq!(bytes("12Qi"), None);
    }

    #[test]
    fn cpu_is_read_in_thousandths() {
        assert_eq!(milli("500m"), Some(500));
        assert_eq!(milli("2"), Some(2000));
        assert_eq!(milli("0.25"), Some(250));
        assert_eq!(milli("1.5m"), Some(2), "rounded up");
        assert_eq!(milli("1Gi"), Some(1000 * 1024 * 1024 * 1024));
    }

    #[test]
    fn bytes_are_written_in_the_largest_binary_unit() {
        assert_eq!(from_bytes(350 * 1024 * 1024 * 1024), "350Gi");
        assert_eq!(from_bytes(2 * 1024u128.pow(4)), "2Ti");
        assert_eq!(from_bytes(1_000_000_000), "1000000000");
    }
}
