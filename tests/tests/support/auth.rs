//! Access-test helpers: principals with fresh bearer tokens written to an auth file (only
//! their SHA-256 is stored), JWTs signed with the synthetic fixture keys (and the forged
//! kinds a server must refuse), an HTTP caller that carries credentials and shows headers,
//! and readers of the ledger head and the access log.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The `iss` the test auth files trust.
pub const ISSUER: &str = "https://auth.test.invalid";
/// The `aud` the test auth files expect.
pub const AUDIENCE: &str = "throughcare";
/// The response header naming the access-log entry of a request.
pub const REQUEST_ID: &str = "throughcare-request-id";

/// `tests/fixtures/auth`, absolute.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/auth")
}

/// Lower-case hex SHA-256 of a token, as `token_sha256` holds it.
pub fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh random bearer token (two ULIDs: 160 random bits).
pub fn new_token() -> String {
    format!(
        "tct_{}{}",
        ulid::Ulid::new().to_string().to_lowercase(),
        ulid::Ulid::new().to_string().to_lowercase()
    )
}

/// One `[[principal]]` of an auth file.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub name: String,
    pub role: String,
    pub worker_id: Option<String>,
    pub prisons: Vec<String>,
    pub sources: Vec<String>,
    pub types: Vec<String>,
}

impl Spec {
    pub fn new(name: &str, role: &str) -> Spec {
        Spec {
            name: name.into(),
            role: role.into(),
            ..Spec::default()
        }
    }
    pub fn worker_id(mut self, w: &str) -> Spec {
        self.worker_id = Some(w.into());
        self
    }
    pub fn prisons(mut self, p: &[&str]) -> Spec {
        self.prisons = p.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn sources(mut self, s: &[&str]) -> Spec {
        self.sources = s.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn types(mut self, t: &[&str]) -> Spec {
        self.types = t.iter().map(|s| s.to_string()).collect();
        self
    }
}

fn toml_str(s: &str) -> String {
    // A JSON string of printable ASCII is a valid TOML basic string.
    serde_json::to_string(s).unwrap()
}

fn toml_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap()
}

/// An auth file on disk and the tokens of its principals.
pub struct AuthFile {
    pub path: PathBuf,
    pub tokens: BTreeMap<String, String>,
    pub metrics_token: String,
}

impl AuthFile {
    /// Writes `dir/auth.toml` with a fresh token per principal, a `[metrics]` scrape token
    /// and a `[jwt]` table trusting `fixtures/auth/jwks.json`.
    pub fn write(dir: &Path, principals: &[Spec]) -> AuthFile {
        std::fs::create_dir_all(dir).unwrap();
        let mut tokens = BTreeMap::new();
        let mut text = String::from("# throughcare access tests: synthetic principals\n\n");
        for p in principals {
            let token = new_token();
            text += "[[principal]]\n";
            text += &format!("name = {}\n", toml_str(&p.name));
            text += &format!("role = {}\n", toml_str(&p.role));
            text += &format!("token_sha256 = {}\n", toml_str(&sha256_hex(&token)));
            if let Some(w) = &p.worker_id {
                text += &format!("worker_id = {}\n", toml_str(w));
            }
            if !p.prisons.is_empty() {
                text += &format!("prisons = {}\n", toml_list(&p.prisons));
            }
            if !p.sources.is_empty() {
                text += &format!("sources = {}\n", toml_list(&p.sources));
            }
            if !p.types.is_empty() {
                text += &format!("types = {}\n", toml_list(&p.types));
            }
            text += "\n";
            tokens.insert(p.name.clone(), token);
        }
        let metrics_token = new_token();
        text += &format!(
            "[metrics]\ntoken_sha256 = {}\n\n",
            toml_str(&sha256_hex(&metrics_token))
        );
        text += &format!(
            "[jwt]\njwks = {}\nissuer = {}\naudience = {}\n",
            toml_str(fixtures().join("jwks.json").to_str().unwrap()),
            toml_str(ISSUER),
            toml_str(AUDIENCE)
        );
        let path = dir.join("auth.toml");
        std::fs::write(&path, text).unwrap();
        AuthFile {
            path,
            tokens,
            metrics_token,
        }
    }

