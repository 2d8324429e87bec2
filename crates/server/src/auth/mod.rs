//! Authentication: who the caller is (DESIGN.md "Access"). A bearer credential is either
//! a static token from the auth file (looked up by its SHA-256; the file never holds a
//! token) or, when the file has a `[jwt]` table, a JWT from an identity provider. What a
//! principal may then do is decided elsewhere.

mod config;
mod jwt;
mod principal;
pub mod session;
mod token;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

pub use principal::{Principal, Role};
pub use token::{new_token, principal_block};

use crate::error::Error;
use jwt::JwtVerifier;
use token::{digest, digests_equal, Digest};

/// A verified credential: who it stands for and, for a JWT, its `exp` (a static token
/// does not expire; it is withdrawn by removing it from the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub principal: Principal,
    pub expires: Option<SystemTime>,
}

/// Turns bearer credentials into principals. Cheap to clone (one `Arc`); `Send + Sync`.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    /// Static principals by the SHA-256 of their token. Looking up a digest reveals
    /// nothing usable about a token through timing, unlike comparing tokens.
    principals: HashMap<Digest, Principal>,
    /// The static principals' names, lower case: a JWT whose `sub` is one of them is
    /// refused, so the access log's `who` (and a staff source) always means one identity.
    static_names: HashSet<String>,
    jwt: Option<JwtVerifier>,
    metrics: Option<Digest>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("principals", &self.inner.principals.len())
            .field("jwt", &self.inner.jwt)
            .field("metrics_token", &self.inner.metrics.is_some())
            .finish()
    }
}

impl Authenticator {
    /// Reads and checks the auth file at `path` and loads the JWKS its `[jwt]` table names
    /// (a relative `jwks` path is relative to the process's working directory; an
    /// `https://` URL is fetched now). `Error::Config` lists every problem found.
    pub async fn load(path: &Path) -> Result<Authenticator, Error> {
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| Error::Config(format!("cannot read auth file {}: {e}", path.display())))?;
        Self::build(
            &text,
            Path::new(""),
            &format!("auth file {}", path.display()),
        )
        .await
    }

    /// As [`Authenticator::load`], from the file's text; a relative `jwks` path is joined
    /// to `base_dir` (pass `Path::new("")` for the working directory).
    pub async fn from_toml(text: &str, base_dir: &Path) -> Result<Authenticator, Error> {
        Self::build(text, base_dir, "auth file").await
    }

    async fn build(text: &str, base_dir: &Path, label: &str) -> Result<Authenticator, Error> {
        let cfg = config::parse(text, base_dir).map_err(|problems| {
            Error::Config(match problems.as_slice() {
                [one] => format!("{label}: {one}"),
                many => format!(
                    "{label} has {} problems:\n  {}",
                    many.len(),
                    many.join("\n  ")
                ),
            })
        })?;
        let jwt = match cfg.jwt {
            Some(jwt) => Some(
                JwtVerifier::load(jwt)
                    .await
                    .map_err(|e| Error::Config(format!("{label}: [jwt]: {e}")))?,
            ),
            None => None,
        };
        let static_names = cfg
            .principals
            .values()
            .map(|p| p.name.to_ascii_lowercase())
            .collect();
        Ok(Authenticator {
            inner: Arc::new(Inner {
                static_names,
                principals: cfg.principals,
                jwt,
                metrics: cfg.metrics,
            }),
        })
    }

    /// The principal a bearer credential stands for. Static tokens are tried first; a
    /// credential shaped like a JWT is then verified if the file has a `[jwt]` table.
    /// The error's detail says why, never what the credential was.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, Error> {
        self.authenticate_credential(bearer)
            .await
            .map(|c| c.principal)
    }

    /// As [`Authenticator::authenticate`], with when the credential itself expires: a web
    /// session made from it must end by then (DESIGN.md "Rules at the edge").
    pub async fn authenticate_credential(&self, bearer: &str) -> Result<Credential, Error> {
        // Tokens never hold whitespace; pasted ones (the sign-in form, a token file)
        // often end with some.
        let bearer = bearer.trim();
        if bearer.is_empty() {
            return Err(Error::unauthenticated("no credential"));
        }
        if let Some(p) = self.inner.principals.get(&digest(bearer)) {
            return Ok(Credential {
                principal: p.clone(),
                expires: None,
            });
        }
        match &self.inner.jwt {
            Some(jwt) if looks_like_jwt(bearer) => {
                let (principal, expires) = jwt.verify(bearer).await?;
                // Compared ignoring case: names are ASCII, and "Jo.Worker" next to
                // "jo.worker" in the access log would be read as the same person.
                if self
                    .inner
                    .static_names
                    .contains(&principal.name.to_ascii_lowercase())
                {
                    return Err(Error::unauthenticated(
                        "token sub names a principal of the auth file",
                    ));
                }
                Ok(Credential {
                    principal,
                    expires: Some(expires),
                })
            }
            _ => Err(Error::unauthenticated("unknown token")),
        }
    }

    /// Whether `bearer` is the `/metrics` scrape token (`[metrics] token_sha256`); false
    /// when the file names none.
    pub fn is_metrics_token(&self, bearer: &str) -> bool {
        self.inner
            .metrics
            .is_some_and(|m| digests_equal(&m, &digest(bearer.trim())))
    }

    /// How many static principals the file holds (for the start-up log line).
    pub fn principals(&self) -> usize {
        self.inner.principals.len()
    }

    /// Whether JWTs are accepted (the file has a `[jwt]` table).
    pub fn accepts_jwt(&self) -> bool {
        self.inner.jwt.is_some()
    }
}

