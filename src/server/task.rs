//! Spawning the run's tasks so that a panic in one fails the run instead of vanishing.
//!
//! tokio catches a panic in a spawned task and hands it to whoever awaits the task's handle;
//! most of the run's tasks (a destination's sender, a workload action, an adversary) are never
//! awaited, so a bug that panics in one would leave a server quietly broken and the run would
//! report results for a simulation that did not happen. Tasks spawned here record the first
//! panic's message for the runner, which fails the run with it ([`take_panic`]).
//!
//! Invariants: the record is per thread (a run lives on one thread); the runner takes it
//! before a run starts and after it ends, so one run's panic never reaches another's result.

use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    static FIRST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Spawns `future` on the current `LocalSet`; a panic in it is recorded (see the module doc)
/// and ends the task, whose handle then gives `None`.
pub fn spawn_local<F>(future: F) -> tokio::task::JoinHandle<Option<F::Output>>
where
    F: Future + 'static,
    F::Output: 'static,
{
    tokio::task::spawn_local(async move {
        let caught = CatchPanic {
            inner: Box::pin(future),
        }
        .await;
        caught
            .map_err(|message| {
                FIRST_PANIC.with(|first| {
                    first.borrow_mut().get_or_insert(message);
                });
            })
            .ok()
    })
}

/// The message of the first panic in a task spawned here on this thread since the last call.
pub fn take_panic() -> Option<String> {
    FIRST_PANIC.with(|first| first.borrow_mut().take())
}

/// Polls `inner`, turning a panic into an error carrying its message.
struct CatchPanic<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.get_mut().inner.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_local(body: impl Future<Output = ()> + 'static) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&runtime, body);
    }

    #[test]
    fn a_panic_in_a_task_is_recorded_and_taken_once() {
        take_panic();
        run_local(async {
            let handle = spawn_local(async { panic!("the sender broke") });
            let output: Option<()> = handle.await.expect("the panic is caught inside the task");
            assert_eq!(output, None);
            spawn_local(async { panic!("a second one") }).await.unwrap();
        });
        assert_eq!(take_panic().as_deref(), Some("the sender broke"));
        assert_eq!(take_panic(), None);
    }

    #[test]
    fn a_task_that_does_not_panic_records_nothing() {
        take_panic();
        run_local(async {
            let output = spawn_local(async {
                tokio::task::yield_now().await;
                7
            })
            .await
            .unwrap();
            assert_eq!(output, Some(7));
        });
        assert_eq!(take_panic(), None);
    }
}
