//! JWTs from an identity provider (the auth file's `[jwt]` table, DESIGN.md "Access").
//!
//! Only RS256 and ES256 are accepted, decided from the token header before any key is
//! touched and then again by the verifying library, so neither `alg: none` nor an HS256
//! token "signed" with a public key as the HMAC secret gets near a verifier. The keys come
//! from a JWKS file or https URL; `kid` selects the key, and an unknown `kid` reloads the
//! JWKS (at most once per 30 s) so a provider's key rotation needs no restart.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::config::{missing_scope, normalize_prisons, valid_name, JwksSource, JwtConfig};
use super::principal::{Principal, Role};
use crate::error::Error;

/// Clock skew allowed on `exp` and `nbf` (DESIGN.md).
const LEEWAY_SECS: u64 = 60;
/// An unknown `kid` reloads the JWKS at most this often, so a stream of made-up key ids
/// cannot make the server hammer the identity provider.
const RELOAD_EVERY: Duration = Duration::from_secs(30);
/// Keys older than this are reloaded on the next JWT, so a key the provider withdrew
/// stops being accepted without a restart.
const MAX_KEY_AGE: Duration = Duration::from_secs(3600);
/// A JWKS is a few KiB; anything much bigger is not one.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// Bearer JWTs are a few KiB; refusing huge ones early bounds the work per request.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// One usable verification key.
struct Key {
    kid: Option<String>,
    /// RS256 for an RSA key, ES256 for a P-256 key: fixed by the key, never by a token.
    alg: Algorithm,
    key: DecodingKey,
}

struct KeySet {
    keys: Vec<Arc<Key>>,
    loaded: Instant,
}

/// Verifies JWTs against the configured provider and turns their claims into principals.
pub(crate) struct JwtVerifier {
    source: JwksSource,
    issuer: String,
    audience: String,
    keys: RwLock<Arc<KeySet>>,
    /// When a (re)load was last tried; held across a reload so only one runs at a time.
    last_attempt: tokio::sync::Mutex<Instant>,
    reload_every: Duration,
    /// Only for an https JWKS.
    http: Option<reqwest::Client>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("jwks", &self.source.to_string())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("keys", &self.current().keys.len())
            .finish()
    }
}

impl JwtVerifier {
    /// Loads the JWKS now (reads the file or fetches the URL); `Err` is a description for
    /// a configuration error.
    pub(crate) async fn load(cfg: JwtConfig) -> Result<JwtVerifier, String> {
        let http = match cfg.jwks {
            JwksSource::Url(_) => Some(http_client().map_err(|e| format!("jwks: {e}"))?),
            JwksSource::File(_) => None,
        };
        let keys = read_keys(&cfg.jwks, http.as_ref())
            .await
            .map_err(|e| format!("jwks {}: {e}", cfg.jwks))?;
        tracing::info!(jwks = %cfg.jwks, keys = keys.len(), "loaded JWT verification keys");
        Ok(JwtVerifier {
            source: cfg.jwks,
            issuer: cfg.issuer,
            audience: cfg.audience,
            keys: RwLock::new(Arc::new(KeySet {
                keys,
                loaded: Instant::now(),
            })),
            last_attempt: tokio::sync::Mutex::new(Instant::now()),
            reload_every: RELOAD_EVERY,
            http,
        })
    }

