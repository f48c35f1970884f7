//! `ficha record …` and `ficha employee …`: one set of subcommands for every record kind, the
//! kind and its fields named by the registry.

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use ficha_domain::record::{RecordFilter, RecordSort};

use crate::app::{Given, Replica, parse_id};

/// `ficha record …`
#[derive(Subcommand)]
pub enum RecordCmd {
    /// Every kind with its fields (`--json` for machines).
    Kinds {
        #[arg(long)]
        json: bool,
    },
    /// Creates a record: `ficha record add invoice --client ID number=7 lines="Corte;1;25EUR;21"`;
    /// prints its id. Money is `1234.50EUR`, or minor units with `currency=EUR`.
    Add {
        /// The kind (see `ficha record kinds`).
        kind: String,
        /// The client it belongs to.
        #[arg(long)]
        client: Option<String>,
        /// The company, for kinds that belong to a company rather than a client.
        #[arg(long)]
        company: Option<String>,
        /// FIELD=VALUE pairs.
        values: Vec<String>,
    },
    /// Sets fields: `ficha record set ID status=issued`.
    Set {
        id: String,
        /// FIELD=VALUE pairs.
        values: Vec<String>,
    },
    /// Shows one record.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Lists records of a kind.
    List {
        kind: String,
        /// Only records of this client (or linked to this record).
        #[arg(long)]
        client: Option<String>,
        #[arg(long)]
        company: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        search: Option<String>,
        /// Dated on or after this day (YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// Dated on or before this day (YYYY-MM-DD).
        #[arg(long)]
        until: Option<String>,
        /// A field, `FIELD-desc` for largest first; default: the kind's date.
        #[arg(long)]
        sort: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// FIELD=VALUE: only records whose field has this value.
        #[arg(long = "where")]
        matching: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

/// `ficha employee …`
#[derive(Subcommand)]
pub enum EmployeeCmd {
    /// Adds an employee (the first admin of a company is made this way); prints the id.
    Add {
        #[arg(long)]
        company: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        code: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// admin, staff (default) or viewer.
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        centre: Option<String>,
    },
    /// Lists employees.
    List {
        #[arg(long)]
        company: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Sets an employee's password, read from standard input.
    Passwd {
        /// Id or code.
        employee: String,
    },
}

/// `key=value` arguments as given values.
pub fn given(values: &[String]) -> Result<Vec<(String, Given)>> {
    values
        .iter()
        .map(|a| {
            let (k, v) = a
                .split_once('=')
                .with_context(|| format!("{a:?} is not FIELD=VALUE"))?;
            Ok((k.trim().to_string(), Given::Text(v.to_string())))
        })
        .collect()
}

/// Runs `ficha record …`.
pub fn record(replica: &Replica, cmd: RecordCmd) -> Result<()> {
    match cmd {
        RecordCmd::Kinds { json } => {
            let kinds = crate::app::records::kinds_json();
            if json {
                println!("{}", serde_json::to_string(&kinds)?);
            } else {
                for k in kinds.as_array().into_iter().flatten() {
                    let fields: Vec<&str> = k["fields"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|f| f["name"].as_str())
                        .collect();
                    println!(
                        "{:<20} {:<28} {}",
                        k["kind"].as_str().unwrap_or_default(),
                        k["label"].as_str().unwrap_or_default(),
                        fields.join(", ")
                    );
                }
            }
        }
        RecordCmd::Add {
            kind,
            client,
            company,
            values,
        } => {
            let client = client.as_deref().map(parse_id).transpose()?;
            let id = replica.add_record(&kind, client, company.as_deref(), &given(&values)?)?;
            println!("{id}");
        }
        RecordCmd::Set { id, values } => {
            replica.set_record(parse_id(&id)?, &given(&values)?)?;
        }
        RecordCmd::Show { id, json } => {
            crate::cli::print_json(&replica.show_record(parse_id(&id)?)?, json)?;
        }
        RecordCmd::List {
            kind,
            client,
            company,
            status,
            search,
            since,
            until,
            sort,
            limit,
            offset,
            matching,
            json,
        } => {
            if let Some(c) = &client {
                parse_id(c)?;
            }
            let mut fields = Vec::new();
            for m in &matching {
                let (k, v) = m
                    .split_once('=')
                    .with_context(|| format!("--where {m:?} is not FIELD=VALUE"))?;
                fields.push((k.to_string(), v.to_string()));
            }
            let filter = RecordFilter {
                kind: Some(kind),
                linked: client,
                company,
                status,
                search,
                since,
                until,
                fields,
            };
            let sort: RecordSort = sort.as_deref().unwrap_or("").parse().unwrap_or_default();
            let rows = replica.list_records(&filter, &sort, offset, limit)?;
            if json {
                println!("{}", serde_json::to_string(&rows)?);
            } else {
                for r in rows {
                    println!(
                        "{}  {:<12} {:<24} {:<10} {}",
                        r.id,
                        r.date.as_deref().unwrap_or("-"),
                        r.title,
                        r.status.as_deref().unwrap_or(""),
                        r.total.map(|t| t.display()).unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(())
}

/// Runs `ficha employee …`.
pub fn employee(replica: &Replica, cmd: EmployeeCmd) -> Result<()> {
    match cmd {
        EmployeeCmd::Add {
            company,
            name,
            code,
            email,
            role,
            centre,
        } => {
            let id = replica.add_employee(
                &company,
                &name,
                code.as_deref(),
                email.as_deref(),
                role.as_deref(),
                centre.as_deref(),
            )?;
            println!("{id}");
        }
        EmployeeCmd::List { company, json } => {
            let list = replica.employees(company.as_deref())?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for e in list {
                    println!(
                        "{}  {:<8} {:<24} {:<6} {}",
                        e.id,
                        e.code.as_deref().unwrap_or("-"),
                        e.name,
                        e.role,
                        if e.active { "" } else { "(inactive)" }
                    );
                }
            }
        }
        EmployeeCmd::Passwd { employee } => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            let password = line.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                bail!(
                    "no password on standard input: echo 'the password' | ficha employee passwd {employee}"
                );
            }
            replica.set_password(&employee, password)?;
            eprintln!("password set");
        }
    }
    Ok(())
}

/// A client's statement as CSV: one row per pending document, then one total row per
/// currency. Cells that a spreadsheet would run as formulas are escaped.
pub fn statement_csv(statement: &serde_json::Value, out: impl std::io::Write) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "kind", "id", "title", "date", "due_date", "total", "paid", "pending", "currency",
    ])?;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let amount = |v: &serde_json::Value| v["text"].as_str().unwrap_or_default().to_string();
    for p in statement["pending"].as_array().into_iter().flatten() {
        let cells = [
            text(&p["kind"]),
            text(&p["id"]),
            text(&p["title"]),
            text(&p["date"]),
            text(&p["due_date"]),
            amount(&p["total"]),
            amount(&p["paid"]),
            amount(&p["pending"]),
            text(&p["pending"]["currency"]),
        ];
        w.write_record(cells.iter().map(|c| crate::import::escape(c).into_owned()))?;
    }
    for (label, key) in [
        ("sales_total", "sales_total"),
        ("pending_total", "pending_total"),
    ] {
        for (currency, minor) in statement[key].as_object().into_iter().flatten() {
            let m = ficha_domain::record::Money {
                amount: minor.as_i64().unwrap_or_default(),
                currency: currency.clone(),
            };
            w.write_record([label, "", "", "", "", "", "", &m.display(), currency])?;
        }
    }
    w.flush()?;
    Ok(())
}

/// `ficha wallet …`
#[derive(Subcommand)]
pub enum WalletCmd {
    /// Balance, total spent, rewards, overdraft and every movement.
    Show {
        client: String,
        #[arg(long)]
        json: bool,
    },
    /// Adds funds: `ficha wallet add CLIENT --amount 50EUR`.
    Add(Move),
    /// Deducts (may overdraw; the client then shows an overdraft alert).
    Deduct(Move),
    /// Assigns a reward.
    Reward(Move),
    /// Redeems a reward.
    Redeem(Move),
    /// Reverses one movement (once).
    Reverse {
        client: String,
        movement: String,
        #[arg(long)]
        note: Option<String>,
    },
}

/// A movement's arguments.
#[derive(clap::Args)]
pub struct Move {
    /// The client.
    pub client: String,
    /// The amount, e.g. 50EUR or 12.50EUR.
    #[arg(long)]
    pub amount: String,
    /// Why.
    #[arg(long)]
    pub note: Option<String>,
}

/// Runs `ficha wallet …`.
pub fn wallet(replica: &Replica, cmd: WalletCmd) -> Result<()> {
    let moved = |kind: &str, m: Move| -> Result<()> {
        let id = replica.wallet_move(parse_id(&m.client)?, kind, &m.amount, m.note.as_deref())?;
        println!("{id}");
        Ok(())
    };
    match cmd {
        WalletCmd::Show { client, json } => {
            crate::cli::print_json(&replica.wallet(&parse_id(&client)?)?, json)?
        }
        WalletCmd::Add(m) => moved("add_funds", m)?,
        WalletCmd::Deduct(m) => moved("deduct", m)?,
        WalletCmd::Reward(m) => moved("reward", m)?,
        WalletCmd::Redeem(m) => moved("redeem", m)?,
        WalletCmd::Reverse {
            client,
            movement,
            note,
        } => {
            let id = replica.wallet_reverse(parse_id(&client)?, &movement, note.as_deref())?;
            println!("{id}");
        }
    }
    Ok(())
}

/// `ficha relation …`
#[derive(Subcommand)]
pub enum RelationCmd {
    /// Relates two clients: PARENT above CHILD (or partners, or another relation).
    Add {
        parent: String,
        child: String,
        /// parent, partner or other.
        #[arg(long = "type", default_value = "parent")]
        kind: String,
    },
    /// A client's relations and place in the account tree.
    List {
        client: String,
        #[arg(long)]
        json: bool,
    },
}

/// Runs `ficha relation …`.
pub fn relation(replica: &Replica, cmd: RelationCmd) -> Result<()> {
    match cmd {
        RelationCmd::Add {
            parent,
            child,
            kind,
        } => println!(
            "{}",
            replica.relate(parse_id(&parent)?, parse_id(&child)?, &kind)?
        ),
        RelationCmd::List { client, json } => {
            crate::cli::print_json(&replica.relations_of(&parse_id(&client)?)?, json)?
        }
    }
    Ok(())
}
