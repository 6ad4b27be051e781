//! Every line the one global `tracing` subscriber of a test binary writes.
//!
//! One global subscriber: a thread's own would miss the events whose
//! callsites another test's thread registered first (tracing caches their
//! interest). Tests tell their lines apart by what they name.

use std::io;
use std::sync::{Arc, Mutex, OnceLock};

/// The lines written so far, by every test of the binary.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The binary's subscriber (every level, no time stamps, no colours),
    /// installed by the first call.
    pub fn global() -> Self {
        static CAPTURED: OnceLock<Captured> = OnceLock::new();
        CAPTURED
            .get_or_init(|| {
                let captured = Captured::default();
                let writer = captured.clone();
                let subscriber = tracing_subscriber::fmt()
                    .with_writer(move || writer.clone())
                    .with_max_level(tracing::Level::TRACE)
                    .without_time()
                    .with_ansi(false)
                    .finish();
                tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
                captured
            })
            .clone()
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The lines that contain every one of `needles`.
    pub fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.text()
            .lines()
            .filter(|line| needles.iter().all(|needle| line.contains(needle)))
            .map(str::to_owned)
            .collect()
    }
}
