//! The web UI in a real browser: headless Chromium driven through chromedriver (fantoccini)
//! against our broker started in-process (`tests::start_broker`, statistics every second so
//! rates move quickly), with real AMQP clients over real sockets. Tests assert what a user
//! sees, through the selector contract of `broker/ui/README.md`, and save screenshots to
//! `target/ui-screenshots/<test>-<page>.png` (each checked not to be blank).
//!
//! Each test starts its own chromedriver (`/usr/bin/chromedriver`, `/usr/bin/chromium`; Debian
//! packages `chromium chromium-driver`; `UI_CHROMEDRIVER` / `UI_CHROMIUM` point elsewhere).
//! When they are missing the tests pass after one line on stderr, unless `UI_TESTS=required`
//! (CI), which makes that a failure.
//!
//! - `pages`: login (wrong password, then guest), every page of the nav, publish through the
//!   UI and get the message back, definitions export and import, the add forms (exchange,
//!   binding, user, vhost, permission) and two-click buttons (unbind, purge, close, delete).
//! - `course`: the course's sales flow with the real `producer`, `email_consumer` and
//!   `loyalty_consumer` binaries, watched in the UI.

mod course;
mod pages;
mod support;

/// Our broker on 127.0.0.1:0 with its management API, a fresh data folder named after the
/// test, and statistics sampled every second.
fn broker(name: &str) -> tests::Broker {
    tests::start_broker(broker::Config {
        data_dir: tests::fresh_data_dir(&format!("ui-{name}")),
        stats_interval: std::time::Duration::from_secs(1),
        ..broker::Config::default()
    })
}
