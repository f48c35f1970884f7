//! Employees, who acts, and what each role may do.
//!
//! An employee is a record of kind `employee` in its company, synced like any other, so every
//! replica of the company can check a password offline (an Argon2id hash in the record). A
//! replica acts as itself (the CLI without `--as`, the API with its key) or as an employee
//! (`--as`, a signed-in session); edits made as an employee name them in the audit log.

use std::str::FromStr;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::Serialize;

use ficha_core::{Company, DocId};
use ficha_domain::record::{RecordFilter, RecordSort, RecordSummary};
use ficha_domain::{Actor, EmployeeRef};

use super::records::Given;
use super::{AppError, Replica, now_ms};

/// What an employee may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads.
    Viewer,
    /// Reads and edits.
    Staff,
    /// Also manages employees, merges, purges and bulk actions.
    Admin,
}

impl FromStr for Role {
    type Err = AppError;

    fn from_str(s: &str) -> Result<Self, AppError> {
        match s.trim() {
            "viewer" => Ok(Role::Viewer),
            "staff" => Ok(Role::Staff),
            "admin" => Ok(Role::Admin),
            other => Err(AppError::BadInput(format!(
                "{other:?} is not a role; roles: admin, staff, viewer"
            ))),
        }
    }
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Staff => "staff",
            Role::Admin => "admin",
        }
    }
}

/// An employee as `employee list --json` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct Employee {
    /// The record's id.
    pub id: String,
    /// Their company.
    pub company: String,
    /// Their name.
    pub name: String,
    /// Their code (unique in the company by convention).
    pub code: Option<String>,
    /// Their email.
    pub email: Option<String>,
    /// admin, staff or viewer.
    pub role: String,
    /// Their centre.
    pub centre: Option<String>,
    /// Whether they may sign in and act.
    pub active: bool,
    /// The language of their web app: es or en.
    pub language: String,
}

impl Employee {
    fn from_summary(r: &RecordSummary) -> Self {
        let s = |k: &str| r.fields.get(k).and_then(|v| v.as_str()).map(str::to_string);
        Employee {
            id: r.id.clone(),
            company: r.company.clone(),
            name: s("name").unwrap_or_default(),
            code: s("code"),
            email: s("email"),
            role: r.status.clone().unwrap_or_else(|| "staff".into()),
            centre: s("centre"),
            active: r
                .fields
                .get("active")
                .and_then(|v| v.as_bool())
                .unwrap_or(true),
            language: s("language").unwrap_or_else(|| "es".into()),
        }
    }

    /// Their role.
    pub fn role(&self) -> Role {
        Role::from_str(&self.role).unwrap_or(Role::Viewer)
    }
}

/// Who a replica acts as: itself (every right), or an employee with a role.
#[derive(Debug, Clone)]
pub struct Acting {
    /// For the audit log.
    pub actor: Actor,
    /// The employee's role and company; None when the replica acts.
    pub employee: Option<(Role, Company)>,
    /// The employee's web app language, read with the rest of their record.
    pub language: Option<String>,
}

impl Replica {
    /// This replica acting as `employee` (already checked to be active) instead of itself.
    pub fn acting_as(&self, employee: &Employee) -> Result<Replica, AppError> {
        let company = Company::new(&employee.company)?;
        Ok(Replica {
            store: self.store.clone(),
            changed: self.changed.clone(),
            revision: self.revision.clone(),
            acting: Acting {
                actor: Actor::employee(&self.store.identity().name, &employee.id, &employee.name),
                employee: Some((employee.role(), company)),
                language: Some(employee.language.clone()),
            },
        })
    }

    /// The id of the employee acting, if one is.
    pub fn acting_employee(&self) -> Option<String> {
        self.acting.actor.employee.as_ref().map(|e| e.id.clone())
    }

    /// Who acts, as `GET /api/session` shows it, with the employee's language.
    pub fn acting_json(&self) -> serde_json::Value {
        serde_json::json!({
            "replica": self.acting.actor.replica,
            "employee": self.acting.actor.employee,
            "role": self.acting.employee.as_ref().map(|(r, _)| *r),
            "company": self.actor_company(),
            "language": self.acting.language,
        })
    }

