//! Where a logout may send the browser: an allow-list set at startup.
//! (TEMPORARY STUB by the main engineer so the crate compiles; the helper
//! replaces this whole file with the real module.)

use http::HeaderValue;

/// Allow-list stub.
#[derive(Clone, Debug)]
pub struct LogoutRedirects {
    default: HeaderValue,
}

/// Error stub.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedirectConfigError {}

impl LogoutRedirects {
    /// Stub.
    pub fn new(default: &str) -> Result<Self, RedirectConfigError> {
        Ok(LogoutRedirects {
            default: HeaderValue::from_str(default).unwrap_or(HeaderValue::from_static("/")),
        })
    }
    /// Stub.
    pub fn allow(self, _target: &str) -> Result<Self, RedirectConfigError> {
        Ok(self)
    }
    /// Stub.
    pub fn is_allowed(&self, _return_to: &str) -> bool {
        false
    }
    /// Stub.
    pub fn target(&self, _return_to: Option<&str>) -> &HeaderValue {
        &self.default
    }
    /// Stub.
    pub fn default_target(&self) -> &HeaderValue {
        &self.default
    }
}
