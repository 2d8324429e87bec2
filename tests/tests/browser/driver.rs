//! The browser side of the browser tests: Debian's `chromium` driven through
//! `chromedriver` (W3C WebDriver, spoken by `fantoccini` over plain HTTP on loopback), one
//! chromedriver per test on a free loopback port, killed with its whole process group (the
//! browser included) when dropped. A page check runs the pinned axe-core in the page and
//! saves a full-page PNG under `target/browser-screenshots/<test>/<page>.png`.
//!
//! Everything comes from `scripts/browser.sh` (installs the packages when it may, fetches
//! the sha256-pinned axe-core); when it cannot provide them the tests panic saying so,
//! never skip.

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// The script that provides chromium, chromedriver and axe-core.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/browser.sh");

/// The WCAG tags the pages must pass (WCAG 2.2 AA, as issue 13 asks).
pub const AXE_TAGS: [&str; 5] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"];

/// Width of the window pages are checked and photographed at.
const WIDTH: u32 = 1280;
/// Height of the window pages are checked at (screenshots grow it to the page's height).
const HEIGHT: u32 = 900;

/// What `scripts/browser.sh` provides.
pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
    /// The source of axe.min.js, injected into every page checked.
    pub axe_source: String,
}

/// The tools, asked of `scripts/browser.sh` once per test process; a panic naming the
/// script and the packages when it fails.
pub fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let out = Command::new("bash")
            .arg(SCRIPT)
            .output()
            .unwrap_or_else(|e| {
                panic!("the browser tests need `bash {SCRIPT}` and it could not run: {e}")
            });
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            panic!(
                "the browser tests need Debian's chromium and chromium-driver and the pinned \
                 axe-core, and scripts/browser.sh failed:\n{}\nRun `bash scripts/browser.sh` \
                 (as root it installs the packages with apt-get) or install them with \
                 `apt-get install chromium chromium-driver`.",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let var = |name: &str| -> PathBuf {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .map(PathBuf::from)
                .unwrap_or_else(|| panic!("scripts/browser.sh printed no {name}=: {stdout:?}"))
        };
        let axe = var("THROUGHCARE_AXE_JS");
        let axe_source = std::fs::read_to_string(&axe)
            .unwrap_or_else(|e| panic!("cannot read axe-core at {}: {e}", axe.display()));
        Tools {
            chromium: var("THROUGHCARE_CHROMIUM"),
            chromedriver: var("THROUGHCARE_CHROMEDRIVER"),
            axe_source,
        }
    })
}

/// True when this process runs as root (chromium's sandbox refuses root without
/// `--no-sandbox`).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// A free TCP port on 127.0.0.1 (free when asked; chromedriver binds it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// One chromedriver process (and, through it, one chromium), in its own process group so
/// that dropping it kills the browser too, by that group's id.
pub struct Driver {
    child: Child,
    pub url: String,
    log: PathBuf,
}

impl Driver {
    /// Starts chromedriver on a free loopback port (it accepts local connections only) and
    /// waits until it listens.
    pub fn start(dir: &Path) -> Driver {
        use std::os::unix::process::CommandExt as _;
        let tools = tools();
        let log = dir.join("chromedriver.log");
        let mut last_error = String::new();
        // A port found free may be taken before chromedriver binds it: try a few.
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new(&tools.chromedriver)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", tools.chromedriver.display()));
            let mut driver = Driver {
                child,
                url: format!("http://127.0.0.1:{port}"),
                log: log.clone(),
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = driver.child.try_wait() {
                    last_error = format!("chromedriver exited with {status}");
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return driver;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if last_error.is_empty() {
                last_error = "chromedriver did not listen within 20 s".into();
            }
            driver.kill();
        }
        panic!("{last_error}; its log:\n{}", read_tail(&log));
    }

    /// The last lines of chromedriver's log, for failure messages.
    pub fn log_tail(&self) -> String {
        read_tail(&self.log)
    }

    /// SIGKILL to chromedriver's process group (chromedriver and the chromium it started).
    fn kill(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// One axe-core violation on one page.
#[derive(Debug, Clone)]
pub struct Violation {
    pub page: String,
    pub rule: String,
    pub impact: String,
    pub help: String,
    pub help_url: String,
    /// CSS selectors of the offending elements.
    pub targets: Vec<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{page}: {rule} ({impact}) {help} <{url}>\n      at {targets}",
            page = self.page,
            rule = self.rule,
            impact = self.impact,
            help = self.help,
            url = self.help_url,
            targets = self.targets.join(" | "),
        )
    }
}

/// Fails with every violation: page, rule, impact, help, help URL and selectors.
pub fn assert_no_violations(what: &str, violations: &[Violation]) {
    if let Some(report) = violations_report(what, violations) {
        panic!("{report}");
    }
}

/// The failure text for `violations`, one per line; `None` when there are none.
pub fn violations_report(what: &str, violations: &[Violation]) -> Option<String> {
    if violations.is_empty() {
        return None;
    }
    let mut text = format!(
        "{what}: axe-core {} found {} violation(s) of {}:\n",
        axe_version(),
        violations.len(),
        AXE_TAGS.join(", ")
    );
    for v in violations {
        let _ = writeln!(text, "  - {v}");
    }
    Some(text)
}

/// The pinned axe-core's version, from the banner of its source.
pub fn axe_version() -> String {
    tools()
        .axe_source
        .lines()
        .next()
        .and_then(|l| l.split("axe v").nth(1))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "?".into())
}

