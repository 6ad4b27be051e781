//! [`RequestContext`]: what every step of one request needs.

use std::sync::Arc;

use crate::config::Config;
use crate::id::IdText;
use crate::policy::PolicyChoice;

/// What every step of one request needs, passed as one value: the layer's
/// configuration, its responder, the policy the request is judged by, and
/// the session ID as the request's cookie spelled it.
/// Borrowed, so that the fast path copies nothing; a future that waits for
/// the store keeps the owned parts ([`OwnedContext`]).
pub(crate) struct RequestContext<'a, R> {
    pub(crate) config: &'a Arc<Config>,
    pub(crate) responder: &'a R,
    pub(crate) choice: PolicyChoice,
    /// The cookie's ID as spelled, when it named a well-formed one: a
    /// followed cookie's `Set-Cookie` that repeats it is known by
    /// comparing, without decoding it again.
    pub(crate) presented_text: Option<&'a IdText>,
}

// Derived `Clone`/`Copy` would ask `R: Copy`; the references never need it.
impl<R> Clone for RequestContext<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for RequestContext<'_, R> {}

impl<R> RequestContext<'_, R> {
    /// The owned parts, for a future that outlives the call.
    pub(crate) fn to_owned(self) -> OwnedContext<R>
    where
        R: Clone,
    {
        OwnedContext {
            config: Arc::clone(self.config),
            responder: self.responder.clone(),
            choice: self.choice,
            presented_text: self.presented_text.copied(),
        }
    }
}

/// A [`RequestContext`] a future keeps while it waits.
pub(crate) struct OwnedContext<R> {
    config: Arc<Config>,
    responder: R,
    choice: PolicyChoice,
    presented_text: Option<IdText>,
}

impl<R> OwnedContext<R> {
    /// The context, borrowed again.
    pub(crate) fn borrow(&self) -> RequestContext<'_, R> {
        RequestContext {
            config: &self.config,
            responder: &self.responder,
            choice: self.choice,
            presented_text: self.presented_text.as_ref(),
        }
    }
}
