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
    /// Free text: every word a prefix of a word of the name, email, tax id or code; or, with at
    /// least three digits, part of the phone number.
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
    /// Only clients that entered their current state at or after this time (ms since epoch).
    pub since: Option<i64>,
    /// Only clients that entered their current state before this time (ms since epoch).
    pub until: Option<i64>,
}

/// The order of a list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// By name (accents and case ignored), then id: the index's own order.
    #[default]
    Name,
    /// By name, descending.
    NameDesc,
    /// Oldest first.
    Created,
    /// Newest first.
    CreatedDesc,
    /// Best average review first (clients without reviews last).
    Rating,
}

impl std::str::FromStr for Sort {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "name" => Sort::Name,
            "name-desc" | "-name" => Sort::NameDesc,
            "created" => Sort::Created,
            "created-desc" | "-created" => Sort::CreatedDesc,
            "rating" => Sort::Rating,
            other => {
                return Err(format!(
                    "unknown sort {other:?}; use name, name-desc, created, created-desc or rating"
                ));
            }
        })
    }
}

impl Sort {
    /// Sorts clients; ties fall back to list order, so every replica prints the same list.
    pub fn apply(self, clients: &mut [ClientSummary]) {
        let name = |c: &ClientSummary| (order_key(c), c.id);
        match self {
            Sort::Name => clients.sort_by_cached_key(name),
            Sort::NameDesc => clients.sort_by_cached_key(|c| std::cmp::Reverse(name(c))),
            Sort::Created => clients.sort_by_cached_key(|c| (c.created_at, name(c))),
            Sort::CreatedDesc => {
                clients.sort_by_cached_key(|c| (std::cmp::Reverse(c.created_at), name(c)))
            }
            Sort::Rating => clients.sort_by_cached_key(|c| {
                // Average as a fraction compared exactly: rating_sum / reviews, highest first.
                let avg = if c.reviews == 0 {
                    -1
                } else {
                    i64::from(c.rating_sum) * 1_000_000 / i64::from(c.reviews)
                };
                (std::cmp::Reverse(avg), name(c))
            }),
        }
    }
}

/// One lookup in the term index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Documents holding exactly this term.
    Exact(String),
    /// Documents holding a term that starts with this.
    Prefix(String),
}

/// Clients a filter may match, as index lookups: a client is a candidate when, in every
/// clause, at least one probe finds it. The text clauses come first: they are the selective
/// ones, and a planner may stop once its candidates are few.
pub type Plan = Vec<Vec<Probe>>;

impl Filter {
    /// True if the client matches every criterion.
    pub fn matches(&self, c: &ClientSummary) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == have)
        };
        let state_ok = match &self.state {
            Some(s) => *s == c.state,
            None => !matches!(c.state.as_str(), "trashed" | "merged" | "purged"),
        };
        let at = c.state_at.unwrap_or(0);
        state_ok
            && eq(&self.company, Some(&c.company))
            && eq(&self.centre, c.home_centre.as_deref())
            && eq(&self.origin, c.origin.as_deref())
            && self.group.as_ref().is_none_or(|g| c.groups.contains(g))
            && self.since.is_none_or(|s| at >= s)
            && self.until.is_none_or(|u| at < u)
            && self.text.as_deref().is_none_or(|t| text_matches(t, c))
    }

    /// The index lookups that find every client this filter matches (and maybe others, which
    /// `matches` then drops). Empty: no lookup narrows it, walk the list.
    pub fn plan(&self) -> Plan {
        let mut plan = Plan::new();
        if let Some(text) = &self.text {
            let mut words = words(text);
            // Longer prefixes match fewer clients: look them up first.
            words.sort_by_key(|w| std::cmp::Reverse(w.len()));
            let digits = phone_digits(text);
            let phone = (digits.len() >= 3).then(|| Probe::Prefix(format!("{PHONE}{digits}")));
            // (w1 ∧ w2 ∧ …) ∨ phone, as clauses: (w1 ∨ phone) ∧ (w2 ∨ phone) ∧ …
            for w in &words {
                let mut clause = vec![Probe::Prefix(format!("{WORD}{w}"))];
                clause.extend(phone.clone());
                plan.push(clause);
            }
            if words.is_empty()
                && let Some(p) = phone
            {
                plan.push(vec![p]);
            }
        }
        let exact = |prefix: &str, v: &Option<String>| {
            v.as_ref()
                .map(|v| vec![Probe::Exact(format!("{prefix}{v}"))])
        };
        plan.extend(exact(GROUP, &self.group));
        plan.extend(exact(CENTRE, &self.centre));
        plan.extend(exact(ORIGIN, &self.origin));
        plan.extend(exact(STATE, &self.state));
        plan.extend(exact(COMPANY, &self.company));
        plan
    }
}