    /// Refuses unless whoever acts has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), AppError> {
        match &self.acting.employee {
            Some((have, _)) if *have < role => Err(AppError::Denied(format!(
                "{} is {} and this needs {}: ask an admin of the company",
                self.acting.actor.display(),
                have.as_str(),
                role.as_str()
            ))),
            _ => Ok(()),
        }
    }

    /// The company of the employee acting, if one is.
    pub fn actor_company(&self) -> Option<String> {
        self.acting.employee.as_ref().map(|(_, c)| c.to_string())
    }

    /// An employee acts in their own company only.
    pub(crate) fn check_actor_company(&self, company: &Company) -> Result<(), AppError> {
        match &self.acting.employee {
            Some((_, own)) if own != company => Err(AppError::Denied(format!(
                "{} works for {own}, not for {company}",
                self.acting.actor.display()
            ))),
            _ => Ok(()),
        }
    }

    /// An employee reads their own company only.
    pub(crate) fn check_readable(&self, company: &str) -> Result<(), AppError> {
        match &self.acting.employee {
            Some((_, own)) if own.as_str() != company => Err(AppError::NotFound(
                "there is no such record in your company".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Creates an employee (admins only, or the replica itself: the first admin of a company
    /// is made from the CLI); returns its id.
    pub fn add_employee(
        &self,
        company: &str,
        name: &str,
        code: Option<&str>,
        email: Option<&str>,
        role: Option<&str>,
        centre: Option<&str>,
    ) -> Result<DocId, AppError> {
        self.require(Role::Admin)?;
        if let Some(code) = code
            && self.employee_by_code(company, code)?.is_some()
        {
            return Err(AppError::Conflict(format!(
                "{company} already has an employee with code {code:?}"
            )));
        }
        let mut given = vec![("name".to_string(), Given::Text(name.to_string()))];
        for (k, v) in [
            ("code", code),
            ("email", email),
            ("role", role),
            ("centre", centre),
        ] {
            if let Some(v) = v {
                given.push((k.to_string(), Given::Text(v.to_string())));
            }
        }
        self.add_record("employee", None, Some(company), &given)
    }

    /// Employees, of one company or of every company this replica sees.
    pub fn employees(&self, company: Option<&str>) -> Result<Vec<Employee>, AppError> {
        let records = self.list_records(
            &RecordFilter {
                kind: Some("employee".into()),
                company: company.map(str::to_string),
                ..RecordFilter::default()
            },
            &RecordSort {
                field: Some("name".into()),
                desc: false,
            },
            0,
            None,
        )?;
        Ok(records.iter().map(Employee::from_summary).collect())
    }

    fn employee_by_code(&self, company: &str, code: &str) -> Result<Option<Employee>, AppError> {
        Ok(self
            .employees(Some(company))?
            .into_iter()
            .find(|e| e.code.as_deref() == Some(code)))
    }

    /// The employee an id or a code names (a code must name one employee among the companies
    /// this replica sees).
    pub fn employee(&self, id_or_code: &str) -> Result<Employee, AppError> {
        let key = id_or_code.trim();
        // Looked up through the index (every signed-in request resolves its employee): by id,
        // or by the code rows the index keeps; exact equality is checked on what it finds.
        let candidates: Vec<Employee> = if uuid::Uuid::parse_str(key).is_ok() {
            let own = |e: &Employee| self.actor_company().is_none_or(|c| c == e.company);
            match self.record_summary(&super::parse_id(key)?) {
                Ok(r) if r.kind == "employee" => Some(Employee::from_summary(&r))
                    .into_iter()
                    .filter(own)
                    .collect(),
                Ok(_) | Err(AppError::NotFound(_)) => Vec::new(),
                Err(e) => return Err(e),
            }
        } else {
            let by_code = RecordFilter {
                kind: Some("employee".into()),
                fields: vec![("code".into(), key.into())],
                ..RecordFilter::default()
            };
            self.list_records(&by_code, &RecordSort::default(), 0, None)?
                .iter()
                .map(Employee::from_summary)
                .collect()
        };
        let found: Vec<&Employee> = candidates
            .iter()
            .filter(|e| e.id == key || e.code.as_deref() == Some(key))
            .collect();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(AppError::NotFound(format!(
                "there is no employee {id_or_code:?} on this replica; `ficha employee list` shows them"
            ))),
            _ => Err(AppError::BadInput(format!(
                "code {id_or_code:?} names employees of several companies: give the employee's id"
            ))),
        }
    }

    /// The employee to act as, refused if inactive.
    pub fn active_employee(&self, id_or_code: &str) -> Result<Employee, AppError> {
        let e = self.employee(id_or_code)?;
        if !e.active {
            return Err(AppError::Denied(format!(
                "employee {} is not active: an admin can reactivate them",
                e.name
            )));
        }
        Ok(e)
    }

    /// Sets an employee's password (themselves, an admin of their company, or the replica).
    pub fn set_password(&self, id_or_code: &str, password: &str) -> Result<(), AppError> {
        let e = self.own_or_admin(id_or_code)?;
        if password.chars().count() < 8 {
            return Err(AppError::BadInput(
                "a password needs at least 8 characters".into(),
            ));
        }
        let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes())
            .map_err(|e| AppError::BadInput(format!("salt: {e}")))?;
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| AppError::BadInput(format!("password: {e}")))?
            .to_string();
        self.set_employee_field(&e, "password_hash", hash)
    }

    /// Sets the language of an employee's web app (es or en): the employee or an admin.
    pub fn set_language(&self, id_or_code: &str, language: &str) -> Result<(), AppError> {
        let e = self.own_or_admin(id_or_code)?;
        let known = matches!(employee_field("language")?.ty,
            ficha_domain::record::FieldType::Enum(values) if values.contains(&language));
        if !known {
            return Err(AppError::BadInput(format!(
                "unknown language {language:?}: use es (español) or en (English)"
            )));
        }
        self.set_employee_field(&e, "language", language.to_string())
    }

    /// The employee, if whoever acts is that employee or an admin.
    fn own_or_admin(&self, id_or_code: &str) -> Result<Employee, AppError> {
        let e = self.employee(id_or_code)?;
        let own =
            matches!(&self.acting.actor.employee, Some(EmployeeRef { id, .. }) if *id == e.id);
        if !own {
            self.require(Role::Admin)?;
        }
        Ok(e)
    }

    /// Writes one field of an employee's record, whatever the role's rights on records: the
    /// callers above decide who may.
    fn set_employee_field(&self, e: &Employee, name: &str, value: String) -> Result<(), AppError> {
        let id = super::parse_id(&e.id)?;
        let field = employee_field(name)?;
        // Not `writer()`: a viewer keeps their own password and language too.
        if !self.may_write() {
            return Err(AppError::ReadOnly);
        }
        let who = self.who();
        self.store.edit_doc(id, |d| {
            ficha_domain::record::set(
                d,
                &[(field, ficha_domain::record::Stored::Str(value.clone()))],
                &who,
                &mut std::iter::repeat_with(uuid::Uuid::new_v4),
                now_ms(),
            )?;
            Ok::<(), AppError>(())
        })?;
        self.edited();
        Ok(())
    }

    /// The employee whose password this is, or a refusal that does not say which part was
    /// wrong.
    pub fn sign_in(&self, id_or_code: &str, password: &str) -> Result<Employee, AppError> {
        let wrong = || AppError::Unauthenticated("wrong employee or password".into());
        let e = self.employee(id_or_code).map_err(|_| wrong())?;
        let doc = self
            .store
            .read_doc(&super::parse_id(&e.id)?)?
            .ok_or_else(wrong)?;
        let fields = ficha_domain::record::FIELDS;
        let hash = {
            use automerge::ReadDoc;
            let f = match doc.get(automerge::ROOT, fields).ok().flatten() {
                Some((automerge::Value::Object(_), id)) => id,
                _ => return Err(wrong()),
            };
            match doc.get(&f, "password_hash").ok().flatten() {
                Some((automerge::Value::Scalar(s), _)) => s.as_str().map(str::to_string),
                _ => None,
            }
        }
        .ok_or_else(|| {
            AppError::Unauthenticated(format!(
                "{} has no password yet: an admin sets one with `ficha employee passwd`",
                e.name
            ))
        })?;
        let parsed = PasswordHash::new(&hash).map_err(|_| wrong())?;
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .map_err(|_| wrong())?;
        if !e.active {
            return Err(wrong());
        }
        Ok(e)
    }
}

/// A field of the employee kind, from the registry.
fn employee_field(name: &str) -> Result<&'static ficha_domain::record::FieldSpec, AppError> {
    ficha_domain::record::kind("employee")
        .and_then(|k| k.field(name))
        .ok_or_else(|| AppError::BadInput(format!("employees have no {name} field")))
}
