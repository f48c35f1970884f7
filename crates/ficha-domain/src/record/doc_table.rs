//! `docs/records.md`'s table of kinds, generated from the registry so the docs cannot drift
//! from the code (a test compares them).

use std::fmt::Write;

use super::kinds::KINDS;
use super::registry::{FieldType, Merge, Parent};

/// The Markdown table of every kind and its fields.
pub fn markdown() -> String {
    let mut out = String::new();
    for k in KINDS {
        let parent = match k.parent {
            Parent::Client => "a client",
            Parent::OptionalClient => "a client or the company",
            Parent::Company => "the company",
        };
        let _ = writeln!(out, "### `{}` — {} / {}\n", k.name, k.label_es, k.label_en);
        let _ = write!(out, "Belongs to {parent}.");
        if let Some(s) = k.status {
            let _ = write!(out, " Status: `{s}`.");
        }
        if let Some(d) = k.date {
            let _ = write!(out, " Dated and listed by `{d}`.");
        }
        let _ = writeln!(
            out,
            "\n\n| field | type | required | merge |\n|---|---|---|---|"
        );
        for f in k.fields.iter().filter(|f| !f.hidden) {
            let ty = match f.ty {
                FieldType::Enum(values) => format!("enum: {}", values.join(", ")),
                FieldType::Ref(target) => format!("reference to {target}"),
                other => other.name().to_string(),
            };
            let merge = match f.merge {
                Merge::Register => "register (conflicts visible)",
                Merge::Text => "text (both edits kept)",
                Merge::Set => "set",
                Merge::Items => "items (all kept)",
                Merge::Monotonic => "only moves forward",
                Merge::Latest => "the latest written wins",
            };
            let required = if f.required { "yes" } else { "" };
            let default = f
                .default
                .map(|d| format!(" (default {d})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| `{}` | {ty}{default} | {required} | {merge} |",
                f.name
            );
        }
        out.push('\n');
    }
    out
}