    /// The principal a valid JWT names and the token's `exp` (a web session made from the
    /// token must end by then), or why the token is refused.
    pub(crate) async fn verify(&self, token: &str) -> Result<(Principal, SystemTime), Error> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Error::unauthenticated("token too long"));
        }
        let (alg, kid) = peek_header(token)?;
        if self.current().loaded.elapsed() > MAX_KEY_AGE {
            self.reload().await;
        }
        let key = match self.find(alg, kid.as_deref()) {
            Some(key) => key,
            None if kid.is_none() => {
                // Without a kid only a provider with a single key of this kind is usable.
                return Err(Error::unauthenticated("token header has no kid"));
            }
            None => {
                self.reload().await;
                self.find(alg, kid.as_deref())
                    .ok_or_else(|| Error::unauthenticated("token signed with an unknown key"))?
            }
        };

        let mut validation = Validation::new(key.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(refusal)?;
        let expires = expiry(data.claims.exp)?;
        Ok((principal_from(data.claims)?, expires))
    }

    fn current(&self) -> Arc<KeySet> {
        // A poisoned lock still holds a whole Arc (it is only ever swapped), so use it.
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn find(&self, alg: Algorithm, kid: Option<&str>) -> Option<Arc<Key>> {
        let set = self.current();
        let mut of_alg = set.keys.iter().filter(|k| k.alg == alg);
        match kid {
            Some(kid) => of_alg.find(|k| k.kid.as_deref() == Some(kid)).cloned(),
            None => match (of_alg.next(), of_alg.next()) {
                (Some(only), None) => Some(only.clone()),
                _ => None,
            },
        }
    }

    /// Reloads the JWKS unless that was tried within `reload_every`. A failed reload keeps
    /// the keys there were, so a provider outage does not sign everyone out.
    async fn reload(&self) {
        let mut last = self.last_attempt.lock().await;
        if last.elapsed() < self.reload_every {
            return;
        }
        *last = Instant::now();
        match read_keys(&self.source, self.http.as_ref()).await {
            Ok(keys) => {
                tracing::info!(jwks = %self.source, keys = keys.len(), "reloaded JWT verification keys");
                let set = Arc::new(KeySet {
                    keys,
                    loaded: Instant::now(),
                });
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = set;
            }
            Err(e) => {
                tracing::warn!(jwks = %self.source, error = %e, "reloading JWT verification keys failed; keeping the previous keys");
            }
        }
    }

    #[cfg(test)]
    fn with_reload_every(mut self, every: Duration) -> JwtVerifier {
        self.reload_every = every;
        self
    }
}

fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        // Keys fetched over plain HTTP (even via a redirect) could be swapped on the way.
        .https_only(true)
        .redirect(reqwest::redirect::Policy::limited(3))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

async fn read_keys(
    source: &JwksSource,
    http: Option<&reqwest::Client>,
) -> Result<Vec<Arc<Key>>, String> {
    let bytes = match (source, http) {
        (JwksSource::File(path), _) => {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|e| format!("cannot read: {e}"))?;
            if bytes.len() > MAX_JWKS_BYTES {
                return Err("larger than 1 MiB".into());
            }
            bytes
        }
        (JwksSource::Url(url), Some(client)) => fetch(client, url).await?,
        (JwksSource::Url(_), None) => return Err("no HTTP client".into()),
    };
    parse_jwks(&bytes)
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("cannot fetch: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("fetch answered {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("cannot fetch: {e}"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_JWKS_BYTES {
            return Err("larger than 1 MiB".into());
        }
    }
    Ok(body)
}

/// The usable keys of a JWKS document. Keys are read one by one so that one the library
/// cannot parse, or one for encryption, is skipped instead of making the set unusable
/// (providers often publish such keys next to their signing keys).
fn parse_jwks(bytes: &[u8]) -> Result<Vec<Arc<Key>>, String> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS: {e}"))?;
    let keys: Vec<Arc<Key>> = set
        .keys
        .into_iter()
        .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
        .filter_map(|jwk| usable(&jwk).map(Arc::new))
        .collect();
    if keys.is_empty() {
        return Err("holds no usable RS256 (RSA) or ES256 (P-256) signing key".into());
    }
    Ok(keys)
}

/// An RSA key for RS256 or a P-256 key for ES256, meant for verifying signatures;
/// anything else (symmetric `oct` keys above all) is never used.
fn usable(jwk: &Jwk) -> Option<Key> {
    let (alg, key_alg) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            (Algorithm::ES256, KeyAlgorithm::ES256)
        }
        _ => return None,
    };
    let common = &jwk.common;
    if common.key_algorithm.is_some_and(|a| a != key_alg) {
        return None;
    }
    if matches!(&common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    if matches!(&common.key_operations, Some(ops) if !ops.contains(&KeyOperations::Verify)) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        kid: common.key_id.clone(),
        alg,
        key,
    })
}

/// The header's algorithm and key id, read before any verification so that an algorithm
/// other than RS256/ES256 is refused outright.
fn peek_header(token: &str) -> Result<(Algorithm, Option<String>), Error> {
    #[derive(Deserialize)]
    struct Header {
        alg: String,
        kid: Option<String>,
        crit: Option<serde_json::Value>,
    }
    let malformed = || Error::unauthenticated("malformed token");
    let head = token.split('.').next().ok_or_else(malformed)?;
    let bytes = URL_SAFE_NO_PAD.decode(head).map_err(|_| malformed())?;
    let header: Header = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    let alg = match header.alg.as_str() {
        "RS256" => Algorithm::RS256,
        "ES256" => Algorithm::ES256,
        _ => {
            return Err(Error::unauthenticated(
                "token algorithm not accepted (RS256 or ES256 only)",
            ))
        }
    };
    // RFC 7515 4.1.11: extensions named critical that we do not understand mean refuse.
    if header.crit.is_some() {
        return Err(Error::unauthenticated("token header has unsupported crit"));
    }
    Ok((alg, header.kid))
}

