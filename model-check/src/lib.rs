//! Loom model checks of tower-session-lifetime's `MemoryStore`: the
//! scenarios are in `tests/`, run by `scripts/model-check`.
