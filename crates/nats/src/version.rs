//! The server version policy: nats-server 2.12.0 or newer, because every append is one
//! atomic batch publish (ADR-50, new in 2.12); that also excludes 2.10.20-2.10.22, which
//! lost acknowledged JetStream writes on process crashes (Jepsen, December 2025).

use std::cmp::Ordering;

use crate::error::JetStreamError;

/// The oldest nats-server the ledger accepts.
pub const MINIMUM_SERVER_VERSION: (u64, u64, u64) = (2, 12, 0);

/// A parsed `major.minor.patch[-pre]` server version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerVersion {
    pub core: (u64, u64, u64),
    /// `Some` for a pre-release such as `2.11.0-RC.2`, which sorts before `2.11.0`.
    pub pre: Option<String>,
}

impl ServerVersion {
    /// Parses what a server reports in its INFO (`2.15.1`, `v2.10.23`, `2.11.0-RC.2`).
    pub fn parse(s: &str) -> Option<ServerVersion> {
        let s = s.trim().trim_start_matches('v');
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, Some(p.to_string())),
            None => (s, None),
        };
        let core = core.split_once('+').map_or(core, |(c, _)| c);
        let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = parts.next()??;
        if parts.next().is_some() {
            return None;
        }
        Some(ServerVersion {
            core: (major, minor, patch),
            pre,
        })
    }

    /// Whether this version is at least `minimum` (a pre-release of `minimum` is not).
    pub fn at_least(&self, minimum: (u64, u64, u64)) -> bool {
        match self.core.cmp(&minimum) {
            Ordering::Greater => true,
            Ordering::Equal => self.pre.is_none(),
            Ordering::Less => false,
        }
    }
}

fn minimum_text() -> String {
    let (a, b, c) = MINIMUM_SERVER_VERSION;
    format!("{a}.{b}.{c}")
}

/// Applies the version policy to what the server reported.
pub fn check_server_version(reported: &str) -> Result<(), JetStreamError> {
    let version = ServerVersion::parse(reported).ok_or_else(|| JetStreamError::UnknownVersion {
        reported: reported.to_string(),
    })?;
    if version.at_least(MINIMUM_SERVER_VERSION) {
        Ok(())
    } else {
        Err(JetStreamError::TooOld {
            found: reported.to_string(),
            minimum: minimum_text(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_versions() {
        let v = ServerVersion::parse("2.15.1").unwrap();
        assert_eq!(v.core, (2, 15, 1));
        assert_eq!(v.pre, None);
        assert_eq!(ServerVersion::parse("v2.10.23").unwrap().core, (2, 10, 23));
        let rc = ServerVersion::parse("2.11.0-RC.2").unwrap();
        assert_eq!(rc.core, (2, 11, 0));
        assert_eq!(rc.pre.as_deref(), Some("RC.2"));
        assert!(ServerVersion::parse("").is_none());
        assert!(ServerVersion::parse("2.10").is_none());
        assert!(ServerVersion::parse("two.ten.x").is_none());
    }

    #[test]
    fn applies_the_minimum() {
        for ok in ["2.12.0", "2.12.3", "2.15.1", "3.0.0", "2.13.0-RC.1"] {
            assert!(check_server_version(ok).is_ok(), "{ok} should pass");
        }
        for old in [
            "2.9.10",
            "2.10.20",
            "2.10.23",
            "2.11.9",
            "2.12.0-RC.1",
            "1.4.1",
        ] {
            let e = check_server_version(old).unwrap_err();
            assert!(matches!(e, JetStreamError::TooOld { .. }), "{old}: {e}");
            let text = e.to_string();
            assert!(
                text.contains("2.12.0") && text.contains("atomic batch"),
                "{text}"
            );
        }
        assert!(matches!(
            check_server_version("garbage"),
            Err(JetStreamError::UnknownVersion { .. })
        ));
    }
}