/// Why the library refused a token, in words safe to show the client.
fn refusal(e: jsonwebtoken::errors::Error) -> Error {
    let why = match e.kind() {
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token not valid yet (nbf)",
        ErrorKind::InvalidIssuer => "token issuer not accepted",
        ErrorKind::InvalidAudience => "token audience not accepted",
        ErrorKind::InvalidSignature => "token signature does not verify",
        ErrorKind::InvalidAlgorithm => "token algorithm not accepted (RS256 or ES256 only)",
        ErrorKind::MissingRequiredClaim(claim) => {
            return Error::unauthenticated(format!("token lacks the {claim} claim"))
        }
        // Claims are parsed only after the signature verified.
        ErrorKind::Json(_) => "token claims malformed",
        _ => "malformed token",
    };
    Error::unauthenticated(why)
}

/// The claims a principal is made of; others are ignored. Lists are `Option` so that a
/// `null` reads as absent.
#[derive(Deserialize)]
struct Claims {
    // Optional here so that a missing `sub` is reported as such by the library's
    // required-claims check rather than as malformed claims.
    sub: Option<String>,
    /// Seconds since the epoch; required (and checked) by the library, read again here so
    /// a session made from the token can end with it. A number, not an integer: some
    /// providers write fractional seconds.
    exp: Option<f64>,
    roles: Option<Vec<serde_json::Value>>,
    worker_id: Option<String>,
    prisons: Option<Vec<String>>,
    sources: Option<Vec<String>>,
    types: Option<Vec<String>>,
}

/// The instant of an `exp` claim. The library has already required and checked it, so a
/// missing one is only reported for completeness; one too far out to represent is refused
/// rather than read as "never".
fn expiry(exp: Option<f64>) -> Result<SystemTime, Error> {
    let exp = exp.ok_or_else(|| Error::unauthenticated("token lacks the exp claim"))?;
    Duration::try_from_secs_f64(exp.max(0.0))
        .ok()
        .and_then(|d| UNIX_EPOCH.checked_add(d))
        .ok_or_else(|| Error::unauthenticated("token exp is out of range"))
}

fn principal_from(c: Claims) -> Result<Principal, Error> {
    let sub = c.sub.unwrap_or_default();
    if !valid_name(&sub) {
        return Err(Error::unauthenticated(
            "token sub must be 1 to 200 visible ASCII characters",
        ));
    }
    let role = c
        .roles
        .iter()
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .find_map(Role::parse)
        .ok_or_else(|| {
            Error::unauthenticated(
                "token roles name none of PARTNER, WORKER, MANAGER, COMMISSIONER, AUDITOR",
            )
        })?;
    let list = |v: Option<Vec<String>>| -> Vec<String> {
        v.into_iter().flatten().filter(|s| !s.is_empty()).collect()
    };
    // Claims that do not apply to the role are dropped, so that the access rules never
    // see a scope the file format would not allow for that role.
    let principal = Principal {
        name: sub,
        role,
        worker_id: c
            .worker_id
            .filter(|w| role == Role::Worker && !w.is_empty()),
        prisons: match role {
            Role::Manager | Role::Commissioner => normalize_prisons(list(c.prisons)),
            _ => Vec::new(),
        },
        sources: if role == Role::Partner {
            list(c.sources)
        } else {
            Vec::new()
        },
        types: if role == Role::Partner {
            list(c.types)
        } else {
            Vec::new()
        },
        open_mode: false,
    };
    // A PARTNER token without `types` is refused like a file entry without them: empty
    // would admit nothing, and "all" must be granted by naming it (`throughcare.*`).
    if let Some(field) = missing_scope(&principal).first() {
        return Err(Error::unauthenticated(format!(
            "token lacks the {field} claim a {role} needs"
        )));
    }
    Ok(principal)
}

