//! How long a field may be: what a CRM allows for names, phones, emails and codes, and a bound
//! on free text, so that no field costs an index or a change more than it should.

use crate::error::DomainError;

/// Names (of clients, contacts, first and last names, legal names).
pub const NAME: usize = 200;
/// Email addresses (RFC 5321's limit on a path).
pub const EMAIL: usize = 254;
/// Phone numbers, with spaces and punctuation.
pub const PHONE: usize = 32;
/// Codes and tax ids.
pub const CODE: usize = 64;
/// Short values: centres, origins, groups, kinds, languages, employees.
pub const SHORT: usize = 100;
/// Other one-line values of the file's sections (address lines, roles, sources).
pub const LINE: usize = 500;
/// Free text: notes, comments, descriptions, additional information.
pub const TEXT: usize = 20_000;

/// The most characters `field` may hold.
pub fn max_len(field: &str) -> usize {
    match field {
        "name" | "first_name" | "last_name" | "legal_name" | "contacts.name" => NAME,
        "email" | "emails.value" | "contacts.email" => EMAIL,
        "phone" | "phones.value" | "contacts.phone" => PHONE,
        "tax_id" | "code" => CODE,
        "origin" | "home_centre" | "assigned_employee" | "preferred_language" | "group"
        | "type" | "kind" => SHORT,
        "text" | "description" | "additional_info" | "symptoms" | "notes" => TEXT,
        _ => LINE,
    }
}

/// Refuses a value longer than its field allows (counted in characters, as people count).
pub fn check(field: &str, value: &str) -> Result<(), DomainError> {
    let max = max_len(field);
    let len = value.chars().count();
    if len > max {
        return Err(DomainError::TooLong {
            field: field.to_string(),
            len,
            max,
        });
    }
    Ok(())
}

/// A one-line field may not hold a line break (an import row that swallowed the next ones).
pub fn check_line(field: &str, value: &str) -> Result<(), DomainError> {
    check(field, value)?;
    if value.contains(['\n', '\r']) {
        return Err(DomainError::InvalidValue {
            field: field.to_string(),
            reason: "must be a single line".into(),
        });
    }
    Ok(())
}

/// `s` cut to at most `max` characters (for what is derived from data others wrote).
pub fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_counted_in_characters_and_refused_with_the_numbers() {
        assert!(check("name", &"ñ".repeat(NAME)).is_ok());
        let err = check("name", &"ñ".repeat(NAME + 1)).expect_err("too long");
        assert!(
            err.to_string().contains("201") && err.to_string().contains("200"),
            "{err}"
        );
        assert!(check("phone", &"1".repeat(PHONE + 1)).is_err());
        assert!(check_line("name", "Ana\nBob").is_err());
        assert_eq!(truncate("ñañaña", 2), "ña");
    }
}
