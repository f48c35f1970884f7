//! A client's wallet, derived from its movements: never a stored number that two branches
//! could overwrite. Every movement is its own append-only record, so two branches deducting
//! offline both keep theirs; the balance, the total spent, the rewards and the overdraft alert
//! are computed from the merged set, in an order every replica agrees on.

use serde::Serialize;

use crate::record::{Money, RecordSummary};

/// One movement as the wallet counts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Movement {
    /// The movement record's id.
    pub id: String,
    /// add_funds, deduct, reward, redeem or reversal.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its amount (positive).
    pub amount: Money,
    /// The movement a reversal undoes.
    pub reverses: Option<String>,
    /// Its note.
    pub note: Option<String>,
    /// When it was made (ms).
    pub created_at: i64,
    /// Whether it counts; a second reversal of one movement, a reversal of a reversal or a
    /// movement in another currency does not, and says why.
    pub counts: bool,
    /// Why it does not count.
    pub ignored_because: Option<String>,
    /// The reversal that undid it.
    pub reversed_by: Option<String>,
}

/// The wallet as `wallet show` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wallet {
    /// Funds available (negative when overdrawn), in minor units.
    pub balance: i64,
    /// Everything deducted, in minor units.
    pub total_spent: i64,
    /// Rewards assigned and not redeemed, in minor units.
    pub rewards: i64,
    /// The wallet's currency: that of its first movement.
    pub currency: Option<String>,
    /// The balance is below zero: shown as an alert until funds are added.
    pub overdraft: bool,
    /// Every movement, oldest first.
    pub movements: Vec<Movement>,
}

fn movement(r: &RecordSummary) -> Option<Movement> {
    let text = |k: &str| r.text(k);
    let amount: Money = serde_json::from_value(r.fields.get("amount")?.clone()).ok()?;
    Some(Movement {
        id: r.id.clone(),
        kind: text("type")?,
        amount,
        reverses: text("reverses"),
        note: text("note"),
        created_at: r.created_at,
        counts: true,
        ignored_because: None,
        reversed_by: None,
    })
}

/// The wallet of the movements given (in any order: the result is the same).
pub fn compute(records: &[RecordSummary]) -> Wallet {
    let mut ms = crate::record::in_agreed_order(records, "wallet_movement", movement);
    let currency = ms.first().map(|m| m.amount.currency.clone());
    for m in &mut ms {
        if currency.as_ref() != Some(&m.amount.currency) {
            m.counts = false;
            m.ignored_because = Some(format!(
                "in {}, and this wallet is in {}",
                m.amount.currency,
                currency.clone().unwrap_or_default()
            ));
        }
    }
    // A movement is undone by its first reversal; later ones, and reversals of reversals,
    // are kept and shown but do not count.
    for i in 0..ms.len() {
        if !ms[i].counts || ms[i].kind != "reversal" {
            continue;
        }
        let target = ms[i].reverses.clone().unwrap_or_default();
        let found = ms.iter().position(|m| m.id == target);
        let why = match found {
            None => Some("it reverses a movement this replica does not have".to_string()),
            Some(t) if ms[t].kind == "reversal" => Some("a reversal cannot be reversed".into()),
            Some(t) if !ms[t].counts => Some("the movement it reverses does not count".into()),
            Some(t) if ms[t].reversed_by.is_some() => Some(format!(
                "{} was already reversed by {}",
                target,
                ms[t].reversed_by.clone().unwrap_or_default()
            )),
            Some(_) => None,
        };
        match (why, found) {
            (Some(why), _) => {
                ms[i].counts = false;
                ms[i].ignored_because = Some(why);
            }
            (None, Some(t)) => ms[t].reversed_by = Some(ms[i].id.clone()),
            (None, None) => {}
        }
    }
    let (mut balance, mut spent, mut rewards) = (0i64, 0i64, 0i64);
    for m in ms.iter().filter(|m| m.counts) {
        let undone = m.reversed_by.is_some();
        let a = m.amount.amount;
        let sign = if undone { 0 } else { 1 };
        match m.kind.as_str() {
            "add_funds" => balance += sign * a,
            "deduct" => {
                balance -= sign * a;
                spent += sign * a;
            }
            "reward" => rewards += sign * a,
            "redeem" => rewards -= sign * a,
            _ => {}
        }
    }
    Wallet {
        balance,
        total_spent: spent,
        rewards,
        currency,
        overdraft: balance < 0,
        movements: ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::seq::SliceRandom;

    fn m(id: &str, kind: &str, cents: i64, at: i64, reverses: Option<&str>) -> RecordSummary {
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("type".into(), serde_json::json!(kind));
        fields.insert(
            "amount".into(),
            serde_json::json!({"amount": cents, "currency": "EUR"}),
        );
        if let Some(r) = reverses {
            fields.insert("reverses".into(), serde_json::json!(r));
        }
        RecordSummary {
            id: id.into(),
            kind: "wallet_movement".into(),
            company: "acme".into(),
            client: Some("c".into()),
            title: String::new(),
            status: Some(kind.into()),
            date: None,
            total: None,
            paid: None,
            fields,
            links: Vec::new(),
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn two_offline_deductions_overdraw_and_a_movement_is_reversed_once_in_any_order() {
        let all = vec![
            m("a", "add_funds", 5_000, 1, None),
            m("b", "deduct", 3_000, 2, None),
            m("c", "deduct", 3_000, 2, None),
            m("d", "reward", 500, 3, None),
            // Two branches reverse the same deduction offline: one counts.
            m("e", "reversal", 3_000, 4, Some("b")),
            m("f", "reversal", 3_000, 5, Some("b")),
            m("g", "reversal", 0, 6, Some("e")),
            m("h", "redeem", 200, 7, None),
        ];
        let w = compute(&all[..3]);
        assert_eq!(
            (w.balance, w.total_spent, w.overdraft),
            (-1_000, 6_000, true)
        );
        let want = compute(&all);
        assert_eq!(
            (want.balance, want.total_spent, want.rewards),
            (2_000, 3_000, 300)
        );
        assert!(!want.overdraft);
        let ignored: Vec<&str> = want
            .movements
            .iter()
            .filter(|m| !m.counts)
            .map(|m| m.id.as_str())
            .collect();
        assert_eq!(ignored, ["f", "g"]);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        for _ in 0..200 {
            let mut shuffled = all.clone();
            shuffled.shuffle(&mut rng);
            assert_eq!(
                compute(&shuffled),
                want,
                "the order of arrival does not matter"
            );
        }
    }
}
