//! Matching clients for the list: accent- and case-insensitive text search and filters, over
//! summaries only.

use crate::view::ClientSummary;

/// Lower-cases and strips the accents of Spanish, Portuguese, French and Catalan text.
pub fn normalise(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ñ' => 'n',
            'ç' => 'c',
            other => other,
        })
        .collect()
}

/// Digits only, so "+34 600-11 22" and "0034600112 2" compare by their numbers.
pub fn phone_digits(s: &str) -> String {
    let d: String = s.chars().filter(char::is_ascii_digit).collect();
    d.strip_prefix("00").map(str::to_string).unwrap_or(d)
}

/// What a list asks for.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Free text: name, email, phone, tax id or code.
    pub text: Option<String>,
    /// Only this company.
    pub company: Option<String>,
    /// Only this state (active, archived, trashed); by default trashed clients are hidden.
    pub state: Option<String>,
    /// Only members of this group.
    pub group: Option<String>,
    /// Only this home centre.
    pub centre: Option<String>,
    /// Only this origin.
    pub origin: Option<String>,
}

impl Filter {
    /// True if the client matches every criterion.
    pub fn matches(&self, c: &ClientSummary) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == have)
        };
        let state_ok = match &self.state {
            Some(s) => *s == c.state,
            None => c.state != "trashed" && c.state != "merged",
        };
        state_ok
            && eq(&self.company, Some(&c.company))
            && eq(&self.centre, c.home_centre.as_deref())
            && eq(&self.origin, c.origin.as_deref())
            && self.group.as_ref().is_none_or(|g| c.groups.contains(g))
            && self.text.as_deref().is_none_or(|t| text_matches(t, c))
    }
}

fn text_matches(query: &str, c: &ClientSummary) -> bool {
    let q = normalise(query.trim());
    if q.is_empty() {
        return true;
    }
    let fields = [
        Some(&c.name),
        c.email.as_ref(),
        c.tax_id.as_ref(),
        c.code.as_ref(),
    ];
    if fields.iter().flatten().any(|f| normalise(f).contains(&q)) {
        return true;
    }
    let qd = phone_digits(query);
    qd.len() >= 3
        && c.phone
            .as_deref()
            .is_some_and(|p| phone_digits(p).contains(&qd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(name: &str, phone: &str) -> ClientSummary {
        ClientSummary {
            id: uuid::Uuid::nil(),
            company: "acme".into(),
            name: name.into(),
            archived: false,
            state: "active".into(),
            email: Some("Jose@Example.com".into()),
            phone: Some(phone.into()),
            tax_id: None,
            code: None,
            groups: vec!["vip".into()],
            home_centre: None,
            origin: None,
            birth_date: None,
            import_batch: None,
            merged_into: None,
            not_duplicates: Vec::new(),
            reviews: 0,
            rating_sum: 0,
        }
    }

    #[test]
    fn search_ignores_accents_case_and_phone_formatting() {
        let c = client("José Núñez", "+34 600-11 22");
        let f = |t: &str| Filter {
            text: Some(t.into()),
            ..Filter::default()
        };
        assert!(f("jose nunez").matches(&c));
        assert!(f("NÚÑEZ").matches(&c));
        assert!(f("jose@example").matches(&c));
        assert!(f("0034 6001122").matches(&c));
        assert!(!f("maria").matches(&c));
        assert!(
            Filter {
                group: Some("vip".into()),
                ..Filter::default()
            }
            .matches(&c)
        );
        assert!(
            !Filter {
                company: Some("beta".into()),
                ..Filter::default()
            }
            .matches(&c)
        );
        let mut trashed = c.clone();
        trashed.state = "trashed".into();
        assert!(
            !Filter::default().matches(&trashed),
            "trash is hidden unless asked for"
        );
        assert!(
            Filter {
                state: Some("trashed".into()),
                ..Filter::default()
            }
            .matches(&trashed)
        );
    }
}
