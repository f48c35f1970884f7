//! Typed field values: parsed from what a person types (`1234.50EUR`, `2026-12-03`) or from
//! JSON, checked against the field's type, and shown back as JSON.

use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::registry::{FieldSpec, FieldType};
use crate::error::DomainError;

/// An amount of money: integer minor units and an ISO 4217 currency code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// Minor units (cents for EUR, whole yen for JPY).
    pub amount: i64,
    /// Three upper-case letters.
    pub currency: String,
}

/// Currencies without minor units; every other has two.
const NO_DECIMALS: &[&str] = &[
    "JPY", "KRW", "CLP", "ISK", "VND", "PYG", "UGX", "XAF", "XOF",
];

impl Money {
    /// Digits after the decimal point in `currency`.
    pub fn decimals(currency: &str) -> u32 {
        if NO_DECIMALS.contains(&currency) {
            0
        } else {
            2
        }
    }

    /// `1234.50EUR`, `1234,50 EUR`, `EUR 1234.50`; or minor units alone with `currency`.
    pub fn parse(field: &str, text: &str, currency: Option<&str>) -> Result<Self, DomainError> {
        let bad = |reason: String| DomainError::InvalidValue {
            field: field.into(),
            reason,
        };
        let t = text.trim();
        let letters: String = t.chars().filter(|c| c.is_ascii_alphabetic()).collect();
        let number: String = t
            .chars()
            .filter(|c| !c.is_ascii_alphabetic() && !c.is_whitespace())
            .collect();
        if letters.is_empty() {
            let Some(cur) = currency else {
                return Err(bad(format!(
                    "{t:?} needs a currency: write it as 1234.50EUR, or give currency=EUR with the amount in cents"
                )));
            };
            let cur = check_currency(field, cur)?;
            let amount: i64 = number
                .parse()
                .map_err(|_| bad(format!("{t:?} is not a whole number of minor units")))?;
            return Ok(Money {
                amount,
                currency: cur,
            });
        }
        let cur = check_currency(field, &letters)?;
        let number = number.replace(',', ".");
        let (neg, digits) = match number.strip_prefix('-') {
            Some(d) => (true, d.to_string()),
            None => (false, number.clone()),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((&digits, ""));
        let places = Self::decimals(&cur) as usize;
        if frac.len() > places
            || whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad(format!(
                "{t:?} is not an amount in {cur} (at most {places} decimals), e.g. 1234.50{cur}"
            )));
        }
        let scaled = format!("{whole}{frac:0<places$}");
        let amount: i64 = scaled
            .parse()
            .map_err(|_| bad(format!("{t:?} is too large")))?;
        Ok(Money {
            amount: if neg { -amount } else { amount },
            currency: cur,
        })
    }

    /// How it is stored: one register, so amount and currency never merge apart.
    pub fn stored(&self) -> String {
        format!("{} {}", self.amount, self.currency)
    }

    /// Back from [`Money::stored`].
    pub fn from_stored(s: &str) -> Option<Self> {
        let (amount, currency) = s.split_once(' ')?;
        Some(Money {
            amount: amount.parse().ok()?,
            currency: currency.to_string(),
        })
    }

    /// `1234.50 EUR`.
    pub fn display(&self) -> String {
        let places = Self::decimals(&self.currency);
        if places == 0 {
            return format!("{} {}", self.amount, self.currency);
        }
        let unit = 10i64.pow(places);
        let sign = if self.amount < 0 { "-" } else { "" };
        let a = self.amount.unsigned_abs();
        let unit = unit as u64;
        format!(
            "{sign}{}.{:0w$} {}",
            a / unit,
            a % unit,
            self.currency,
            w = places as usize
        )
    }

    /// JSON: amount in minor units, currency, and the amount as people read it.
    pub fn json(&self) -> Json {
        json!({"amount": self.amount, "currency": self.currency, "text": self.display()})
    }
}

fn check_currency(field: &str, c: &str) -> Result<String, DomainError> {
    let up = c.trim().to_ascii_uppercase();
    if up.len() != 3 || !up.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(DomainError::InvalidValue {
            field: field.into(),
            reason: format!("{c:?} is not an ISO 4217 currency code such as EUR, USD or MXN"),
        });
    }
    Ok(up)
}

/// A value ready to be written: what the document stores for one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// A string register (text, enum, reference, date, money).
    Str(String),
    /// An integer register (integers, date-times as ms since the epoch).
    Int(i64),
    /// A boolean register.
    Bool(bool),
    /// Free text, merged as Automerge text.
    Text(String),
    /// The members of a set.
    Set(Vec<String>),
}

