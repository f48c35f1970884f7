//! Enumerated values of the record.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! str_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $s:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $(
            #[doc = $s]
            $variant
        ),* }

        impl $name {
            /// The stored and displayed name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),* }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($s => Ok($name::$variant),)*
                    other => Err(format!("{other:?} is not one of: {}", [$($s),*].join(", "))),
                }
            }
        }
    };
}

str_enum!(
    /// Priority of a comment.
    Priority { Low => "low", Normal => "normal", High => "high" }
);
str_enum!(
    /// Priority of an alert.
    AlertPriority { Low => "low", Normal => "normal", High => "high", Critical => "critical" }
);
