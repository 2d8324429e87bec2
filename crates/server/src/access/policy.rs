//! The rules of DESIGN.md "Access" that need data: which people a caller may read, which
//! events it may submit, which purpose a read is for. Pure functions over a principal and a
//! journey; the guard (`guard.rs`) and the submit path call them, nothing else decides.

use axum::http::StatusCode;
use throughcare_events::{EventType, Origin};
use throughcare_ledger::Purpose;
use throughcare_projections::Journey;

use crate::auth::{Principal, Role};
use crate::problem::ApiError;

/// Whether `p` may read this person without breaking glass: a WORKER the people whose
/// case is allocated to it now, a MANAGER the people held at or referred to its prisons,
/// an AUDITOR everyone.
pub fn can_read(p: &Principal, j: &Journey) -> bool {
    if p.open_mode {
        return true;
    }
    match p.role {
        Role::Auditor => true,
        Role::Worker => match (&p.worker_id, &j.worker) {
            (Some(mine), Some(w)) => *mine == w.worker_id,
            _ => false,
        },
        Role::Manager => {
            j.prison.as_deref().is_some_and(|x| p.covers_prison(x))
                || j.episodes
                    .iter()
                    .flat_map(|e| &e.referrals)
                    .any(|r| p.covers_prison(&r.prison))
        }
        Role::Partner | Role::Commissioner => false,
    }
}

/// Whether the caller may read every person (and so may be told that one is unknown).
pub fn sees_everyone(p: &Principal) -> bool {
    p.open_mode || p.role == Role::Auditor
}

/// Whether the role may break glass (read outside its scope for an emergency).
pub fn may_break_glass(p: &Principal) -> bool {
    matches!(p.role, Role::Worker | Role::Manager)
}

/// The purpose of a read when the caller gives none.
pub fn default_purpose(p: &Principal) -> Purpose {
    match p.role {
        Role::Auditor => Purpose::Audit,
        Role::Commissioner => Purpose::ServiceManagement,
        Role::Worker | Role::Manager | Role::Partner => Purpose::DirectCare,
    }
}

/// Whether the role writes as staff (the server fills in the source).
pub fn is_staff(p: &Principal) -> bool {
    !p.open_mode && matches!(p.role, Role::Worker | Role::Manager)
}

/// Checks one event's source and type against what the caller may submit. The answer
/// never depends on the person the event is about.
pub fn check_submission(p: &Principal, source: &str, kind: EventType) -> Result<(), ApiError> {
    if p.open_mode {
        return Ok(());
    }
    let source_ok = match p.role {
        Role::Partner => p.may_use_source(source),
        Role::Worker | Role::Manager => source == p.staff_source(),
        Role::Commissioner | Role::Auditor => {
            return Err(forbidden(format!(
                "the {} role may not submit events",
                p.role
            )))
        }
    };
    if !source_ok {
        let allowed = if p.role == Role::Partner {
            p.sources.join(", ")
        } else {
            p.staff_source()
        };
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "source-not-allowed",
            "Source not allowed",
            format!(
                "{} may not submit with source {source:?}; its sources: {allowed}",
                p.name
            ),
        ));
    }
    let service_only = is_staff(p) && kind.origin() != Origin::Service;
    if service_only || !p.may_submit_type(kind.as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "type-not-allowed",
            "Event type not allowed",
            if service_only {
                format!(
                    "staff record the service's own events; {} is a fact from prison systems",
                    kind.as_str()
                )
            } else {
                format!("{} may not submit {} events", p.name, kind.as_str())
            },
        ));
    }
    Ok(())
}

/// A role without the right to a route.
pub fn forbidden(detail: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use throughcare_events::PersonId;

    fn principal(role: Role) -> Principal {
        Principal {
            name: "x".into(),
            role,
            worker_id: Some("W-1".into()),
            prisons: vec!["WCI".into()],
            sources: vec!["urn:p".into()],
            types: vec!["throughcare.referral.*".into()],
            open_mode: false,
        }
    }

    #[test]
    fn partner_sources_and_staff_source() {
        let referral = EventType::ReferralReceived;
        let p = principal(Role::Partner);
        assert!(check_submission(&p, "urn:p", referral).is_ok());
        let e = check_submission(&p, "urn:other", referral).unwrap_err();
        assert_eq!(e.kind, "source-not-allowed");
        let w = principal(Role::Worker);
        assert!(check_submission(&w, "urn:throughcare:staff:x", EventType::ContactMade).is_ok());
        assert_eq!(
            check_submission(&w, "urn:p", EventType::ContactMade)
                .unwrap_err()
                .kind,
            "source-not-allowed"
        );
        assert_eq!(
            check_submission(&w, "urn:throughcare:staff:x", EventType::PrisonerReleased)
                .unwrap_err()
                .kind,
            "type-not-allowed"
        );
        assert_eq!(
            check_submission(&principal(Role::Auditor), "urn:p", referral)
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn nobody_but_auditor_reads_an_unallocated_person_elsewhere() {
        let j = Journey::new(PersonId(ulid::Ulid::nil()));
        assert!(!can_read(&principal(Role::Worker), &j));
        assert!(!can_read(&principal(Role::Manager), &j));
        assert!(!can_read(&principal(Role::Commissioner), &j));
        assert!(can_read(&principal(Role::Auditor), &j));
        assert!(can_read(&Principal::open_mode(), &j));
        // The caller of an open route has no rights at all.
        let nobody = Principal::anonymous();
        assert!(!can_read(&nobody, &j));
        assert!(check_submission(&nobody, "urn:p", EventType::ReferralReceived).is_err());
        assert!(check_submission(&nobody, "", EventType::ReferralReceived).is_err());
    }
}