/// Parses what a person typed for `field`. `currency` is the `currency=` given beside it.
pub fn parse(field: &FieldSpec, text: &str, currency: Option<&str>) -> Result<Stored, DomainError> {
    let name = field.name;
    let bad = |reason: String| DomainError::InvalidValue {
        field: name.into(),
        reason,
    };
    match field.ty {
        FieldType::Text | FieldType::Ref(_) => {
            crate::limits::check_line(name, text)?;
            if let FieldType::Ref(kind) = field.ty
                && !text.is_empty()
                && uuid::Uuid::parse_str(text.trim()).is_err()
            {
                return Err(bad(format!("{text:?} is not the id of a {kind}")));
            }
            Ok(Stored::Str(text.trim().to_string()))
        }
        FieldType::LongText => {
            crate::limits::check(name, text)?;
            Ok(Stored::Text(text.to_string()))
        }
        FieldType::Integer => text
            .trim()
            .parse()
            .map(Stored::Int)
            .map_err(|_| bad(format!("{text:?} is not a whole number"))),
        FieldType::Money => Ok(Stored::Str(Money::parse(name, text, currency)?.stored())),
        FieldType::Date => {
            NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                .map_err(|_| bad(format!("{text:?} is not a date; write it as 2026-12-31")))?;
            Ok(Stored::Str(text.trim().to_string()))
        }
        FieldType::DateTime => DateTime::parse_from_rfc3339(text.trim())
            .map(|t| Stored::Int(t.timestamp_millis()))
            .map_err(|_| {
                bad(format!(
                    "{text:?} is not a date and time; write it as 2026-12-31T10:30:00+01:00"
                ))
            }),
        FieldType::Enum(values) => {
            let v = text.trim().to_ascii_lowercase();
            if values.contains(&v.as_str()) {
                Ok(Stored::Str(v))
            } else {
                Err(bad(format!(
                    "{text:?} is not one of: {}",
                    values.join(", ")
                )))
            }
        }
        FieldType::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "si" | "sí" | "1" => Ok(Stored::Bool(true)),
            "false" | "no" | "0" => Ok(Stored::Bool(false)),
            _ => Err(bad(format!("{text:?} is not true or false"))),
        },
        FieldType::Set => {
            let mut members = Vec::new();
            for m in text.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                crate::limits::check_line(name, m)?;
                members.push(m.to_string());
            }
            Ok(Stored::Set(members))
        }
        FieldType::Lines => Err(bad(
            "lines are added one by one: `ficha record line add ID description=… quantity=… unit_price=…`".into(),
        )),
    }
}

/// Parses a JSON value for `field` (strings as typed; numbers, booleans and arrays directly).
pub fn parse_json(
    field: &FieldSpec,
    value: &Json,
    currency: Option<&str>,
) -> Result<Stored, DomainError> {
    let text = match (field.ty, value) {
        (FieldType::Money, Json::Object(m)) => {
            let amount = m.get("amount").and_then(Json::as_i64);
            let cur = m.get("currency").and_then(Json::as_str);
            return match (amount, cur) {
                (Some(a), Some(c)) => Ok(Stored::Str(
                    Money {
                        amount: a,
                        currency: check_currency(field.name, c)?,
                    }
                    .stored(),
                )),
                _ => Err(DomainError::InvalidValue {
                    field: field.name.into(),
                    reason: "money is {\"amount\": minor units, \"currency\": \"EUR\"} or \"1234.50EUR\"".into(),
                }),
            };
        }
        (FieldType::Set, Json::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect::<Vec<_>>()
            .join(","),
        (_, Json::String(s)) => s.clone(),
        (_, Json::Number(n)) => n.to_string(),
        (_, Json::Bool(b)) => b.to_string(),
        (_, other) => {
            return Err(DomainError::InvalidValue {
                field: field.name.into(),
                reason: format!("{other} is not a value for a {} field", field.ty.name()),
            });
        }
    };
    parse(field, &text, currency)
}

/// The JSON a stored scalar of `field` shows as.
pub fn show(field: &FieldSpec, stored: &Stored) -> Json {
    match (field.ty, stored) {
        (FieldType::Money, Stored::Str(s) | Stored::Text(s)) => {
            Money::from_stored(s).map_or(Json::Null, |m| m.json())
        }
        (FieldType::DateTime, Stored::Int(ms)) => iso(*ms).map_or(Json::Null, Json::String),
        (_, Stored::Str(s) | Stored::Text(s)) => Json::String(s.clone()),
        (_, Stored::Int(i)) => json!(i),
        (_, Stored::Bool(b)) => json!(b),
        (_, Stored::Set(m)) => json!(m),
    }
}

/// Milliseconds since the epoch as ISO 8601 in UTC.
pub fn iso(ms: i64) -> Option<String> {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_read_as_people_write_it_and_refused_when_ambiguous() {
        let m = |t: &str, c: Option<&str>| Money::parse("total", t, c);
        assert_eq!(m("1234.50EUR", None).expect("m").amount, 123450);
        assert_eq!(m("1234,5 eur", None).expect("m").amount, 123450);
        assert_eq!(m("EUR 12", None).expect("m").amount, 1200);
        assert_eq!(m("-3.07USD", None).expect("m").amount, -307);
        assert_eq!(m("123450", Some("EUR")).expect("m").amount, 123450);
        assert_eq!(m("1500JPY", None).expect("m").amount, 1500);
        assert!(
            m("12.345EUR", None).is_err(),
            "more decimals than the currency has"
        );
        assert!(m("12.3JPY", None).is_err());
        assert!(m("123450", None).is_err(), "no currency");
        assert!(m("12EURO", None).is_err());
        assert!(m("1.2.3EUR", None).is_err());
        assert_eq!(m("1234.50EUR", None).expect("m").display(), "1234.50 EUR");
        assert_eq!(m("-0.05EUR", None).expect("m").display(), "-0.05 EUR");
        let stored = m("7.01MXN", None).expect("m").stored();
        assert_eq!(
            Money::from_stored(&stored),
            Some(m("7.01MXN", None).expect("m"))
        );
    }
}
