//! The browser harness: chromedriver as a child process on a free port, a fantoccini session on
//! it (headless Chromium), a bounded polling helper around `find`/`attr`/`text`, and checked
//! screenshots.

use std::collections::HashSet;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use tests::Broker;

/// Chromium and chromedriver as Debian installs them; `UI_CHROMIUM` / `UI_CHROMEDRIVER`
/// name others.
fn chromium() -> String {
    std::env::var("UI_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

fn chromedriver() -> String {
    std::env::var("UI_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into())
}

/// How long any wait for the page lasts before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);
const STEP: Duration = Duration::from_millis(100);

/// Whether Chromium and chromedriver are installed. Without them the UI tests pass after one
/// line on stderr, unless `UI_TESTS=required` (CI) makes that a failure.
fn browser_installed() -> bool {
    let missing: Vec<String> = [chromium(), chromedriver()]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("UI_TESTS").as_deref() != Ok("required"),
        "UI_TESTS=required but {missing:?} is missing: `apt-get install chromium chromium-driver`"
    );
    eprintln!(
        "ui: {missing:?} not installed, UI test skipped (apt-get install chromium chromium-driver)"
    );
    false
}

/// Polls `check` every 100 ms until it returns `Some`, failing with `what` (and the last thing
/// seen) after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) => assert!(
                Instant::now() < deadline,
                "timed out after {WAIT:?} waiting for {what}; last seen: {last}"
            ),
        }
        tokio::time::sleep(STEP).await;
    }
}

/// chromedriver, killed on drop (after ending its browser session if the test did not).
struct Driver {
    child: Child,
    addr: SocketAddr,
    /// The open session, ended over plain HTTP on drop so no Chromium is left behind when a
    /// test panics.
    session: Option<String>,
}

