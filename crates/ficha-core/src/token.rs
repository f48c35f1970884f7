//! Replica tokens: claims signed by the relay with a keyed blake3 MAC.
//!
//! A token is `ft1.<base64url(postcard(claims))>.<base64url(mac)>`. The relay alone holds the
//! 32-byte secret, so any replica can carry a token but none can mint or alter one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::TokenError;
use crate::ids::Company;

const PREFIX: &str = "ft1";

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The replica's name, as given to `ficha-relay token --replica`.
    pub replica: String,
    /// The companies whose documents the replica may see.
    pub companies: Vec<Company>,
    /// May upload changes (false for read-only tokens).
    pub write: bool,
    /// Issue time, seconds since the Unix epoch.
    pub issued_at: u64,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
    /// The replica's short code, unique on its relay: the prefix of the numbers it gives
    /// (cases `A3-17`, its invoice series). Empty in tokens issued before codes existed.
    pub code: String,
}

/// Claims as tokens issued before replica codes carried them. postcard reads fields in order
/// and ignores what follows, so an old relay reads new tokens; new code reads old tokens
/// through this.
#[derive(Deserialize)]
struct ClaimsV1 {
    replica: String,
    companies: Vec<Company>,
    write: bool,
    issued_at: u64,
    expires_at: u64,
}

fn decode(payload: &[u8]) -> Result<Claims, TokenError> {
    if let Ok(c) = postcard::from_bytes::<Claims>(payload) {
        return Ok(c);
    }
    let v1: ClaimsV1 = postcard::from_bytes(payload).map_err(|_| TokenError::Malformed)?;
    Ok(Claims {
        replica: v1.replica,
        companies: v1.companies,
        write: v1.write,
        issued_at: v1.issued_at,
        expires_at: v1.expires_at,
        code: String::new(),
    })
}

/// Signs claims into a token string.
pub fn sign(secret: &[u8; 32], claims: &Claims) -> String {
    let payload = match postcard::to_allocvec(claims) {
        Ok(p) => p,
        Err(e) => unreachable!("invariant: claims always serialise: {e}"),
    };
    let mac = blake3::keyed_hash(secret, &payload);
    format!(
        "{PREFIX}.{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(mac.as_bytes())
    )
}

/// Splits a token into its claims payload and its MAC.
fn parts(token: &str) -> Result<(Vec<u8>, Vec<u8>), TokenError> {
    let mut parts = token.trim().split('.');
    let (Some(PREFIX), Some(payload), Some(mac), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenError::Malformed);
    Ok((decode(payload)?, decode(mac)?))
}

/// Checks a token's signature and expiry at time `now` (seconds since the Unix epoch).
pub fn verify(secret: &[u8; 32], token: &str, now: u64) -> Result<Claims, TokenError> {
    let (payload, mac) = parts(token)?;
    let mac: [u8; 32] = mac.try_into().map_err(|_| TokenError::Malformed)?;
    // blake3::Hash compares in constant time.
    if blake3::keyed_hash(secret, &payload) != blake3::Hash::from(mac) {
        return Err(TokenError::BadSignature);
    }
    let claims = decode(&payload)?;
    if now >= claims.expires_at {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// Reads a token's claims without checking its signature: replicas use it to know what they
/// were granted (the relay alone decides, with [`verify`]).
pub fn peek(token: &str) -> Result<Claims, TokenError> {
    let (payload, _) = parts(token)?;
    decode(&payload)
}

/// A loggable form of a token: never the whole secret-bearing string.
pub fn redact(token: &str) -> String {
    let tail: String = token
        .chars()
        .rev()
        .take(6)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("ft1…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            replica: "branch-a".into(),
            companies: vec![Company::new("acme").expect("valid")],
            write: true,
            issued_at: 100,
            expires_at: 200,
            code: "A1".into(),
        }
    }

    #[test]
    fn a_token_issued_before_replica_codes_still_verifies_with_no_code() {
        #[derive(Serialize)]
        struct Old {
            replica: String,
            companies: Vec<Company>,
            write: bool,
            issued_at: u64,
            expires_at: u64,
        }
        let secret = [5u8; 32];
        let c = claims();
        let old = Old {
            replica: c.replica.clone(),
            companies: c.companies.clone(),
            write: c.write,
            issued_at: c.issued_at,
            expires_at: c.expires_at,
        };
        let payload = postcard::to_allocvec(&old).expect("ser");
        let mac = blake3::keyed_hash(&secret, &payload);
        let t = format!(
            "ft1.{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(mac.as_bytes())
        );
        let got = verify(&secret, &t, 150).expect("an old token verifies");
        assert_eq!((got.replica.as_str(), got.code.as_str()), ("branch-a", ""));
        // And a reader of old claims reads a new token's fields in order.
        #[derive(Deserialize, Debug, PartialEq)]
        struct OldRead {
            replica: String,
            companies: Vec<Company>,
            write: bool,
            issued_at: u64,
            expires_at: u64,
        }
        let (payload, _) = parts(&sign(&secret, &c)).expect("parts");
        let read: OldRead = postcard::from_bytes(&payload).expect("old reader");
        assert_eq!(read.replica, "branch-a");
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let secret = [5u8; 32];
        let t = sign(&secret, &claims());
        assert_eq!(verify(&secret, &t, 150), Ok(claims()));
        assert_eq!(peek(&t), Ok(claims()));
        assert_eq!(verify(&secret, &t, 200), Err(TokenError::Expired));
    }

    #[test]
    fn forged_or_tampered_tokens_are_refused() {
        let secret = [5u8; 32];
        let t = sign(&secret, &claims());
        assert_eq!(verify(&[6u8; 32], &t, 150), Err(TokenError::BadSignature));
        let mut forged = claims();
        forged.companies.push(Company::new("other").expect("valid"));
        let forged_payload = URL_SAFE_NO_PAD.encode(postcard::to_allocvec(&forged).expect("ser"));
        let mac = t.rsplit('.').next().expect("mac");
        let tampered = format!("ft1.{forged_payload}.{mac}");
        assert_eq!(
            verify(&secret, &tampered, 150),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify(&secret, "garbage", 150), Err(TokenError::Malformed));
        assert_eq!(
            verify(&secret, "ft1.@@.@@", 150),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn redaction_hides_the_token() {
        let t = sign(&[1; 32], &claims());
        let r = redact(&t);
        assert!(r.len() < 16 && !t.starts_with(&r));
    }
}
