//! Set-up shared by the core's relay tests.

use ficha_core::Company;
use ficha_core::token::{Claims, sign};

/// The relay's signing secret in these tests.
pub const SECRET: [u8; 32] = [3; 32];

/// The company the tests' replicas work in.
pub fn acme() -> Company {
    Company::new("acme").expect("company")
}

/// A token for `replica` that may read and write `acme` and never expires.
pub fn write_token(replica: &str) -> String {
    sign(
        &SECRET,
        &Claims {
            replica: replica.into(),
            companies: vec![acme()],
            write: true,
            issued_at: 0,
            expires_at: u64::MAX,
            code: String::new(),
        },
    )
}