const WORD: &str = "w:";
const PHONE: &str = "p:";
const GROUP: &str = "g:";
const CENTRE: &str = "h:";
const ORIGIN: &str = "o:";
const STATE: &str = "s:";
const COMPANY: &str = "c:";

/// Normalised words: lower case, no accents, split at anything not a letter or digit.
fn words(s: &str) -> Vec<String> {
    normalise(s)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The words a client is found by: those of its name and email, and its tax id and code both
/// word by word and with the punctuation squeezed out ("B-1234" is found as "b1234").
fn searchable_words(c: &ClientSummary) -> Vec<String> {
    let mut out = words(&c.name);
    out.extend(c.email.iter().flat_map(|e| words(e)));
    for id in [&c.tax_id, &c.code].into_iter().flatten() {
        let w = words(id);
        if w.len() > 1 {
            out.push(w.concat());
        }
        out.extend(w);
    }
    out.sort();
    out.dedup();
    out
}

/// The rows the list index keeps for a client: its searchable words, every suffix of its phone
/// digits (so a prefix lookup finds any part of the number), and its filterable values.
pub fn index_terms(c: &ClientSummary) -> Vec<String> {
    let mut terms: Vec<String> = searchable_words(c)
        .into_iter()
        .map(|w| format!("{WORD}{w}"))
        .collect();
    if let Some(p) = &c.phone {
        let d = phone_digits(p);
        for i in 0..d.len().saturating_sub(2) {
            terms.push(format!("{PHONE}{}", &d[i..]));
        }
    }
    terms.extend(c.groups.iter().map(|g| format!("{GROUP}{g}")));
    terms.extend(c.home_centre.iter().map(|v| format!("{CENTRE}{v}")));
    terms.extend(c.origin.iter().map(|v| format!("{ORIGIN}{v}")));
    terms.push(format!("{STATE}{}", c.state));
    terms.push(format!("{COMPANY}{}", c.company));
    terms.sort();
    terms.dedup();
    terms
}

/// Where a client sits in the list: by normalised name (the id breaks ties in the index key).
pub fn order_key(c: &ClientSummary) -> String {
    normalise(&c.name)
}

fn text_matches(query: &str, c: &ClientSummary) -> bool {
    let q = words(query);
    let qd = phone_digits(query);
    if q.is_empty() && qd.len() < 3 {
        return true;
    }
    let have = searchable_words(c);
    let by_words = !q.is_empty() && q.iter().all(|w| have.iter().any(|h| h.starts_with(w)));
    by_words
        || (qd.len() >= 3
            && c.phone
                .as_deref()
                .is_some_and(|p| phone_digits(p).contains(&qd)))
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
            state_at: None,
            created_at: 0,
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

#[cfg(test)]
mod bounds {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ObjType, ROOT};

    /// What another replica could write, bypassing this one's checks: an 8 KB phone number,
    /// a 100 KB name and a thousand groups.
    #[test]
    fn the_index_of_a_record_stays_small_whatever_it_holds() {
        let mut d = AutoCommit::new();
        crate::new_client(&mut d, uuid::Uuid::nil(), "acme", "x", None, None, 0).expect("new");
        d.put(ROOT, "phone", "6".repeat(8192)).expect("put");
        d.put(ROOT, "name", "palabra ".repeat(12_500)).expect("put");
        let groups = d.put_object(ROOT, "groups", ObjType::Map).expect("map");
        for i in 0..1000 {
            d.put(&groups, format!("g{i}"), true).expect("put");
        }
        let summary = crate::summary(d.document()).expect("summary");
        let terms = index_terms(&summary);
        let bytes: usize = terms.iter().map(String::len).sum();
        assert!(terms.len() < 200, "{} terms", terms.len());
        assert!(bytes < 4096, "{bytes} bytes of terms");
        // What the index cannot find, the list cannot show either: they read the same summary.
        assert!(summary.phone.as_deref().is_some_and(|p| p.len() <= 32));
    }
}