/// A headless chromium session.
pub struct Browser {
    pub client: Client,
    pub base: String,
    shots: PathBuf,
    // Last: dropped after the client, and it kills the browser.
    driver: Driver,
    _dir: tempfile::TempDir,
}

impl Browser {
    /// A fresh browser (its own empty profile) for `test`, whose pages are at `base`.
    /// Screenshots go to `target/browser-screenshots/<test>/` (emptied first).
    pub async fn open(base: &str, test: &str) -> Browser {
        let tools = tools();
        let dir = tempfile::tempdir().expect("a temp dir for the browser profile");
        let driver = Driver::start(dir.path());
        let mut args = vec![
            "--headless=new".to_string(),
            format!("--window-size={WIDTH},{HEIGHT}"),
            format!("--user-data-dir={}", dir.path().join("profile").display()),
            "--force-device-scale-factor=1".into(),
            "--hide-scrollbars".into(),
            "--lang=en-GB".into(),
            // Loopback only: no update checks, sync, or other calls home.
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-extensions".into(),
            "--disable-default-apps".into(),
            // Containers often have a tiny /dev/shm.
            "--disable-dev-shm-usage".into(),
        ];
        if running_as_root() {
            args.push("--no-sandbox".into());
        }
        let caps = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": {"script": 60_000, "pageLoad": 30_000, "implicit": 0},
            "goog:chromeOptions": {"binary": tools.chromium, "args": args},
        });
        let Value::Object(caps) = caps else {
            unreachable!("capabilities are an object")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no WebDriver session from chromedriver at {}: {e}\nchromedriver log:\n{}",
                    driver.url,
                    driver.log_tail()
                )
            });
        let shots = screenshot_root().join(test);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", shots.display()));
        Browser {
            client,
            base: base.trim_end_matches('/').to_string(),
            shots,
            driver,
            _dir: dir,
        }
    }

    /// Ends the WebDriver session (chromium exits) and stops chromedriver.
    pub async fn finish(self) {
        let Browser { client, driver, .. } = self;
        let _ = client.close().await;
        drop(driver);
    }

    /// Navigates to `path` on the server.
    pub async fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.client
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("navigating to {url}: {e}"));
    }

    /// The path (and query) of the current page.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("the current URL");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Waits (up to 15 s) until the current page's path is `path`.
    pub async fn wait_for_path(&self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now = self.path().await;
            let ready = self
                .client
                .execute("return document.readyState;", vec![])
                .await
                .ok();
            if now == path && ready.as_ref().and_then(Value::as_str) == Some("complete") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "waited 15 s for {path}; the browser is at {now}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to 15 s) until the page's visible text contains `needle`: for a form that
    /// answers on the same path (the page's path says nothing about whether the answer has
    /// loaded yet).
    #[allow(dead_code)] // browser.rs uses it; browser_flows.rs, which shares this file, does not
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = match self.client.find(Locator::Css("body")).await {
                Ok(body) => body.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "waited 15 s for {needle:?} on {}; the page says:\n{text}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The page's HTML as the browser has it.
    pub async fn html(&self) -> String {
        self.client.source().await.expect("the page source")
    }

    /// The visible text of the page.
    pub async fn text(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .expect("a body")
            .text()
            .await
            .expect("the body's text")
    }

    /// Signs in through the sign-in form, as a person would: types the token into the
    /// form's `token` field and presses its button.
    pub async fn submit_sign_in(&self, token: &str) {
        self.goto("/sign-in").await;
        let form = r#"form[action="/sign-in"]"#;
        let field = self
            .client
            .find(Locator::Css(&format!(r#"{form} [name="token"]"#)))
            .await
            .expect("the sign-in form's token field");
        field.send_keys(token).await.expect("typing the token");
        self.client
            .find(Locator::Css(&format!(
                r#"{form} button, {form} [type="submit"]"#
            )))
            .await
            .expect("the sign-in form's button")
            .click()
            .await
            .expect("pressing sign in");
    }

    /// Signs out with the page's sign-out button.
    pub async fn submit_sign_out(&self) {
        let form = r#"form[action="/sign-out"]"#;
        self.client
            .find(Locator::Css(&format!(
                r#"{form} button, {form} [type="submit"]"#
            )))
            .await
            .expect("a sign-out button on the page")
            .click()
            .await
            .expect("pressing sign out");
    }

    /// Runs axe-core on the current page and saves its screenshot as `<name>.png`:
    /// the violations, each labelled with `name`.
    pub async fn check_page(&self, name: &str) -> Vec<Violation> {
        let violations = self.axe(name).await;
        self.screenshot(name).await;
        violations
    }

    /// axe-core's violations on the current page (injected fresh: navigation drops it).
    pub async fn axe(&self, name: &str) -> Vec<Violation> {
        let injected = self
            .client
            .execute(
                &format!(
                    "{}\n;return (typeof window.axe === 'object') ? window.axe.version : null;",
                    tools().axe_source
                ),
                vec![],
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: injecting axe-core: {e}"));
        assert!(
            injected.as_str().is_some(),
            "{name}: axe-core did not load in the page (got {injected})"
        );
        // WebDriver's Execute Script awaits a returned promise.
        let script = r#"
            return window.axe.run(document, {runOnly: arguments[0]}).then(function (r) {
              return {
                passes: r.passes.length,
                incomplete: r.incomplete.map(function (v) { return v.id; }),
                violations: r.violations.map(function (v) {
                  return {
                    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                    targets: v.nodes.map(function (n) { return n.target.join(' '); })
                  };
                })
              };
            });"#;
        let result = self
            .client
            .execute(script, vec![json!(AXE_TAGS)])
            .await
            .unwrap_or_else(|e| panic!("{name}: running axe-core: {e}"));
        let passes = result["passes"].as_u64().unwrap_or(0);
        // A run that checked nothing is a broken harness, not a clean page.
        assert!(
            passes > 0,
            "{name}: axe-core passed no rule at all, so it did not check the page: {result}"
        );
        let violations: Vec<Violation> = result["violations"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: axe-core returned no violations list: {result}"))
            .iter()
            .map(|v| Violation {
                page: name.to_string(),
                rule: v["id"].as_str().unwrap_or("?").into(),
                impact: v["impact"].as_str().unwrap_or("?").into(),
                help: v["help"].as_str().unwrap_or("").into(),
                help_url: v["helpUrl"].as_str().unwrap_or("").into(),
                targets: v["targets"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        eprintln!(
            "axe {} on {name} ({}): {} violation(s) [{}], {passes} rule(s) passed, needs review: {}",
            axe_version(),
            self.path().await,
            violations.len(),
            violations
                .iter()
                .map(|v| v.rule.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            result["incomplete"]
        );
        violations
    }

    /// Saves a PNG of the whole page (the window grown to the page's height) as
    /// `<name>.png` in this test's screenshot folder.
    pub async fn screenshot(&self, name: &str) {
        let height = self
            .client
            .execute(
                "return Math.ceil(Math.max(document.documentElement.scrollHeight, \
                 document.body ? document.body.scrollHeight : 0) \
                 + (window.outerHeight - window.innerHeight));",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_f64())
            .map(|h| (h as u32).clamp(HEIGHT, 8_000))
            .unwrap_or(HEIGHT);
        let grown = height > HEIGHT;
        if grown {
            let _ = self.client.set_window_size(WIDTH, height).await;
        }
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("{name}: screenshot: {e}"));
        if grown {
            let _ = self.client.set_window_size(WIDTH, HEIGHT).await;
        }
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{name}: the screenshot is not a PNG"
        );
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// The folder this test's screenshots go to.
    pub fn screenshot_dir(&self) -> &Path {
        &self.shots
    }
}

/// `<target dir>/browser-screenshots`: the target dir is where cargo put this test binary
/// (`<target>/<profile>/deps/browser-…`), so `CARGO_TARGET_DIR` is followed.
pub fn screenshot_root() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("<target>/<profile>/deps/<test>");
    target.join("browser-screenshots")
}
