//! Who did something: always the replica it was done on, and the employee when one is known.

use serde::{Deserialize, Serialize};

/// An employee as the audit trail records them: id and name at the time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmployeeRef {
    /// The employee record's id.
    pub id: String,
    /// Their name when they acted.
    pub name: String,
}

/// The author of an edit, given to every edit function by the driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The replica (branch or laptop) the edit was made on.
    pub replica: String,
    /// The employee who made it; None when the replica acted (scripts, sync, imports).
    pub employee: Option<EmployeeRef>,
}

impl Actor {
    /// The replica itself.
    pub fn replica(name: &str) -> Self {
        Actor {
            replica: name.to_string(),
            employee: None,
        }
    }

    /// An employee working on `replica`.
    pub fn employee(replica: &str, id: &str, name: &str) -> Self {
        Actor {
            replica: replica.to_string(),
            employee: Some(EmployeeRef {
                id: id.to_string(),
                name: name.to_string(),
            }),
        }
    }

    /// How a person reads who it was: the employee's name, else the replica.
    pub fn display(&self) -> &str {
        self.employee.as_ref().map_or(&self.replica, |e| &e.name)
    }
}
