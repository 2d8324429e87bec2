//! Who a caller is: a principal with a role and the scope the role is limited to
//! (a worker's `worker_id`, a manager's or commissioner's `prisons`, a partner's `sources`
//! and `types`). Built from a `[[principal]]` block of the auth file or from a JWT's
//! claims; the rules that use it live in `crate::access`.

use serde::{Deserialize, Serialize};

/// The five roles of DESIGN.md "Access".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    Partner,
    Worker,
    Manager,
    Commissioner,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Partner,
        Role::Worker,
        Role::Manager,
        Role::Commissioner,
        Role::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Partner => "PARTNER",
            Role::Worker => "WORKER",
            Role::Manager => "MANAGER",
            Role::Commissioner => "COMMISSIONER",
            Role::Auditor => "AUDITOR",
        }
    }

    /// Parses one of the five role names (exact, upper case).
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who, as the access log names it (`name` in the file, `sub` in a JWT).
    pub name: String,
    pub role: Role,
    /// WORKER: the worker id its caseload and allocations use.
    pub worker_id: Option<String>,
    /// MANAGER / COMMISSIONER: prison codes (upper case). Empty for a COMMISSIONER = all.
    pub prisons: Vec<String>,
    /// PARTNER: CloudEvents sources it may submit with.
    pub sources: Vec<String>,
    /// PARTNER: event types it may submit (`throughcare.referral.*` patterns: a trailing
    /// `*` matches any suffix). Required for a PARTNER, and empty admits nothing: a
    /// partner that could submit every type could also submit the events that grant
    /// staff their scope (`case.allocated`), so "all" must be written out, never implied.
    pub types: Vec<String>,
    /// True only for the open development mode's stand-in (no `--auth`).
    pub open_mode: bool,
}

impl Principal {
    /// The stand-in caller of open development mode: may do everything.
    pub fn open_mode() -> Principal {
        Principal {
            name: "open-development-mode".into(),
            role: Role::Auditor,
            worker_id: None,
            prisons: Vec::new(),
            sources: Vec::new(),
            types: Vec::new(),
            open_mode: true,
        }
    }

    /// The caller of an open route (health, schema, sign-in): nobody, with no rights, so
    /// that an open handler can never pass a policy check by accident (a PARTNER with no
    /// sources and no types may submit nothing).
    pub fn anonymous() -> Principal {
        Principal {
            name: "anonymous".into(),
            role: Role::Partner,
            worker_id: None,
            prisons: Vec::new(),
            sources: Vec::new(),
            types: Vec::new(),
            open_mode: false,
        }
    }

    /// The source the server fills in for staff (WORKER, MANAGER) submissions.
    pub fn staff_source(&self) -> String {
        format!("urn:throughcare:staff:{}", self.name)
    }

    /// Whether a PARTNER may submit with this CloudEvents source.
    pub fn may_use_source(&self, source: &str) -> bool {
        self.sources.iter().any(|s| s == source)
    }

    /// Whether this principal's `types` admit the event type. Only a PARTNER is limited
    /// by `types` (the file and JWTs give no other role any; staff are held to service
    /// events by the submission policy), and for a PARTNER an empty list admits nothing.
    pub fn may_submit_type(&self, event_type: &str) -> bool {
        if self.role != Role::Partner {
            return true;
        }
        self.types.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => event_type.starts_with(prefix),
            None => p == event_type,
        })
    }

    /// Whether a MANAGER's or COMMISSIONER's prisons include `prison` (a COMMISSIONER with
    /// no prisons listed sees all).
    pub fn covers_prison(&self, prison: &str) -> bool {
        (self.role == Role::Commissioner && self.prisons.is_empty())
            || self.prisons.iter().any(|p| p.eq_ignore_ascii_case(prison))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partner(types: &[&str]) -> Principal {
        Principal {
            name: "p".into(),
            role: Role::Partner,
            worker_id: None,
            prisons: vec![],
            sources: vec!["urn:a".into()],
            types: types.iter().map(|s| s.to_string()).collect(),
            open_mode: false,
        }
    }

    #[test]
    fn type_patterns() {
        let p = partner(&["throughcare.referral.*", "throughcare.case.closed.v1"]);
        assert!(p.may_submit_type("throughcare.referral.received.v1"));
        assert!(p.may_submit_type("throughcare.case.closed.v1"));
        assert!(!p.may_submit_type("throughcare.case.allocated.v1"));
        assert!(p.may_use_source("urn:a") && !p.may_use_source("urn:b"));
    }

    #[test]
    fn a_partner_without_types_may_submit_nothing() {
        // Empty once meant "all types", which let such a partner allocate cases.
        let none = partner(&[]);
        assert!(!none.may_submit_type("throughcare.case.allocated.v1"));
        assert!(!none.may_submit_type("throughcare.referral.received.v1"));
        assert!(!Principal::anonymous().may_submit_type("throughcare.referral.received.v1"));
        // "All" is written out.
        assert!(partner(&["throughcare.*"]).may_submit_type("throughcare.case.allocated.v1"));
        // Staff hold no types; what they may submit is the policy's business.
        let staff = Principal {
            role: Role::Worker,
            worker_id: Some("W-1".into()),
            sources: vec![],
            ..partner(&[])
        };
        assert!(staff.may_submit_type("throughcare.appointment.booked.v1"));
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("admin"), None);
    }
}