    /// The bearer token of principal `name`.
    pub fn token(&self, name: &str) -> String {
        self.tokens
            .get(name)
            .unwrap_or_else(|| panic!("no principal {name} in the auth file"))
            .clone()
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

// ---------------------------------------------------------------------------------------
// JWTs

/// The signing keys of the fixtures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// RS256 with kid "rsa-1".
    Rsa,
    /// ES256 with kid "ec-1".
    Ec,
    /// RS384 with the RSA key (kid "rsa-1"): an algorithm the server must refuse.
    Rs384,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Standard claims for `sub` in `role`, valid now for ten minutes, plus `extra` members
/// (`worker_id`, `prisons`, `sources`, `types`).
pub fn claims(sub: &str, role: &str, extra: Value) -> Value {
    let mut c = json!({
        "sub": sub,
        "roles": ["offline_access", role],
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now(),
        "nbf": now() - 5,
        "exp": now() + 600,
    });
    if let Value::Object(m) = extra {
        for (k, v) in m {
            c[k] = v;
        }
    }
    c
}

/// A JWT over `claims` signed with a fixture key.
pub fn jwt(key: Key, claims: &Value) -> String {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let (alg, kid, file) = match key {
        Key::Rsa => (Algorithm::RS256, "rsa-1", "rsa-1.pem"),
        Key::Rs384 => (Algorithm::RS384, "rsa-1", "rsa-1.pem"),
        Key::Ec => (Algorithm::ES256, "ec-1", "ec-1.pem"),
    };
    let pem = std::fs::read(fixtures().join(file)).unwrap();
    let encoding = match key {
        Key::Rsa | Key::Rs384 => EncodingKey::from_rsa_pem(&pem).unwrap(),
        Key::Ec => EncodingKey::from_ec_pem(&pem).unwrap(),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    encode(&header, claims, &encoding).unwrap()
}

/// An unsigned JWT (`alg: none`, empty signature).
pub fn jwt_alg_none(claims: &Value) -> String {
    let header = json!({"alg": "none", "typ": "JWT", "kid": "rsa-1"});
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The key-confusion forgery: HS256 with the RSA public key's PEM text as the HMAC secret.
pub fn jwt_hs256_with_rsa_public_key(claims: &Value) -> String {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let pem = std::fs::read(fixtures().join("rsa-1.pub.pem")).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    encode(&header, claims, &EncodingKey::from_secret(&pem)).unwrap()
}

// ---------------------------------------------------------------------------------------
// HTTP

/// A caller: optional `Authorization` header value and optional session cookie.
#[derive(Clone)]
pub struct Caller {
    http: reqwest::Client,
    pub url: String,
    pub authorization: Option<String>,
    pub cookie: Option<String>,
}

/// A response with its headers.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    /// The body as JSON, or a JSON string of the text when it is not JSON.
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    pub fn request_id(&self) -> Option<String> {
        self.header(REQUEST_ID)
    }
    pub fn content_type(&self) -> String {
        self.header("content-type").unwrap_or_default()
    }
    pub fn is_problem(&self) -> bool {
        self.content_type().starts_with("application/problem+json")
    }
    /// `type` of a problem+json body.
    pub fn problem_type(&self) -> String {
        self.body["type"].as_str().unwrap_or("").to_string()
    }
    /// `name=value` of the first `Set-Cookie`, if any.
    pub fn session_cookie(&self) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
            .find(|kv| kv.contains('=') && !kv.ends_with('='))
    }
    /// Short, for failure messages.
    pub fn brief(&self) -> String {
        let mut t = self.text.clone();
        if t.len() > 300 {
            t.truncate(300);
            t.push('…');
        }
        format!("{} {} {t}", self.status, self.content_type())
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        // The server closes a keep-alive connection idle for 10 s: never reuse one that
        // old, or a request may be sent as the server closes it.
        .pool_idle_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// Percent-encodes a query or form value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out += &format!("%{b:02X}");
        }
    }
    out
}

impl Caller {
    /// No credentials.
    pub fn anonymous(url: &str) -> Caller {
        Caller {
            http: http_client(),
            url: url.to_string(),
            authorization: None,
            cookie: None,
        }
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(url: &str, token: &str) -> Caller {
        let mut c = Caller::anonymous(url);
        c.authorization = Some(format!("Bearer {token}"));
        c
    }

    /// A browser with a session cookie (`name=value`).
    pub fn browser(url: &str, cookie: Option<String>) -> Caller {
        let mut c = Caller::anonymous(url);
        c.cookie = cookie;
        c
    }

    /// `method path` on this caller's server, with its `Authorization` if it has one.
    fn builder(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.url));
        match &self.authorization {
            Some(a) => rb.header("authorization", a),
            None => rb,
        }
    }

    /// Sends one request; `None` when the server could not be reached or the reply was cut.
    pub async fn try_send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Option<Resp> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.builder(method, path);
        if let Some(c) = &self.cookie {
            rb = rb.header("cookie", c);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some((ct, bytes)) = body {
            rb = rb.header("content-type", ct).body(bytes);
        }
        let r = rb.send().await.ok()?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.ok()?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(text.clone()));
        Some(Resp {
            status,
            headers,
            text,
            body,
        })
    }

