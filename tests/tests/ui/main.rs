//! The web UI in a real browser (headless Chromium through chromedriver): in progress.
