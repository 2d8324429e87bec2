//! Identity claims: who owns an identifier. A claim is one message on
//! `throughcare.identity.<kind>.<hex SHA-256 of the value>` holding the owner's ULID,
//! written create-only (`Nats-Expected-Last-Subject-Sequence: 0`) in the same atomic
//! batch as the owner's events, so it is never changed, never left behind by a failed
//! append, and found with one get (last message on its subject). A person's own id needs
//! no message: it belongs to the person whose subject has events.

use throughcare_events::{Identifier, PersonId};
use throughcare_ledger::Error;

use super::Shared;
use crate::records::{decode_claim, identity_subject, subject_of};

impl Shared {
    /// The owner of `identifier`, if it is claimed (and remembered as a hint: claims never
    /// change).
    pub(crate) async fn owner_of(
        &self,
        identifier: &Identifier,
    ) -> Result<Option<PersonId>, Error> {
        let Some(subject) = identity_subject(identifier) else {
            let Identifier::Person(p) = identifier else {
                unreachable!("only person ids have no claim subject")
            };
            let exists = self.last_on_subject(&subject_of(*p)).await?.is_some();
            return Ok(exists.then_some(*p));
        };
        if let Some(owner) = self.hints.lock().expect("hints lock").claims.get(&subject) {
            return Ok(Some(*owner));
        }
        match self.last_on_subject(&subject).await? {
            None => Ok(None),
            Some(m) => {
                let owner = decode_claim(&subject, &m.payload)?;
                self.hints.lock().expect("hints lock").claim(subject, owner);
                Ok(Some(owner))
            }
        }
    }
}