impl Driver {
    async fn start(log: &Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(log).expect("chromedriver log"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver()));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let driver = Driver {
            child,
            addr,
            session: None,
        };
        eventually("chromedriver to listen", || async move {
            TcpStream::connect(addr)
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .await;
        driver
    }

    fn end_session(&mut self, id: &str) {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)) else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let req = format!(
            "DELETE /session/{id} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        );
        if s.write_all(req.as_bytes()).is_err() {
            return;
        }
        // chromedriver answers once the browser has quit (and may keep the connection open).
        let mut got = Vec::new();
        let mut buf = [0; 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(id) = self.session.take() {
            self.end_session(&id);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A logged-out browser tab on our broker's management UI.
pub struct Ui {
    pub client: Client,
    driver: Driver,
    /// `http://127.0.0.1:<port>` of the management server (UI and API).
    pub base: String,
    test: &'static str,
    /// Downloads (definitions exports) land here.
    pub downloads: tempfile::TempDir,
}

impl Ui {
    /// Starts chromedriver and a headless Chromium session for the test `test`; `None` when they
    /// are not installed (see [`browser_installed`]).
    pub async fn start(test: &'static str, broker: &Broker) -> Option<Ui> {
        if !browser_installed() {
            return None;
        }
        let downloads = tempfile::tempdir().expect("downloads dir");
        let mut driver = Driver::start(&downloads.path().join("chromedriver.log")).await;
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--window-size=1280,900", "--disable-dev-shm-usage"],
                "prefs": {
                    "download.default_directory": downloads.path(),
                    "download.prompt_for_download": false,
                },
            }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!("an object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://{}", driver.addr))
            .await
            .unwrap_or_else(|e| panic!("cannot open a Chromium session through chromedriver: {e}"));
        driver.session = client.session_id().await.ok().flatten();
        Some(Ui {
            client,
            driver,
            base: broker.api().to_string(),
            test,
            downloads,
        })
    }

    /// Ends the browser session and stops chromedriver.
    pub async fn close(self) {
        let Ui {
            client, mut driver, ..
        } = self;
        if client.close().await.is_ok() {
            driver.session = None;
        }
    }

    /// Opens the UI at `hash` (`""` for the start page, `"#/queues"`, …).
    pub async fn open(&self, hash: &str) {
        let url = format!("{}/{hash}", self.base);
        self.client
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// Logs in through the login form and waits for the header to name the user.
    pub async fn login(&self, user: &str, password: &str) {
        self.fill("#login-user", user).await;
        self.fill("#login-password", password).await;
        self.click("#login-submit").await;
        self.wait_text("[data-testid=current-user]", |t| t == user)
            .await;
    }

    /// The element matching `css`, once there is one.
    pub async fn find(&self, css: &str) -> Element {
        eventually(&format!("an element matching {css}"), || async {
            self.client
                .find(Locator::Css(css))
                .await
                .map_err(|e| e.to_string())
        })
        .await
    }

    /// Every element matching `css` right now.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find_all {css}: {e}"))
    }

    /// Clicks the element matching `css` once it is there and clickable.
    pub async fn click(&self, css: &str) {
        eventually(&format!("a click on {css}"), || async {
            let el = self
                .client
                .find(Locator::Css(css))
                .await
                .map_err(|e| e.to_string())?;
            el.click().await.map_err(|e| e.to_string())
        })
        .await
    }

    /// Replaces the text of the input or textarea matching `css`.
    pub async fn fill(&self, css: &str, text: &str) {
        eventually(&format!("typing into {css}"), || async {
            let el = self
                .client
                .find(Locator::Css(css))
                .await
                .map_err(|e| e.to_string())?;
            el.clear().await.map_err(|e| e.to_string())?;
            el.send_keys(text).await.map_err(|e| e.to_string())
        })
        .await
    }

    /// Chooses the option with `value` in the select matching `css`.
    pub async fn select(&self, css: &str, value: &str) {
        eventually(&format!("option {value:?} of {css}"), || async {
            let el = self
                .client
                .find(Locator::Css(css))
                .await
                .map_err(|e| e.to_string())?;
            el.select_by_value(value).await.map_err(|e| e.to_string())
        })
        .await
    }

    /// Waits until the visible text of the element matching `css` satisfies `ok`; returns it.
    pub async fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        eventually(&format!("the text of {css}"), || async {
            let el = self
                .client
                .find(Locator::Css(css))
                .await
                .map_err(|e| e.to_string())?;
            let text = el.text().await.map_err(|e| e.to_string())?;
            if ok(&text) { Ok(text) } else { Err(text) }
        })
        .await
    }

    /// Waits until attribute `attr` of the element matching `css` satisfies `ok`; returns it.
    pub async fn wait_attr(&self, css: &str, attr: &str, ok: impl Fn(&str) -> bool) -> String {
        eventually(&format!("attribute {attr} of {css}"), || async {
            let el = self
                .client
                .find(Locator::Css(css))
                .await
                .map_err(|e| e.to_string())?;
            match el.attr(attr).await.map_err(|e| e.to_string())? {
                Some(v) if ok(&v) => Ok(v),
                other => Err(format!("{other:?}")),
            }
        })
        .await
    }

    /// Waits until the number in `data-value` of the element matching `css` satisfies `ok`.
    pub async fn wait_number(&self, css: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let v = self
            .wait_attr(css, "data-value", |v| v.parse().is_ok_and(&ok))
            .await;
        v.parse().expect("checked above")
    }

    /// Waits for a page of the UI to have been routed and drawn: `#view[data-route=route]`
    /// and its nav link active.
    pub async fn wait_route(&self, route: &str) {
        self.find(&format!("#view[data-route={route}]")).await;
        self.wait_attr(&format!("[data-testid=nav-{route}]"), "class", |c| {
            c.split(' ').any(|c| c == "active")
        })
        .await;
    }

    /// Scrolls the element matching `css` to the middle of the window (for a screenshot).
    pub async fn scroll_to(&self, css: &str) {
        let el = self.find(css).await;
        let arg = serde_json::to_value(&el).expect("element reference");
        self.client
            .execute("arguments[0].scrollIntoView({block: 'center'});", vec![arg])
            .await
            .unwrap_or_else(|e| panic!("scroll to {css}: {e}"));
    }

    /// Takes a screenshot to `target/ui-screenshots/<test>-<page>.png` and checks it is not
    /// blank.
    pub async fn screenshot(&self, page: &str) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("screenshot of {page}: {e}"));
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{}-{page}.png", self.test));
        std::fs::write(&path, &png).expect("write screenshot");
        assert_not_blank(&path, &png);
        path
    }
}

/// `target/ui-screenshots` (`CARGO_TARGET_TMPDIR` is `target/tmp`).
fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .join("ui-screenshots")
}

/// A drawn page has text, borders and colours: many distinct colours, none covering it all.
fn assert_not_blank(path: &Path, png: &[u8]) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("{} is not a PNG: {e}", path.display()));
    let mut buf = vec![
        0;
        reader
            .output_buffer_size()
            .expect("PNG size fits in memory")
    ];
    let info = reader.next_frame(&mut buf).expect("decode PNG");
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| &p[..channels.min(3)])
        .collect();
    let distinct: HashSet<&[u8]> = pixels.iter().copied().collect();
    assert!(
        info.width >= 1000 && info.height >= 700,
        "{}: {}x{} is not the 1280x900 window",
        path.display(),
        info.width,
        info.height
    );
    assert!(
        distinct.len() >= 32,
        "{} looks blank: {} distinct colours",
        path.display(),
        distinct.len()
    );
}