/// Synthetic keys made with `openssl genpkey` for these tests only; they sign nothing else.
#[cfg(test)]
pub(crate) mod test_keys {
    /// RSA 2048, PKCS#8.
    pub const RSA_PRIVATE_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC3nOGe4KiZ8JoR
aT8pOQ75j59t2hbPZ9SSmK3a9c2JY0WeYGfQ0dwFPPHAL8eMOow3Nc/QXzjL2tro
MNQcYCJr6PV+Knm05xt0eMQoA+dmabyvzxQsXydA3KOrfKd1DPOFRb40sP+NV9H6
9Zx9FcjLBR+47c6H+18j0D2lm9mGBmcPVONKxU0AoDOLOW7eukevBFCHlUASoySF
J/mXd1DTUzZfGlsD6RiyHwsB5m5qQWF0zIgfrw2bbtcUsl4x3+vzLRTMVg5tb36b
Rsxr3QU/pIo6AvBQOIGyf1zirXArlOOK4AhsAJPs0jyU9a/W+DebMzarsnQrZ/UT
ftXIIp+fAgMBAAECggEAGsz9adFlCsNB2dTA8WVwuCCspr40oiWHs7Yxekpyq+Ef
olR0EtjvApy4tNLEj8Vj/hMOuF2NzsOtPEMUUuf9Xj7sxnOwvCUXrtKJ30Vim2JH
tmnFigyBkEgkY72YO8+eJA/gCZTkWF8/OSBsrR1m56thy/56LQMWCgY1WVz8TUGW
eOEU3FmqMZjcLddQxAppgtObpEG25wVnedaINfBI25p4fnXSNkyajUpl5vDMlxRL
pzrNIuFuleFaW5eh5hM/3SQdgOlmqGPYUL1wxqqyiIq56d6nfc39M0cy9M/7SL24
EedEAWzF/YByRW5mXc80Xg6J3mS2cWU4nzDdsYmVoQKBgQDr5TpIJ6xYlfkAsSME
HOrdgrCVcbh2AhtxvxW6gcEkEer54cqK4LBBJHO99zopYtTB5MY87bypyzzEiVGM
jbcyzv7egeh/47RUBukzzGyJwaMunTFhe7T0lg8U0ErDVB3+DZdaatd3OKM4Rn7Y
pB9v1TjdBZwZH7rbT6dRHz825wKBgQDHQvNTwLVVhuKPv7bcxy87kzi+I8uvOtvE
/eU7fHZarl75ZoCpVIxeU62tdEE8hak+wJx4G/y77iuJSVTKNZqDtwxC5QgJDrjY
kRt0cD8Mc9sTqW9OlyMTeSErHZmj/bTasBhMJW2jF6vI5jy4XSQwe+DEq2yPA3FQ
qyDEcr4SiQKBgQCJv/v+spwjxr/3NXlbJ3/HBlATlKrAzo40J/+KP8cHRydN8BoU
awzBnYWxArOGA152Mx/H6JPpGvNLWVyzlPXLx7BxQq8AL3nYL4jyZIdlEhw2VjjF
0jVjNlVsNA3UbkRtXIZrmERmLD6z2Aauf3iUF5DzEBmNWkgFVUhBSNvjNQKBgCff
U8V8mEyG8ysEl9jR2re3G/GgRA/KXVOr4oTmwOAgaEzLoA9CJdxyLhy5WJx9uoIe
FLFMGGSaogeUruzPkR2uMTvpjJQTaBWd47qHA3bAcCQdEXLOd2xcHrD7+VSBXgEs
n5ANJUUvZWaL+7aAnM8+2plAHDb532De/W2R8ErRAoGBAKd3N3yam9c81AON4HOT
A9iXRhASBiWZ6MKUsZWQoXVtUu9JudZD/XfXFRCD+ZXNvbpa5WaAjtMUT/MRUsV7
YSBeOlZBOQK4QCTypu1m2Vd7h/7tn+cYUT8AMygrXam/i6MxQbG56oIFCKwlAb7D
imudBi0KTaDhY4r5wIrvL4aF
-----END PRIVATE KEY-----
";
    /// The public half, as an attacker would paste it as an HMAC secret.
    pub const RSA_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAt5zhnuComfCaEWk/KTkO
+Y+fbdoWz2fUkpit2vXNiWNFnmBn0NHcBTzxwC/HjDqMNzXP0F84y9ra6DDUHGAi
a+j1fip5tOcbdHjEKAPnZmm8r88ULF8nQNyjq3yndQzzhUW+NLD/jVfR+vWcfRXI
ywUfuO3Oh/tfI9A9pZvZhgZnD1TjSsVNAKAzizlu3rpHrwRQh5VAEqMkhSf5l3dQ
01M2XxpbA+kYsh8LAeZuakFhdMyIH68Nm27XFLJeMd/r8y0UzFYObW9+m0bMa90F
P6SKOgLwUDiBsn9c4q1wK5TjiuAIbACT7NI8lPWv1vg3mzM2q7J0K2f1E37VyCKf
nwIDAQAB
-----END PUBLIC KEY-----
";
    /// P-256, PKCS#8.
    pub const EC_PRIVATE_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgw+LLo8AzGDMQZmFe
WFTFvgmEIjeRIPHFcvlrUnedD46hRANCAAQmh4+1u63aD/UZ/Dtsj1HMb0sugVcO
Rv2UW8L71VWvSneCI7XEBF/mk0P9bKlcSz0Z7swsUQoG/soZ8VoHdzt1
-----END PRIVATE KEY-----
";
    /// JWK of the RSA key, kid "rsa-1".
    pub const RSA_JWK: &str = r#"{"kty":"RSA","kid":"rsa-1","use":"sig","alg":"RS256","n":"t5zhnuComfCaEWk_KTkO-Y-fbdoWz2fUkpit2vXNiWNFnmBn0NHcBTzxwC_HjDqMNzXP0F84y9ra6DDUHGAia-j1fip5tOcbdHjEKAPnZmm8r88ULF8nQNyjq3yndQzzhUW-NLD_jVfR-vWcfRXIywUfuO3Oh_tfI9A9pZvZhgZnD1TjSsVNAKAzizlu3rpHrwRQh5VAEqMkhSf5l3dQ01M2XxpbA-kYsh8LAeZuakFhdMyIH68Nm27XFLJeMd_r8y0UzFYObW9-m0bMa90FP6SKOgLwUDiBsn9c4q1wK5TjiuAIbACT7NI8lPWv1vg3mzM2q7J0K2f1E37VyCKfnw","e":"AQAB"}"#;
    /// JWK of the P-256 key, kid "ec-1".
    pub const EC_JWK: &str = r#"{"kty":"EC","kid":"ec-1","use":"sig","alg":"ES256","crv":"P-256","x":"JoePtbut2g_1Gfw7bI9RzG9LLoFXDkb9lFvC-9VVr0o","y":"d4IjtcQEX-aTQ_1sqVxLPRnuzCxRCgb-yhnxWgd3O3U"}"#;
    /// A JWKS holding both keys.
    pub fn jwks(keys: &[&str]) -> String {
        format!(r#"{{"keys":[{}]}}"#, keys.join(","))
    }

    pub const ISSUER: &str = "https://idp.test";
    pub const AUDIENCE: &str = "throughcare";

    pub fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    /// A token signed with the named test key ("rsa" or "ec") under `kid`.
    pub fn sign(key: &str, kid: &str, claims: &serde_json::Value) -> String {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let (alg, enc) = match key {
            "rsa" => (
                jsonwebtoken::Algorithm::RS256,
                EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).unwrap(),
            ),
            "ec" => (
                jsonwebtoken::Algorithm::ES256,
                EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()).unwrap(),
            ),
            other => panic!("no test key {other}"),
        };
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        encode(&header, claims, &enc).unwrap()
    }

    /// Claims of a good WORKER token, to be varied by each test.
    pub fn worker_claims() -> serde_json::Value {
        serde_json::json!({
            "sub": "jo.worker",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "exp": now() + 300,
            "roles": ["WORKER"],
            "worker_id": "W-WCI-01",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::test_keys::*;
    use super::*;
    use serde_json::json;

    async fn verifier(dir: &tempfile::TempDir, jwks_json: &str) -> JwtVerifier {
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks_json).unwrap();
        JwtVerifier::load(JwtConfig {
            jwks: JwksSource::File(path),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
        })
        .await
        .unwrap()
    }

    async fn both() -> (tempfile::TempDir, JwtVerifier) {
        let dir = tempfile::tempdir().unwrap();
        let v = verifier(&dir, &jwks(&[RSA_JWK, EC_JWK])).await;
        (dir, v)
    }

    fn with(
        mut claims: serde_json::Value,
        key: &str,
        value: serde_json::Value,
    ) -> serde_json::Value {
        claims[key] = value;
        claims
    }

    fn without(mut claims: serde_json::Value, key: &str) -> serde_json::Value {
        claims.as_object_mut().unwrap().remove(key);
        claims
    }

    async fn refused(v: &JwtVerifier, token: &str, expected: &str) {
        match v.verify(token).await {
            Ok(p) => panic!("expected refusal containing {expected:?}, got {p:?}"),
            Err(Error::Unauthenticated(why)) => {
                assert!(why.contains(expected), "expected {expected:?}, got {why:?}");
                assert!(!why.contains(token), "the token is echoed");
            }
            Err(other) => panic!("expected Unauthenticated, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn rs256_ok() {
        let (_d, v) = both().await;
        let (p, _) = v
            .verify(&sign("rsa", "rsa-1", &worker_claims()))
            .await
            .unwrap();
        assert_eq!(p.name, "jo.worker");
        assert_eq!(p.role, Role::Worker);
        assert_eq!(p.worker_id.as_deref(), Some("W-WCI-01"));
        assert!(!p.open_mode);
    }

    #[tokio::test]
    async fn es256_ok_with_first_known_role_and_audience_list() {
        let (_d, v) = both().await;
        let claims = json!({
            "sub": "wci.manager", "iss": ISSUER, "aud": ["other", AUDIENCE],
            "exp": now() + 300, "roles": ["offline_access", 7, "MANAGER", "AUDITOR"],
            "prisons": ["wci"], "worker_id": "ignored", "sources": ["urn:ignored"],
        });
        let (p, _) = v.verify(&sign("ec", "ec-1", &claims)).await.unwrap();
        assert_eq!(p.role, Role::Manager);
        assert_eq!(p.prisons, ["WCI"]);
        assert_eq!(p.worker_id, None);
        assert!(p.sources.is_empty());
    }

    #[tokio::test]
    async fn partner_claims() {
        let (_d, v) = both().await;
        let claims = json!({
            "sub": "probation-south-central", "iss": ISSUER, "aud": AUDIENCE,
            "exp": now() + 300, "roles": ["PARTNER"],
            "sources": ["urn:throughcare:partner:psc"], "types": ["throughcare.referral.*"],
        });
        let (p, _) = v.verify(&sign("rsa", "rsa-1", &claims)).await.unwrap();
        assert_eq!(p.sources, ["urn:throughcare:partner:psc"]);
        assert_eq!(p.types, ["throughcare.referral.*"]);
        refused(
            &v,
            &sign("rsa", "rsa-1", &without(claims.clone(), "sources")),
            "lacks the sources claim a PARTNER needs",
        )
        .await;
    }

    #[tokio::test]
    async fn a_partner_token_without_types_is_refused() {
        // Empty once meant "all types"; a token must now name what it may submit.
        let (_d, v) = both().await;
        let claims = json!({
            "sub": "probation-south-central", "iss": ISSUER, "aud": AUDIENCE,
            "exp": now() + 300, "roles": ["PARTNER"],
            "sources": ["urn:throughcare:partner:psc"],
        });
        let why = "lacks the types claim a PARTNER needs";
        refused(&v, &sign("rsa", "rsa-1", &claims), why).await;
        for empty in [json!([]), json!([""]), json!(null)] {
            let c = with(claims.clone(), "types", empty);
            refused(&v, &sign("rsa", "rsa-1", &c), why).await;
        }
    }

    #[tokio::test]
    async fn verify_reports_the_tokens_exp() {
        let (_d, v) = both().await;
        let exp = now() + 300;
        let (_, expires) = v
            .verify(&sign(
                "rsa",
                "rsa-1",
                &with(worker_claims(), "exp", json!(exp)),
            ))
            .await
            .unwrap();
        assert_eq!(expires, UNIX_EPOCH + Duration::from_secs(exp));
        // Fractional seconds are read, not refused.
        let (_, expires) = v
            .verify(&sign(
                "rsa",
                "rsa-1",
                &with(worker_claims(), "exp", json!(exp as f64 + 0.5)),
            ))
            .await
            .unwrap();
        assert_eq!(
            expires,
            UNIX_EPOCH + Duration::from_millis(exp * 1000 + 500)
        );
        assert!(expiry(Some(f64::MAX)).is_err());
        assert!(expiry(None).is_err());
    }

    #[tokio::test]
    async fn expiry_and_nbf_with_leeway() {
        let (_d, v) = both().await;
        let t = now();
        let expired = with(worker_claims(), "exp", json!(t - 120));
        refused(&v, &sign("rsa", "rsa-1", &expired), "token expired").await;
        let just_expired = with(worker_claims(), "exp", json!(t - 30));
        v.verify(&sign("rsa", "rsa-1", &just_expired))
            .await
            .unwrap();
        let early = with(worker_claims(), "nbf", json!(t + 300));
        refused(&v, &sign("rsa", "rsa-1", &early), "not valid yet").await;
        let nearly = with(worker_claims(), "nbf", json!(t + 30));
        v.verify(&sign("rsa", "rsa-1", &nearly)).await.unwrap();
        let no_exp = without(worker_claims(), "exp");
        refused(&v, &sign("rsa", "rsa-1", &no_exp), "lacks the exp claim").await;
    }

    #[tokio::test]
    async fn issuer_and_audience() {
        let (_d, v) = both().await;
        let wrong_iss = with(worker_claims(), "iss", json!("https://evil.test"));
        refused(&v, &sign("rsa", "rsa-1", &wrong_iss), "issuer not accepted").await;
        let no_iss = without(worker_claims(), "iss");
        refused(&v, &sign("rsa", "rsa-1", &no_iss), "lacks the iss claim").await;
        let wrong_aud = with(worker_claims(), "aud", json!(["other"]));
        refused(
            &v,
            &sign("rsa", "rsa-1", &wrong_aud),
            "audience not accepted",
        )
        .await;
        let no_aud = without(worker_claims(), "aud");
        refused(&v, &sign("rsa", "rsa-1", &no_aud), "lacks the aud claim").await;
        let no_sub = without(worker_claims(), "sub");
        refused(&v, &sign("rsa", "rsa-1", &no_sub), "lacks the sub claim").await;
    }

    #[tokio::test]
    async fn other_algorithms_refused() {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let (_d, v) = both().await;
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let payload = b64(&worker_claims().to_string());

        let none = format!("{}.{payload}.", b64(r#"{"alg":"none","typ":"JWT"}"#));
        refused(&v, &none, "algorithm not accepted").await;
        let none_kid = format!("{}.{payload}.", b64(r#"{"alg":"none","kid":"rsa-1"}"#));
        refused(&v, &none_kid, "algorithm not accepted").await;

        // The classic confusion: HS256 keyed with the RSA public key a verifier holds.
        let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("rsa-1".into());
        let hs = encode(
            &header,
            &worker_claims(),
            &EncodingKey::from_secret(RSA_PUBLIC_PEM.as_bytes()),
        )
        .unwrap();
        refused(&v, &hs, "algorithm not accepted").await;

        let mut header = Header::new(jsonwebtoken::Algorithm::PS256);
        header.kid = Some("rsa-1".into());
        let ps = encode(
            &header,
            &worker_claims(),
            &EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).unwrap(),
        )
        .unwrap();
        refused(&v, &ps, "algorithm not accepted").await;

        // The right key family under the wrong header: an ES256 header naming the RSA kid.
        let rs = sign("rsa", "rsa-1", &worker_claims());
        let parts: Vec<&str> = rs.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            b64(r#"{"alg":"ES256","kid":"rsa-1"}"#),
            parts[1],
            parts[2]
        );
        refused(&v, &forged, "unknown key").await;

        let crit = format!(
            "{}.{}.{}",
            b64(r#"{"alg":"RS256","kid":"rsa-1","crit":["exp"]}"#),
            parts[1],
            parts[2]
        );
        refused(&v, &crit, "crit").await;
    }

    #[tokio::test]
    async fn tampered_or_malformed_refused() {
        let (_d, v) = both().await;
        let token = sign("rsa", "rsa-1", &worker_claims());
        let parts: Vec<&str> = token.split('.').collect();
        let other =
            URL_SAFE_NO_PAD.encode(with(worker_claims(), "sub", json!("mallory")).to_string());
        let tampered = format!("{}.{other}.{}", parts[0], parts[2]);
        refused(&v, &tampered, "signature does not verify").await;
        refused(&v, "not.a.jwt", "malformed token").await;
        refused(
            &v,
            &format!("{}.x.y", "e".repeat(MAX_TOKEN_BYTES)),
            "too long",
        )
        .await;
        let roles_string = with(worker_claims(), "roles", json!("WORKER"));
        refused(&v, &sign("rsa", "rsa-1", &roles_string), "claims malformed").await;
    }

    #[tokio::test]
    async fn unknown_kid_refused() {
        let (_d, v) = both().await;
        refused(&v, &sign("rsa", "rsa-9", &worker_claims()), "unknown key").await;
    }

    #[tokio::test]
    async fn roles_without_a_known_role_refused() {
        let (_d, v) = both().await;
        let claims = with(worker_claims(), "roles", json!(["admin", "worker"]));
        refused(&v, &sign("rsa", "rsa-1", &claims), "roles name none of").await;
        let claims = without(worker_claims(), "roles");
        refused(&v, &sign("rsa", "rsa-1", &claims), "roles name none of").await;
    }

    #[tokio::test]
    async fn role_scope_claims_required() {
        let (_d, v) = both().await;
        let claims = without(worker_claims(), "worker_id");
        refused(
            &v,
            &sign("rsa", "rsa-1", &claims),
            "lacks the worker_id claim a WORKER needs",
        )
        .await;
        let claims = with(worker_claims(), "roles", json!(["MANAGER"]));
        refused(
            &v,
            &sign("rsa", "rsa-1", &claims),
            "lacks the prisons claim a MANAGER needs",
        )
        .await;
        let claims = with(worker_claims(), "roles", json!(["COMMISSIONER"]));
        let (p, _) = v.verify(&sign("rsa", "rsa-1", &claims)).await.unwrap();
        assert_eq!((p.role, p.prisons.len()), (Role::Commissioner, 0));
    }

    #[tokio::test]
    async fn no_kid_uses_the_only_key_of_its_kind() {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let (_d, v) = both().await;
        let token = encode(
            &Header::new(jsonwebtoken::Algorithm::ES256),
            &worker_claims(),
            &EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()).unwrap(),
        )
        .unwrap();
        v.verify(&token).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let two_rsa = RSA_JWK.replace("rsa-1", "rsa-2");
        let v = verifier(&dir, &jwks(&[RSA_JWK, &two_rsa])).await;
        let token = encode(
            &Header::new(jsonwebtoken::Algorithm::RS256),
            &worker_claims(),
            &EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).unwrap(),
        )
        .unwrap();
        refused(&v, &token, "no kid").await;
    }

    #[tokio::test]
    async fn unknown_kid_reloads_the_jwks_at_most_every_period() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        // Loaded just now, so within the period: a new key is not picked up yet.
        let v = verifier(&dir, &jwks(&[RSA_JWK])).await;
        std::fs::write(&path, jwks(&[RSA_JWK, EC_JWK])).unwrap();
        refused(&v, &sign("ec", "ec-1", &worker_claims()), "unknown key").await;

        let v = v.with_reload_every(Duration::ZERO);
        v.verify(&sign("ec", "ec-1", &worker_claims()))
            .await
            .unwrap();

        // A broken file on reload keeps the keys there were.
        std::fs::write(&path, "{").unwrap();
        refused(&v, &sign("ec", "ec-9", &worker_claims()), "unknown key").await;
        v.verify(&sign("rsa", "rsa-1", &worker_claims()))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn unusable_jwks_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let load = |json: String| {
            let path = dir.path().join("k.json");
            std::fs::write(&path, json).unwrap();
            JwtVerifier::load(JwtConfig {
                jwks: JwksSource::File(path),
                issuer: ISSUER.into(),
                audience: AUDIENCE.into(),
            })
        };
        let oct = r#"{"kty":"oct","kid":"h","k":"c2VjcmV0"}"#;
        let enc = RSA_JWK.replace(r#""use":"sig""#, r#""use":"enc""#);
        let ps = RSA_JWK.replace(r#""alg":"RS256""#, r#""alg":"PS256""#);
        let weird = r#"{"kty":"XYZ","kid":"w"}"#;
        let err = load(jwks(&[oct, &enc, &ps, weird])).await.unwrap_err();
        assert!(err.contains("no usable RS256"), "{err}");
        let err = load("[]".into()).await.unwrap_err();
        assert!(err.contains("not a JWKS"), "{err}");
        // Unusable keys beside a usable one are skipped, not fatal.
        let v = load(jwks(&[oct, EC_JWK])).await.unwrap();
        assert_eq!(v.current().keys.len(), 1);
        let missing = JwtVerifier::load(JwtConfig {
            jwks: JwksSource::File(dir.path().join("absent.json")),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
        })
        .await
        .unwrap_err();
        assert!(missing.contains("absent.json: cannot read"), "{missing}");
    }
}
