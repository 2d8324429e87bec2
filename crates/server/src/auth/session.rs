//! Web sessions: `POST /sign-in` trades a pasted token (or JWT) for an opaque random
//! session id kept in an HttpOnly, SameSite=Strict cookie; the token itself never goes in
//! the cookie. Sessions live in memory: a restart signs everyone out, which is the safe
//! direction. A session ends at sign-out, at the browser's next sign-in, after
//! `SESSION_TTL`, or when the JWT it was made from expires, whichever comes first
//! (DESIGN.md "Rules at the edge": a session must not outlive the credential that made it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::auth::Principal;

/// The cookie's name.
pub const COOKIE: &str = "throughcare_session";
/// How long a session lasts at most (a working day).
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

struct Session {
    principal: Arc<Principal>,
    expires: Instant,
}

/// How long a session made from a credential expiring at `expires` may last, at `now`:
/// `SESSION_TTL`, or less when the credential expires sooner. `None` when it has expired
/// already: a JWT past its `exp` is still accepted within the clock-skew leeway, but a
/// session from it would be dead on arrival, so sign-in refuses it instead.
pub fn lifetime(expires: Option<SystemTime>, now: SystemTime) -> Option<Duration> {
    match expires {
        None => Some(SESSION_TTL),
        Some(at) => at
            .duration_since(now)
            .ok()
            .filter(|left| !left.is_zero())
            .map(|left| left.min(SESSION_TTL)),
    }
}

/// The live sessions of this process.
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
    /// The key of the pages' CSRF tokens (`crate::web::csrf`): random per process, like
    /// the sessions themselves, so a restart invalidates both together.
    csrf_secret: [u8; 32],
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            live: Mutex::default(),
            csrf_secret: rand::random(),
        }
    }
}

impl Sessions {
    /// The key CSRF tokens are made with.
    pub fn csrf_secret(&self) -> &[u8] {
        &self.csrf_secret
    }

    /// Starts a session for `principal` lasting at most `ttl`; returns its id.
    pub fn start(&self, principal: Principal, ttl: Duration) -> String {
        let (id, _) = crate::auth::new_token();
        let expires = Instant::now() + ttl.min(SESSION_TTL);
        let mut live = self.live.lock().expect("sessions lock");
        // Forget expired sessions as new ones arrive, so the map does not grow forever.
        let now = Instant::now();
        live.retain(|_, s| s.expires > now);
        live.insert(
            id.clone(),
            Session {
                principal: Arc::new(principal),
                expires,
            },
        );
        id
    }

    /// The principal of a live session.
    pub fn get(&self, id: &str) -> Option<Arc<Principal>> {
        let live = self.live.lock().expect("sessions lock");
        live.get(id)
            .filter(|s| s.expires > Instant::now())
            .map(|s| s.principal.clone())
    }

    pub fn end(&self, id: &str) {
        self.live.lock().expect("sessions lock").remove(id);
    }
}

/// The `Set-Cookie` value that starts a session lasting `ttl`; the browser drops the
/// cookie when the session ends, so it does not keep sending a dead id.
pub fn set_cookie(id: &str, secure: bool, ttl: Duration) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ttl.min(SESSION_TTL).as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends it.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The session id in a `Cookie` header, if any.
pub fn from_cookie_header(value: &str) -> Option<&str> {
    value
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_get_end() {
        let s = Sessions::default();
        let id = s.start(Principal::open_mode(), Duration::from_secs(60));
        assert_eq!(id.len(), 43);
        assert!(s.get(&id).is_some());
        assert!(s.get("nope").is_none());
        s.end(&id);
        assert!(s.get(&id).is_none());
        let gone = s.start(Principal::open_mode(), Duration::ZERO);
        assert!(s.get(&gone).is_none());
    }

    #[test]
    fn a_session_ends_when_its_ttl_runs_out() {
        let s = Sessions::default();
        let id = s.start(Principal::open_mode(), Duration::from_millis(50));
        assert!(s.get(&id).is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn lifetime_follows_the_credential() {
        let now = SystemTime::now();
        let min = Duration::from_secs(60);
        // A static token: the working day.
        assert_eq!(lifetime(None, now), Some(SESSION_TTL));
        // A JWT: until its exp, never past the working day.
        assert_eq!(lifetime(Some(now + 5 * min), now), Some(5 * min));
        assert_eq!(lifetime(Some(now + 24 * 60 * min), now), Some(SESSION_TTL));
        // Past its exp (accepted only by the leeway) or at it: no session.
        assert_eq!(lifetime(Some(now - Duration::from_secs(30)), now), None);
        assert_eq!(lifetime(Some(now), now), None);
    }

    #[test]
    fn cookie_parsing() {
        assert_eq!(
            from_cookie_header("a=b; throughcare_session=xyz"),
            Some("xyz")
        );
        assert_eq!(from_cookie_header("throughcare_session="), None);
        let ttl = Duration::from_secs(90);
        assert!(set_cookie("x", true, ttl).contains("HttpOnly; SameSite=Strict; Max-Age=90"));
        assert!(set_cookie("x", true, ttl).ends_with("; Secure"));
        assert!(!set_cookie("x", false, ttl).contains("Secure"));
        assert!(set_cookie("x", false, 2 * SESSION_TTL).contains("Max-Age=28800"));
    }
}
