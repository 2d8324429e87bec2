//! Flags: raised on a journey by unexpected facts (stored, with the event that raised them
//! and, once resolved, the event that cleared them) or by time (computed for a query time,
//! never stored). Every rule that raises or clears a flag is named here.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use throughcare_events::catalogue::SignpostOutcome;
use throughcare_events::RecordedEvent;

use super::Journey;

/// Flags raised on a journey by unexpected facts or by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FlagCode {
    ReleasedWithoutReferral,
    ReleaseDateChanged,
    NoPlanAtRelease,
    #[serde(rename = "NO_CONTACT_72H")]
    NoContact72h,
    #[serde(rename = "NOT_GP_REGISTERED_28D")]
    NotGpRegistered28d,
    PastSupportEnd,
    UnallocatedNearRelease,
    /// A release was reported for someone the ledger did not have in custody.
    ReleasedWhileNotInCustody,
    /// A transfer named a different prison from the one the ledger had.
    TransferFromUnexpectedPrison,
    SafeguardingRaised,
    /// A referral more than 12 weeks before the expected release or more than 28 days
    /// after release: recorded (a fact, not a refusal) and counted.
    OutsideReferralWindow,
}

/// One flag with the event that raised it and, once cleared, the event that cleared it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    pub code: FlagCode,
    /// Position of the event that raised it (none for time-based flags).
    pub raised_by: Option<u64>,
    pub raised_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_by: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_at: Option<DateTime<Utc>>,
}

impl Flag {
    pub fn is_active(&self) -> bool {
        self.cleared_by.is_none()
    }
}

impl Journey {
    /// Raises `code` unless it is already active.
    pub(super) fn raise(&mut self, code: FlagCode, e: &RecordedEvent) {
        if !self.flags.iter().any(|f| f.code == code && f.is_active()) {
            self.flags.push(Flag {
                code,
                raised_by: Some(e.position),
                raised_at: e.event.time,
                cleared_by: None,
                cleared_at: None,
            });
        }
    }

    /// Clears every active flag for which `which` holds, naming `e` as what cleared it.
    pub(super) fn clear_where(&mut self, which: impl Fn(FlagCode) -> bool, e: &RecordedEvent) {
        for f in self
            .flags
            .iter_mut()
            .filter(|f| f.is_active() && which(f.code))
        {
            f.cleared_by = Some(e.position);
            f.cleared_at = Some(e.event.time);
        }
    }

    pub(super) fn clear(&mut self, code: FlagCode, e: &RecordedEvent) {
        self.clear_where(|c| c == code, e);
    }

    /// A new episode starts with none of the last one's flags: only a release without a
    /// referral stays, until a referral is accepted.
    pub(super) fn clear_for_new_episode(&mut self, e: &RecordedEvent) {
        self.clear_where(|c| c != FlagCode::ReleasedWithoutReferral, e);
    }

    /// The time-based flags at `now` (72 hours without contact, 28 days without a GP, past
    /// the support end, unallocated near release), each dated from when it became due.
    pub(super) fn time_flags(&self, now: DateTime<Utc>) -> Vec<Flag> {
        let mut flags = Vec::new();
        let mut add = |code: FlagCode, since: DateTime<Utc>| {
            flags.push(Flag {
                code,
                raised_by: None,
                raised_at: since,
                cleared_by: None,
                cleared_at: None,
            })
        };
        let open = self.status.is_open();
        // In the community: released and not detained (a hospital transfer is detention).
        if let (true, Some(released)) = (open, self.in_community()) {
            let contacted = self.last_contact_at.is_some_and(|c| c >= released);
            let deadline = released + Duration::hours(72);
            if !contacted && now > deadline {
                add(FlagCode::NoContact72h, deadline);
            }
            let gp = self
                .signposts
                .iter()
                .any(|s| s.outcome == Some(SignpostOutcome::GpRegistered));
            let deadline = released + Duration::days(28);
            if !gp && now > deadline {
                add(FlagCode::NotGpRegistered28d, deadline);
            }
        }
        if let (true, Some(end)) = (open, self.support_end()) {
            if now.date_naive() > end {
                add(
                    FlagCode::PastSupportEnd,
                    end.and_hms_opt(0, 0, 0).expect("midnight").and_utc(),
                );
            }
        }
        if let (true, true, None, Some(rd)) =
            (open, self.in_custody, &self.worker, &self.release_date)
        {
            let days = (rd.date - now.date_naive()).num_days();
            if (0..=14).contains(&days) {
                add(FlagCode::UnallocatedNearRelease, now);
            }
        }
        flags
    }
}