/// Three dot-separated base64url parts, the first two non-empty (the signature may be
/// empty, as in `alg: none`, which is then refused by name rather than as unknown).
fn looks_like_jwt(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && !parts[0].is_empty()
        && !parts[1].is_empty()
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::jwt::test_keys::*;
    use super::*;

    fn file(hash: &str) -> String {
        format!(
            "[[principal]]\nname = \"jo.worker\"\nrole = \"WORKER\"\nworker_id = \"W-WCI-01\"\ntoken_sha256 = \"{hash}\"\n"
        )
    }

    fn unauthenticated<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
        match r {
            Err(Error::Unauthenticated(why)) => why,
            other => panic!("expected Unauthenticated, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn good_static_token() {
        let (token, hash) = new_token();
        let auth = Authenticator::from_toml(&file(&hash), Path::new(""))
            .await
            .unwrap();
        assert_eq!(auth.principals(), 1);
        assert!(!auth.accepts_jwt());
        let p = auth.authenticate(&token).await.unwrap();
        assert_eq!(p.name, "jo.worker");
        assert_eq!(p.role, Role::Worker);
        assert_eq!(p.worker_id.as_deref(), Some("W-WCI-01"));
        assert!(!p.open_mode);
        // Pasted with a newline still works.
        assert_eq!(auth.authenticate(&format!("{token}\n")).await.unwrap(), p);
    }

    #[tokio::test]
    async fn unknown_token_refused() {
        let (_, hash) = new_token();
        let auth = Authenticator::from_toml(&file(&hash), Path::new(""))
            .await
            .unwrap();
        let (other, _) = new_token();
        let why = unauthenticated(auth.authenticate(&other).await);
        assert_eq!(why, "unknown token");
        assert!(!Error::Unauthenticated(why).to_string().contains(&other));
        assert_eq!(
            unauthenticated(auth.authenticate("  ").await),
            "no credential"
        );
        // A JWT with no [jwt] table is just an unknown token.
        let jwt = sign("rsa", "rsa-1", &worker_claims());
        assert_eq!(
            unauthenticated(auth.authenticate(&jwt).await),
            "unknown token"
        );
    }

    #[tokio::test]
    async fn metrics_token() {
        let (token, hash) = new_token();
        let (scrape, scrape_hash) = new_token();
        let text = format!(
            "{}[metrics]\ntoken_sha256 = \"{scrape_hash}\"\n",
            file(&hash)
        );
        let auth = Authenticator::from_toml(&text, Path::new(""))
            .await
            .unwrap();
        assert!(auth.is_metrics_token(&scrape));
        assert!(!auth.is_metrics_token(&token));
        // The scrape token signs nobody in.
        unauthenticated(auth.authenticate(&scrape).await);
        let auth = Authenticator::from_toml(&file(&hash), Path::new(""))
            .await
            .unwrap();
        assert!(!auth.is_metrics_token(&scrape));
    }

    #[tokio::test]
    async fn file_problems_are_config_errors_listing_all() {
        let text = "[[principal]]\nname = \"a\"\nrole = \"ADMIN\"\ntoken_sha256 = \"x\"\n";
        match Authenticator::from_toml(text, Path::new("")).await {
            Err(Error::Config(msg)) => {
                assert!(msg.starts_with("auth file has 2 problems:"), "{msg}");
                assert!(msg.contains("unknown role \"ADMIN\""), "{msg}");
                assert!(msg.contains("token_sha256"), "{msg}");
            }
            other => panic!("expected Config, got {other:?}"),
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.toml");
        std::fs::write(
            &path,
            "[jwt]\njwks = \"absent.json\"\nissuer = \"i\"\naudience = \"a\"\n",
        )
        .unwrap();
        match Authenticator::load(&path).await {
            Err(Error::Config(msg)) => {
                assert!(
                    msg.contains("[jwt]: jwks absent.json: cannot read"),
                    "{msg}"
                )
            }
            other => panic!("expected Config, got {other:?}"),
        }
        match Authenticator::load(&dir.path().join("none.toml")).await {
            Err(Error::Config(msg)) => assert!(msg.starts_with("cannot read auth file"), "{msg}"),
            other => panic!("expected Config, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn jwt_through_the_authenticator_with_jwks_relative_to_base_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("deploy")).unwrap();
        std::fs::write(
            dir.path().join("deploy/jwks.json"),
            jwks(&[RSA_JWK, EC_JWK]),
        )
        .unwrap();
        let (token, hash) = new_token();
        let text = format!(
            "{}[jwt]\njwks = \"deploy/jwks.json\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n",
            file(&hash)
        );
        let auth = Authenticator::from_toml(&text, dir.path()).await.unwrap();
        assert!(auth.accepts_jwt());
        let c = auth.authenticate_credential(&token).await.unwrap();
        assert_eq!((c.principal.name.as_str(), c.expires), ("jo.worker", None));
        let mut idp_worker = worker_claims();
        idp_worker["sub"] = "jo.idp".into();
        let exp = now() + 300;
        idp_worker["exp"] = exp.into();
        let c = auth
            .authenticate_credential(&sign("ec", "ec-1", &idp_worker))
            .await
            .unwrap();
        assert_eq!(
            (c.principal.name.as_str(), c.principal.role),
            ("jo.idp", Role::Worker)
        );
        assert_eq!(
            c.expires,
            Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(exp))
        );
        let expired = {
            let mut c = idp_worker.clone();
            c["exp"] = (now() - 3600).into();
            c
        };
        let why = unauthenticated(auth.authenticate(&sign("rsa", "rsa-1", &expired)).await);
        assert_eq!(why, "token expired");
        assert_eq!(
            unauthenticated(auth.authenticate("a.b").await),
            "unknown token"
        );
    }

    #[tokio::test]
    async fn a_jwt_sub_naming_a_static_principal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jwks.json"), jwks(&[RSA_JWK])).unwrap();
        let (_, hash) = new_token();
        let text = format!(
            "{}[jwt]\njwks = \"jwks.json\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n",
            file(&hash)
        );
        let auth = Authenticator::from_toml(&text, dir.path()).await.unwrap();
        // worker_claims() names jo.worker, the file's principal; so does a case variant.
        for sub in ["jo.worker", "Jo.Worker"] {
            let mut c = worker_claims();
            c["sub"] = sub.into();
            let why = unauthenticated(auth.authenticate(&sign("rsa", "rsa-1", &c)).await);
            assert_eq!(why, "token sub names a principal of the auth file");
        }
        let mut c = worker_claims();
        c["sub"] = "jo.worker2".into();
        auth.authenticate(&sign("rsa", "rsa-1", &c)).await.unwrap();
    }

    #[tokio::test]
    async fn principal_blocks_parse_back() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let blocks = [
            (
                "probation-south-central",
                Role::Partner,
                None,
                s(&[]),
                s(&["urn:throughcare:partner:psc"]),
                s(&["throughcare.referral.*"]),
            ),
            (
                "seeder",
                Role::Partner,
                None,
                s(&[]),
                s(&["urn:a", "urn:b"]),
                s(&["throughcare.*", "throughcare.case.closed.v1"]),
            ),
            (
                "jo.worker",
                Role::Worker,
                Some("W-WCI-01"),
                s(&[]),
                s(&[]),
                s(&[]),
            ),
            (
                "wci.manager",
                Role::Manager,
                None,
                s(&["WCI", "BNI"]),
                s(&[]),
                s(&[]),
            ),
            ("odd\"name\\", Role::Auditor, None, s(&[]), s(&[]), s(&[])),
            (
                "commissioner",
                Role::Commissioner,
                None,
                s(&[]),
                s(&[]),
                s(&[]),
            ),
        ];
        let mut text = String::new();
        let mut tokens = Vec::new();
        for (name, role, worker_id, prisons, sources, types) in &blocks {
            let (token, hash) = new_token();
            text.push_str(&principal_block(
                name, *role, &hash, *worker_id, prisons, sources, types,
            ));
            text.push('\n');
            tokens.push(token);
        }
        let auth = Authenticator::from_toml(&text, Path::new(""))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(auth.principals(), blocks.len());
        for ((name, role, worker_id, prisons, sources, types), token) in blocks.iter().zip(&tokens)
        {
            let p = auth.authenticate(token).await.unwrap();
            assert_eq!(&p.name, name);
            assert_eq!(p.role, *role);
            assert_eq!(p.worker_id.as_deref(), *worker_id);
            assert_eq!(&p.prisons, prisons);
            assert_eq!(&p.sources, sources);
            assert_eq!(&p.types, types);
        }
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("eyJh.eyJz.sig-_"));
        assert!(looks_like_jwt("eyJh.eyJz."));
        assert!(!looks_like_jwt("eyJh.eyJz"));
        assert!(!looks_like_jwt(".eyJz.sig"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a+b.c.d"));
    }

    #[test]
    fn authenticator_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Authenticator>();
    }
}