    /// GET that returns as soon as the response head arrives: (status, request id).
    /// The body is read but a cut body (the server was killed) does not matter.
    pub async fn try_get_head(&self, path: &str) -> Option<(u16, Option<String>)> {
        let r = self.builder(reqwest::Method::GET, path).send().await.ok()?;
        let status = r.status().as_u16();
        let id = r
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let _ = r.bytes().await;
        Some((status, id))
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Resp {
        self.try_send(method, path, headers, body)
            .await
            .unwrap_or_else(|| panic!("{method} {path}: no response from {}", self.url))
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], None).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.send("GET", path, headers, None).await
    }

    /// POST /v1/events with one event (object) or a batch (array).
    pub async fn submit(&self, event: &Value) -> Resp {
        let ct = if event.is_array() {
            "application/cloudevents-batch+json"
        } else {
            "application/cloudevents+json"
        };
        self.send(
            "POST",
            "/v1/events",
            &[],
            Some((ct, serde_json::to_vec(event).unwrap())),
        )
        .await
    }

    /// POST a form (`application/x-www-form-urlencoded`).
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.send(
            "POST",
            path,
            &[],
            Some(("application/x-www-form-urlencoded", body.into_bytes())),
        )
        .await
    }

    /// Signs in with a token or JWT through the sign-in form: the session cookie, if the
    /// server set one and sent the browser on to `/`.
    pub async fn sign_in(url: &str, credential: &str) -> (Resp, Option<String>) {
        let r = Caller::anonymous(url)
            .post_form("/sign-in", &[("token", credential)])
            .await;
        let cookie = if r.status == 303 || r.status == 302 {
            r.session_cookie()
        } else {
            None
        };
        (r, cookie)
    }
}

/// The ledger head (`GET /readyz` -> `head`); open route.
pub async fn head(url: &str) -> u64 {
    let r = Caller::anonymous(url).get("/readyz").await;
    r.body["head"]
        .as_u64()
        .unwrap_or_else(|| panic!("/readyz has no head: {}", r.brief()))
}

/// Starts `throughcare serve --auth <auth> <extra...>` on `data`.
pub fn start_with_auth(data: &Path, auth: &AuthFile, extra: &[&str]) -> super::Server {
    let mut args = vec!["--auth", auth.path_str()];
    args.extend_from_slice(extra);
    super::Server::start_with(data, &args)
}

/// Writes an auth file of `principals` to `dir/auth` and starts a server with it on
/// `dir/data`.
pub fn serve_with_auth(dir: &Path, principals: &[Spec]) -> (AuthFile, super::Server) {
    let auth = AuthFile::write(&dir.join("auth"), principals);
    let server = start_with_auth(&dir.join("data"), &auth, &[]);
    (auth, server)
}

/// Notes a problem unless `r` answered `status` ("`what`: expected 403, got ..."); whether
/// it did.
pub fn expect_status(r: &Resp, status: u16, what: &str, problems: &mut Vec<String>) -> bool {
    let ok = r.status == status;
    if !ok {
        problems.push(format!("{what}: expected {status}, got {}", r.brief()));
    }
    ok
}

/// Waits until the read models have caught up with the log head.
pub async fn settle(url: &str) {
    for _ in 0..400 {
        let r = Caller::anonymous(url).get("/readyz").await;
        if r.body["head"].is_u64() && r.body["checkpoint"].as_u64() >= r.body["head"].as_u64() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("read models never caught up at {url}");
}

/// Every access-log entry matching `query` (e.g. `person=...&who=...`), following `after=`
/// pages; read as `auditor`.
pub async fn access_entries(auditor: &Caller, query: &str) -> Result<Vec<Value>, String> {
    let mut out: Vec<Value> = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let mut path = "/v1/access?limit=500".to_string();
        if !query.is_empty() {
            path += &format!("&{query}");
        }
        if let Some(a) = after {
            path += &format!("&after={a}");
        }
        let r = auditor.get(&path).await;
        if r.status != 200 {
            return Err(format!("GET {path}: {}", r.brief()));
        }
        let page = r.body["entries"]
            .as_array()
            .ok_or_else(|| format!("GET {path}: no entries array: {}", r.brief()))?
            .clone();
        let last = page.last().and_then(|e| e["seq"].as_u64());
        let got = page.len();
        out.extend(page);
        match last {
            Some(l) if got > 0 && after.is_none_or(|a| l > a) => after = Some(l),
            _ => break,
        }
        if got < 500 {
            break;
        }
    }
    Ok(out)
}

/// The access-log entries by `request_id`.
pub async fn access_by_request(auditor: &Caller) -> Result<BTreeMap<String, Value>, String> {
    Ok(access_entries(auditor, "")
        .await?
        .into_iter()
        .filter_map(|e| Some((e["request_id"].as_str()?.to_string(), e)))
        .collect())
}

/// The members every access-log entry has (DESIGN.md "The access log"): the list the
/// backends' conformance checks hold their JSON to.
pub use throughcare_ledger::access::conformance::ENTRY_FIELDS;

/// Problems with one entry's shape (missing members, ill-typed hashes).
pub fn entry_shape_problems(e: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for f in ENTRY_FIELDS {
        if e.get(f).is_none() {
            out.push(format!("entry lacks {f}: {e}"));
        }
    }
    for f in ["prev", "hash"] {
        let ok = e[f]
            .as_str()
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            out.push(format!("entry {f} is not 64 hex: {e}"));
        }
    }
    if !e["seq"].is_u64() {
        out.push(format!("entry seq is not a number: {e}"));
    }
    if !e["review"].is_boolean() {
        out.push(format!("entry review is not a boolean: {e}"));
    }
    out
}
