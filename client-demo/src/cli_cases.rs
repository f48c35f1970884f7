//! `ficha case …`, `ficha notifications …` and `ficha time …`: support cases with their SLA,
//! what an employee is notified of, and quick time entry.

use anyhow::{Result, bail};
use clap::Subcommand;

use crate::app::cases::{CaseFilter, case_json};
use crate::app::{Given, Replica, now_ms, parse_id};

/// `ficha case …`
#[derive(Subcommand)]
pub enum CaseCmd {
    /// Opens a case ("Add case"); prints {"id","number"}.
    Add(CaseForm),
    /// Lists cases with their number and SLA (state, first_response_due, resolution_due).
    List {
        /// Assigned to this employee (id or code).
        #[arg(long)]
        assignee: Option<String>,
        /// Past a target.
        #[arg(long)]
        breached: bool,
        /// Less than a fifth of the time left.
        #[arg(long)]
        at_risk: bool,
        /// In this status.
        #[arg(long)]
        status: Option<String>,
        /// Of this client.
        #[arg(long)]
        client: Option<String>,
        /// As things will stand at this moment (ISO 8601, e.g. 2026-12-05T17:00:00+01:00)
        /// rather than now: what will be breached by Friday evening.
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Sets fields: `ficha case set ID status=in_progress assignee=E2` (status changes are
    /// SLA events).
    Set {
        id: String,
        /// FIELD=VALUE pairs.
        values: Vec<String>,
    },
    /// The categories a company's cases may have.
    Categories {
        #[arg(long)]
        company: String,
    },
}

/// The "Add case" form.
#[derive(clap::Args)]
pub struct CaseForm {
    /// The client (prefilled from the client's page).
    #[arg(long)]
    client: String,
    #[arg(long)]
    title: Option<String>,
    /// One of the company's categories (`ficha case categories`).
    #[arg(long)]
    category: Option<String>,
    /// new, in_progress, pending, resolved or closed.
    #[arg(long)]
    status: Option<String>,
    /// low, medium, high or critical.
    #[arg(long)]
    priority: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// The employee it is assigned to (id or code).
    #[arg(long)]
    assignee: Option<String>,
    /// One of the client's contacts (its item id).
    #[arg(long)]
    contact: Option<String>,
    #[arg(long)]
    department: Option<String>,
    /// One of the client's `policy` records.
    #[arg(long)]
    policy: Option<String>,
    #[arg(long)]
    solution: Option<String>,
    /// Attachments (file hashes or names), comma-separated.
    #[arg(long)]
    attachments: Option<String>,
}

impl CaseForm {
    fn given(self) -> Vec<(String, Given)> {
        [
            ("title", self.title),
            ("category", self.category),
            ("status", self.status),
            ("priority", self.priority),
            ("description", self.description),
            ("assignee", self.assignee),
            ("contact", self.contact),
            ("department", self.department),
            ("policy", self.policy),
            ("solution", self.solution),
            ("attachments", self.attachments),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), Given::Text(v))))
        .collect()
    }
}

/// The moment `--at` names, or now.
fn moment(at: Option<&str>) -> Result<i64> {
    Ok(at
        .map(crate::app::moment_ms)
        .transpose()?
        .unwrap_or_else(now_ms))
}

/// Runs `ficha case …`.
pub fn case(replica: &Replica, cmd: CaseCmd) -> Result<()> {
    match cmd {
        CaseCmd::Add(form) => {
            let client = parse_id(&form.client)?;
            let (id, number) = replica.add_case(client, &form.given())?;
            println!(
                "{}",
                serde_json::json!({"id": id.to_string(), "number": number})
            );
        }
        CaseCmd::List {
            assignee,
            breached,
            at_risk,
            status,
            client,
            at,
            json,
        } => {
            let filter = CaseFilter {
                assignee,
                status,
                breached,
                at_risk,
                client: client.as_deref().map(parse_id).transpose()?,
            };
            let cases = replica.cases(&filter, moment(at.as_deref())?)?;
            if json {
                let rows: Vec<serde_json::Value> =
                    cases.iter().map(|(c, s)| case_json(c, s)).collect();
                println!("{}", serde_json::to_string(&rows)?);
            } else {
                for (c, s) in &cases {
                    let row = case_json(c, s);
                    println!(
                        "{:<10} {:<12} {:<9} {:<10} {}",
                        row["number"].as_str().unwrap_or_default(),
                        row["status"].as_str().unwrap_or_default(),
                        row["priority"].as_str().unwrap_or_default(),
                        row["sla"]["state"].as_str().unwrap_or_default(),
                        row["title"].as_str().unwrap_or_default()
                    );
                }
            }
        }
        CaseCmd::Set { id, values } => {
            replica.set_case(parse_id(&id)?, &crate::cli_records::given(&values)?)?;
        }
        CaseCmd::Categories { company } => {
            for c in replica.case_categories(&company)? {
                println!("{c}");
            }
        }
    }
    Ok(())
}

