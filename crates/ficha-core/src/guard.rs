//! The last line of defence around Automerge calls on bytes from another machine.
//!
//! Automerge 0.12 panics on some inputs it accepts as well formed (a change whose sequence
//! number skips ahead, operations that name an element of the wrong object…). Every call that
//! applies foreign bytes goes through [`contain`], so such a panic becomes an error for that one
//! document instead of ending the process. A document whose call panicked may be half-updated:
//! callers discard it and reload it from storage.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f`, turning a panic into an error carrying the panic's message.
///
/// The caller must treat any state `f` touched as lost when this returns `Err`.
pub fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        tracing::error!(panic = %message, "contained a panic in Automerge on foreign data");
        format!("Automerge failed on this data ({message})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_and_normal_results_pass() {
        assert_eq!(contain(|| 7), Ok(7));
        let err = contain(|| -> u8 { panic!("seq gap") }).expect_err("contained");
        assert!(err.contains("seq gap"), "{err}");
    }
}
