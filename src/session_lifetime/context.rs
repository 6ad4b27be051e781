//! [`RequestContext`]: what every step of one request needs.

use std::sync::Arc;

use crate::config::Config;
use crate::policy::PolicyChoice;

/// What every step of one request needs, passed as one value: the layer's
/// configuration, its responder, and the policy the request is judged by.
/// Borrowed, so that the fast path copies nothing; a future that waits for
/// the store keeps the owned parts ([`OwnedContext`]).
pub(crate) struct RequestContext<'a, R> {
    pub(crate) config: &'a Arc<Config>,
    pub(crate) responder: &'a R,
    pub(crate) choice: PolicyChoice,
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
        }
    }
}

/// A [`RequestContext`] a future keeps while it waits.
pub(crate) struct OwnedContext<R> {
    config: Arc<Config>,
    responder: R,
    choice: PolicyChoice,
}

impl<R> OwnedContext<R> {
    /// The context, borrowed again.
    pub(crate) fn borrow(&self) -> RequestContext<'_, R> {
        RequestContext {
            config: &self.config,
            responder: &self.responder,
            choice: self.choice,
        }
    }
}
