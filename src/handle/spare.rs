//! One spare [`HandleInner`] per thread: the shared state of a request's
//! handle, reused by the next request on the thread instead of allocated
//! anew.
//!
//! A request's handle is shared between the handler and the layer, which
//! reads what the handler did once the response is back; so it lives behind
//! an `Arc`. When the layer is done with it and no clone is left (the
//! handler kept none), the allocation is still good: it waits here, emptied
//! (nothing of the request stays behind), and the next request on the
//! thread fills it. A handle that a handler kept (a spawned task, a stored
//! clone) is never reused; it is freed with its last clone, as any `Arc`.
//!
//! The spare holds no configuration, so it keeps no layer (and none of its
//! store's connections) alive after the layer is dropped.

use std::cell::Cell;
use std::sync::{Arc, Mutex, PoisonError};

use super::state::{HandleInner, HandleState};
use crate::policy::PolicyChoice;

thread_local! {
    static SPARE: Cell<Option<Arc<HandleInner>>> = const { Cell::new(None) };
}

/// The shared state of a new handle: the thread's spare, filled, or a new
/// allocation when there is none.
#[inline]
pub(super) fn fill(choice: PolicyChoice, state: HandleState) -> Arc<HandleInner> {
    // `try_with`: during thread teardown there is no spare to take.
    if let Ok(Some(mut spare)) = SPARE.try_with(Cell::take) {
        if let Some(inner) = Arc::get_mut(&mut spare) {
            inner.choice = choice;
            *inner
                .state
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner) = state;
            return spare;
        }
    }
    Arc::new(HandleInner {
        choice,
        state: Mutex::new(state),
    })
}

/// Keeps `inner` as the thread's spare if it is the last reference to its
/// state and its lock was never poisoned; otherwise lets it go.
#[inline]
pub(super) fn keep(mut inner: Arc<HandleInner>) {
    let Some(unique) = Arc::get_mut(&mut inner) else {
        return;
    };
    if unique.state.is_poisoned() {
        return;
    }
    // What the request left (its session's record, IDs) is dropped now,
    // not when the spare is next filled.
    unique
        .state
        .get_mut()
        .unwrap_or_else(PoisonError::into_inner)
        .empty();
    // A spare already there (a request that finished inside another's
    // handler on this thread) is freed; during teardown, `inner` is.
    let _ = SPARE.try_with(|spare| spare.set(Some(inner)));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handle's state as the spare keeps it: nothing of any request.
    const EMPTY: HandleState = HandleState::EMPTY;

    fn state_with_rejection() -> HandleState {
        HandleState {
            rejected: Some(crate::rejection::RejectReason::Unknown),
            ..EMPTY
        }
    }

    #[test]
    fn a_handle_no_one_kept_is_reused_emptied() {
        let first = fill(PolicyChoice::default(), state_with_rejection());
        let address = Arc::as_ptr(&first);
        keep(first);
        let spare = SPARE.with(Cell::take).expect("kept as the spare");
        assert!(spare.state.lock().unwrap().rejected.is_none(), "emptied");
        SPARE.with(|cell| cell.set(Some(spare)));

        let second = fill(PolicyChoice::default(), state_with_rejection());
        assert_eq!(Arc::as_ptr(&second), address, "the same allocation");
        assert!(
            second.state.lock().unwrap().rejected.is_some(),
            "filled anew"
        );
    }

    #[test]
    fn a_kept_handle_lets_go_of_everything_its_request_left() {
        let subject: Arc<str> = Arc::from("alice");
        let id = crate::id::SessionId::generate().unwrap();
        let state = HandleState {
            cookie: super::super::state::CookieChange::Write,
            unconfirmed: Some(id),
            pending: Some(super::super::state::PendingSession {
                subject: Some(Arc::clone(&subject)),
                remember_me: true,
                login: true,
                label: Some(Arc::clone(&subject)),
            }),
            signed_in: true,
            ..state_with_rejection()
        };
        keep(fill(PolicyChoice::default(), state));
        assert_eq!(Arc::strong_count(&subject), 1, "its strings dropped");
        let spare = SPARE.with(Cell::take).expect("kept as the spare");
        let emptied = spare.state.lock().unwrap();
        assert!(emptied.session.is_none());
        assert!(emptied.cookie == super::super::state::CookieChange::Keep);
        assert!(emptied.rejected.is_none());
        assert!(emptied.unconfirmed.is_none());
        assert!(emptied.pending.is_none());
        assert!(!emptied.signed_in);
    }

    #[test]
    fn a_handle_with_a_clone_left_is_never_reused() {
        let first = fill(PolicyChoice::default(), state_with_rejection());
        let kept_by_handler = Arc::clone(&first);
        keep(first);
        assert!(SPARE.with(Cell::take).is_none(), "not kept");
        let second = fill(PolicyChoice::default(), EMPTY);
        assert!(!Arc::ptr_eq(&second, &kept_by_handler));
        assert!(
            kept_by_handler.state.lock().unwrap().rejected.is_some(),
            "the handler's clone keeps its state"
        );
    }

    #[test]
    fn a_poisoned_handle_is_never_reused() {
        let first = fill(PolicyChoice::default(), EMPTY);
        let clone = Arc::clone(&first);
        let _ = std::thread::spawn(move || {
            let _guard = clone.state.lock().unwrap();
            panic!("poisons the lock");
        })
        .join();
        assert!(first.state.is_poisoned());
        keep(first);
        assert!(SPARE.with(Cell::take).is_none(), "not kept");
        let second = fill(PolicyChoice::default(), EMPTY);
        assert!(!second.state.is_poisoned());
    }
}
