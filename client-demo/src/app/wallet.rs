//! A client's wallet: movements are appended as records, the wallet is derived from them.

use ficha_core::DocId;
use ficha_domain::record::{Money, RecordFilter, RecordSort};
use ficha_domain::wallet::{self, Wallet};

use super::records::Given;
use super::{AppError, Replica};

impl Replica {
    /// The wallet of a client, derived from every movement this replica holds.
    pub fn wallet(&self, client: &DocId) -> Result<Wallet, AppError> {
        self.client_summary(client)?;
        let movements = self.list_records(
            &RecordFilter {
                kind: Some("wallet_movement".into()),
                linked: Some(client.to_string()),
                ..RecordFilter::default()
            },
            &RecordSort::default(),
            0,
            None,
        )?;
        Ok(wallet::compute(&movements))
    }

    /// Appends a movement (add_funds, deduct, reward, redeem) of `amount`; returns its id.
    /// A deduction may overdraw: two branches offline cannot know each other's, so the merged
    /// balance shows the overdraft instead of refusing here.
    pub fn wallet_move(
        &self,
        client: DocId,
        kind: &str,
        amount: &str,
        note: Option<&str>,
    ) -> Result<DocId, AppError> {
        if !["add_funds", "deduct", "reward", "redeem"].contains(&kind) {
            return Err(AppError::BadInput(format!(
                "{kind:?} is not a movement: add_funds, deduct, reward or redeem (reversals name what they undo)"
            )));
        }
        let money = Money::parse("amount", amount, None)?;
        if money.amount <= 0 {
            return Err(AppError::BadInput(
                "an amount must be above zero; to undo a movement, reverse it".into(),
            ));
        }
        let current = self.wallet(&client)?;
        if let Some(c) = &current.currency
            && *c != money.currency
        {
            return Err(AppError::BadInput(format!(
                "this wallet is in {c}; a movement in {} cannot join it",
                money.currency
            )));
        }
        let mut given = vec![
            ("type".to_string(), Given::Text(kind.into())),
            ("amount".to_string(), Given::Text(amount.into())),
        ];
        given.extend(note.map(|n| ("note".to_string(), Given::Text(n.into()))));
        self.add_record("wallet_movement", Some(client), None, &given)
    }

    /// Appends the reversal of `movement`; refused if it is already reversed or is itself a
    /// reversal (offline, a second reversal may still be made: it is kept and does not count).
    pub fn wallet_reverse(
        &self,
        client: DocId,
        movement: &str,
        note: Option<&str>,
    ) -> Result<DocId, AppError> {
        let current = self.wallet(&client)?;
        let target = current
            .movements
            .iter()
            .find(|m| m.id == movement.trim())
            .ok_or_else(|| {
                AppError::NotFound(format!("client {client} has no wallet movement {movement}"))
            })?;
        if target.kind == "reversal" {
            return Err(AppError::Conflict("a reversal cannot be reversed".into()));
        }
        if let Some(by) = &target.reversed_by {
            return Err(AppError::Conflict(format!(
                "movement {movement} was already reversed by {by}"
            )));
        }
        let amount = target.amount.display().replace(' ', "");
        let mut given = vec![
            ("type".to_string(), Given::Text("reversal".into())),
            ("amount".to_string(), Given::Text(amount)),
            ("reverses".to_string(), Given::Text(target.id.clone())),
        ];
        given.extend(note.map(|n| ("note".to_string(), Given::Text(n.into()))));
        self.add_record("wallet_movement", Some(client), None, &given)
    }
}
