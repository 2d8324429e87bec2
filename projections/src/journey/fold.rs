//! What each event does to the journey: one arm per event type, each handing over to the
//! module of its concept (episodes, custody, casework, history). Every arm is listed, so a
//! new event type fails to compile until it says what it does. Cannot fail and holds no
//! rules: refused submissions are never recorded, and surprising facts raise flags.

use throughcare_events::catalogue::*;
use throughcare_events::{EventData, RecordedEvent};

use super::episode::ReferralState;
use super::flags::FlagCode;
use super::parts::{Plan, Safeguarding, Signpost, Status, Worker};
use super::Journey;

impl Journey {
    /// Applies the effect of one event that stands (not voided by a correction).
    pub(super) fn effect(&mut self, e: &RecordedEvent) {
        let t = e.event.time;
        match &e.event.data {
            EventData::ReferralReceived(d) => self.referral_received(d, e),
            EventData::ReferralAccepted(d) => self.referral_accepted(&d.referral_id, e),
            EventData::ReferralDeclined(d) => {
                self.referral_ended(&d.referral_id, ReferralState::Declined, t)
            }
            EventData::ReferralWithdrawn(d) => {
                self.referral_ended(&d.referral_id, ReferralState::Withdrawn, t)
            }
            EventData::CaseAllocated(d) => {
                self.worker = Some(Worker {
                    worker_id: d.worker_id.clone(),
                    role: d.worker_role,
                    since: t,
                });
                if self.status == Status::Accepted {
                    self.status = self.accepted_status();
                }
                self.clear(FlagCode::UnallocatedNearRelease, e);
            }
            EventData::ConsentGiven(d) => match d.scope {
                ConsentScope::Engage => self.consent.engage = true,
                ConsentScope::ShareWith => {
                    self.consent
                        .share_with
                        .extend(d.orgs.iter().flatten().cloned());
                }
            },
            EventData::ConsentWithdrawn(d) => match d.scope {
                ConsentScope::Engage => {
                    self.consent.engage = false;
                    self.consent.share_with.clear();
                    if self.status.is_open() {
                        self.close(t, Some(CloseReason::ConsentWithdrawn));
                    }
                }
                ConsentScope::ShareWith => {
                    for o in d.orgs.iter().flatten() {
                        self.consent.share_with.remove(o);
                    }
                }
            },
            EventData::AssessmentCompleted(d) => {
                self.needs = d.needs.clone();
                if let Some(ep) = self.episode_mut() {
                    ep.first_assessed_at.get_or_insert(t);
                }
            }
            EventData::PlanAgreed(d) => {
                self.plan = Some(Plan {
                    agreed_at: t,
                    actions: d.actions.clone(),
                    next_review: d.next_review,
                    reviewed_at: None,
                });
                // There is a plan now: the release without one has been dealt with.
                self.clear(FlagCode::NoPlanAtRelease, e);
            }
            EventData::PlanReviewed(d) => {
                let agreed_at = self.plan.as_ref().map_or(t, |p| p.agreed_at);
                self.plan = Some(Plan {
                    agreed_at,
                    actions: d.actions.clone(),
                    next_review: d.next_review,
                    reviewed_at: Some(t),
                });
            }
            EventData::ReleaseDateSet(d) => self.release_date_set(d, e),
            EventData::PrisonerTransferred(d) => self.transferred(d, e),
            EventData::PrisonerReleased(d) => self.released(d, e),
            EventData::PrisonerReturnedToCustody(d) => self.returned_to_custody(d, e),
            // Identifiers are taken from every event, voided or not (`Journey::identify`).
            EventData::IdentifiersLinked(_) => {}
            EventData::ContactAttempted(_) => {}
            // Only MET and SPOKE are contact; other outcomes were refused on contact.made
            // from issue 9 on, and the ones recorded before it fold as attempts.
            EventData::ContactMade(d) if d.outcome.is_some_and(|o| !o.is_contact()) => {}
            EventData::ContactMade(d) => self.contact_made(d.channel, e),
            EventData::EngagementChanged(d) => {
                self.engagement = Some(d.status);
                if matches!(
                    self.status,
                    Status::SeekingContact | Status::Engaged | Status::Disengaged
                ) {
                    self.status = self.accepted_status();
                }
            }
            EventData::SignpostingMade(d) => self.signposts.push(Signpost {
                episode: self.episodes.len() as u32,
                signpost_id: d.signpost_id.clone(),
                service_type: d.service_type,
                org: d.org.clone(),
                mode: d.mode,
                made_at: t,
                outcome: None,
                outcome_at: None,
            }),
            EventData::SignpostingOutcome(d) => self.signpost_outcome(d, e),
            EventData::SafeguardingRaised(d) => {
                self.safeguarding.push(Safeguarding {
                    category: d.category,
                    referred_to: d.referred_to.clone(),
                    raised_at: t,
                });
                self.raise(FlagCode::SafeguardingRaised, e);
            }
            EventData::SupportExtended(d) => self.support_extended_until = Some(d.until),
            EventData::CaseClosed(d) => self.close(t, Some(d.reason)),
            EventData::CaseReopened(_) => self.reopen(),
            EventData::RecordCorrected(d) => {
                // A correction that only marks its target (one that takes effect re-folds
                // the whole history instead, see `history`).
                let source = d.target_source.as_deref().unwrap_or(&e.event.source);
                if let Some(line) = self
                    .timeline
                    .iter_mut()
                    .find(|l| l.id == d.target_event_id && l.source == source)
                {
                    line.corrected_by = Some(e.position);
                }
            }
        }
    }

    fn contact_made(&mut self, channel: ContactChannel, e: &RecordedEvent) {
        let t = e.event.time;
        // A contact reported late must not hide a later one.
        self.last_contact_at = self.last_contact_at.max(Some(t));
        let open = self.status.is_open();
        if let Some(ep) = self.episode_mut().filter(|_| open) {
            ep.contacts.push(super::ContactRecord { at: t, channel });
            ep.settle_contacts();
        }
        if self.status == Status::SeekingContact {
            self.engagement = Some(EngagementStatus::Engaged);
            self.status = Status::Engaged;
        }
    }

    fn signpost_outcome(&mut self, d: &SignpostingOutcome, e: &RecordedEvent) {
        let t = e.event.time;
        let Some(s) = self
            .signposts
            .iter_mut()
            .find(|s| s.signpost_id == d.signpost_id)
        else {
            return;
        };
        s.outcome = Some(d.outcome);
        s.outcome_at = Some(t);
        let episode = s.episode;
        if d.outcome == SignpostOutcome::GpRegistered {
            if let Some(ep) = self.episodes.iter_mut().find(|ep| ep.number == episode) {
                ep.gp_registered_at.get_or_insert(t);
            }
        }
    }
}