/// `ficha notifications …`
#[derive(clap::Args)]
pub struct NotificationsCmd {
    #[command(subcommand)]
    action: Option<NotificationAction>,
    /// Read ones too.
    #[arg(long)]
    all: bool,
    /// As things will stand at this moment (ISO 8601) rather than now.
    #[arg(long)]
    at: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum NotificationAction {
    /// Marks one read, on every replica of the employee once synced.
    Read { id: String },
}

/// Runs `ficha notifications …` for the employee given with `--as`.
pub fn notifications(replica: &Replica, cmd: NotificationsCmd) -> Result<()> {
    let Some(me) = replica.acting_employee() else {
        bail!("whose notifications? give --as EMPLOYEE (id or code)");
    };
    match cmd.action {
        Some(NotificationAction::Read { id }) => replica.mark_read(&me, &id)?,
        None => {
            let list = replica.notifications(&me, cmd.all, moment(cmd.at.as_deref())?)?;
            if cmd.json {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for n in &list {
                    println!("{} {:<13} {} {}", n.id, n.kind, n.number, n.title);
                }
            }
        }
    }
    Ok(())
}

/// `ficha time …`
#[derive(Subcommand)]
pub enum TimeCmd {
    /// Quick time entry on a client: finds or creates its project and task, records the time;
    /// prints {"entry","project","task"}.
    Add {
        #[arg(long)]
        client: String,
        /// What was done.
        #[arg(long)]
        text: String,
        /// Who did it (id or code).
        #[arg(long)]
        employee: String,
        /// The day (YYYY-MM-DD).
        #[arg(long)]
        date: String,
        #[arg(long)]
        minutes: Option<i64>,
        /// When to act next (YYYY-MM-DD); becomes the task's next action.
        #[arg(long)]
        next_action: Option<String>,
        /// The project, when the client has several active ones none coded as the client.
        #[arg(long)]
        project: Option<String>,
    },
    /// Minutes recorded, in total and per client, employee and project.
    Report {
        /// Only this client's, project's or employee's entries.
        #[arg(long)]
        of: Option<String>,
        /// From this day (YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// Until this day.
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// Runs `ficha time …`.
pub fn time(replica: &Replica, cmd: TimeCmd) -> Result<()> {
    match cmd {
        TimeCmd::Add {
            client,
            text,
            employee,
            date,
            minutes,
            next_action,
            project,
        } => {
            let form = crate::app::time::TimeForm {
                text,
                employee,
                date,
                minutes,
                next_action,
                project,
            };
            let done = replica.add_time(parse_id(&client)?, &form)?;
            println!("{}", serde_json::to_string(&done)?);
        }
        TimeCmd::Report {
            of,
            since,
            until,
            json,
        } => {
            let employee = match &of {
                Some(o) if parse_id(o).is_err() => Some(replica.employee(o)?.id),
                _ => None,
            };
            let filter = ficha_domain::record::RecordFilter {
                linked: employee.or(of),
                since,
                until,
                ..Default::default()
            };
            crate::cli::print_json(&replica.time_report(&filter)?, json)?;
        }
    }
    Ok(())
}

/// `ficha message …`
#[derive(Subcommand)]
pub enum MessageCmd {
    /// Queues an email to a client's address; the company's sender sends it once. Prints
    /// the message id.
    Send {
        client: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        subject: String,
        #[arg(long)]
        body: String,
    },
    /// Every message of a client with its status (queued, sending, sent, failed).
    List {
        client: String,
        #[arg(long)]
        json: bool,
    },
    /// Queues a failed message again (after checking it did not arrive).
    Retry { id: String },
}

/// Runs `ficha message …`.
pub fn message(replica: &Replica, cmd: MessageCmd) -> Result<()> {
    match cmd {
        MessageCmd::Send {
            client,
            to,
            subject,
            body,
        } => println!(
            "{}",
            replica.send_message(parse_id(&client)?, &to, &subject, &body)?
        ),
        MessageCmd::List { client, json } => {
            let list = replica.messages(&parse_id(&client)?)?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for m in &list {
                    println!(
                        "{} {:<8} {} {}",
                        m["id"].as_str().unwrap_or_default(),
                        m["status"].as_str().unwrap_or_default(),
                        m["to"].as_str().unwrap_or_default(),
                        m["subject"].as_str().unwrap_or_default()
                    );
                }
            }
        }
        MessageCmd::Retry { id } => replica.retry_message(parse_id(&id)?)?,
    }
    Ok(())
}
