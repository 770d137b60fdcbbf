//! TOTP (RFC 6238) as a second factor: SHA-1, 6 digits, 30 s steps, ±1 step of skew; each
//! step is accepted once (the caller records it). Recovery codes are high-entropy, so a plain
//! SHA-256 of each is stored.

use qrcode::QrCode;
use qrcode::render::svg;
use totp_rs::{Algorithm, Builder, Totp};

pub const RECOVERY_CODES: usize = 10;

/// A new random secret, as base32.
pub fn new_secret() -> String {
    totp_rs::Secret::from(rand::random::<[u8; 20]>().to_vec()).to_base32()
}

/// Issuer and account names may not hold a colon in otpauth URLs.
fn label(s: &str) -> String {
    let cleaned: String = s.chars().filter(|c| *c != ':' && !c.is_control()).collect();
    if cleaned.trim().is_empty() {
        "Demiurge".into()
    } else {
        cleaned.trim().to_string()
    }
}

pub fn totp(secret_b32: &str, issuer: &str, account: &str) -> Option<Totp> {
    let secret = totp_rs::Secret::try_from_base32(secret_b32).ok()?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret)
        .with_issuer(Some(label(issuer)))
        .with_account_name(label(account))
        .build()
        .ok()
}

/// The step a code belongs to (within the skew), if it is right.
pub fn matching_step(t: &Totp, code: &str) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    t.check(&code, now)
}

pub fn otpauth_url(t: &Totp) -> String {
    t.to_url().unwrap_or_default()
}

/// The otpauth URL as an SVG QR code, for the enrolment page.
pub fn qr_svg(url: &str) -> String {
    match QrCode::new(url.as_bytes()) {
        Ok(code) => code
            .render::<svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build(),
        Err(_) => String::new(),
    }
}

/// Ten fresh recovery codes, `xxxxx-xxxxx` from an unambiguous alphabet.
pub fn new_recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    (0..RECOVERY_CODES)
        .map(|_| {
            let raw: Vec<char> = (0..10)
                .map(|_| ALPHABET[usize::from(rand::random::<u8>()) % ALPHABET.len()] as char)
                .collect();
            format!(
                "{}-{}",
                raw[..5].iter().collect::<String>(),
                raw[5..].iter().collect::<String>()
            )
        })
        .collect()
}

/// Recovery codes are compared without case, spaces or dashes.
pub fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_check_within_skew() {
        let s = new_secret();
        let t = totp(&s, "Demi:urge", "alice").unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let code = t.generate(now);
        assert_eq!(matching_step(&t, &code.to_string()), Some(now / 30));
        let far = t.generate(now + 300);
        assert_eq!(matching_step(&t, &far.to_string()), None);
        assert_eq!(matching_step(&t, "12ab56"), None);
        assert!(otpauth_url(&t).starts_with("otpauth://totp/"));
        assert!(qr_svg(&otpauth_url(&t)).contains("<svg"));
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), 10);
        assert_eq!(normalize_recovery_code(" ABCDE-fghij "), "abcdefghij");
    }
}
