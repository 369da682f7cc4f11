//! A value announced once to every task awaiting it (the answer to a transaction still being
//! processed, the end of a join), with the waiting tasks woken in the order they began to wait.
//!
//! tokio's `watch` channel cannot serve here: it spreads its waiters over eight queues picked
//! by the runtime's own random generator, which no seed of ours controls, so two tasks
//! waiting on one value wake in a random order, and a run with the same seed can take
//! another path (measured: three runs of one seed, three different results).
//!
//! Invariants: the value is announced at most once; dropping the sender unannounced wakes
//! every waiter with `None`; waiters are woken first-come first-woken; nothing here depends
//! on anything but the order in which tasks were polled.

use std::cell::RefCell;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

enum State<T> {
    Pending,
    Announced(T),
    /// The sender was dropped without announcing anything.
    Abandoned,
}

struct Shared<T> {
    state: State<T>,
    /// Tasks waiting, in the order they began to wait.
    waiting: Vec<Waker>,
}

/// Announces the value; dropping it unannounced tells the waiters none will come.
pub(crate) struct OnceSender<T> {
    shared: Rc<RefCell<Shared<T>>>,
}

/// Awaits the value; clones await the same one.
pub(crate) struct OnceReceiver<T> {
    shared: Rc<RefCell<Shared<T>>>,
}

impl<T> Clone for OnceReceiver<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

/// A sender and a receiver of one value not announced yet.
pub(crate) fn once_channel<T: Clone>() -> (OnceSender<T>, OnceReceiver<T>) {
    let shared = Rc::new(RefCell::new(Shared {
        state: State::Pending,
        waiting: Vec::new(),
    }));
    (
        OnceSender {
            shared: shared.clone(),
        },
        OnceReceiver { shared },
    )
}

impl<T> OnceSender<T> {
    /// Announces `value` and wakes every waiter, first come first. A second announcement is
    /// ignored: the first one is the answer.
    pub(crate) fn announce(&self, value: T) {
        self.settle(State::Announced(value));
    }

    fn settle(&self, state: State<T>) {
        let waiting = {
            let mut shared = self.shared.borrow_mut();
            if !matches!(shared.state, State::Pending) {
                return;
            }
            shared.state = state;
            std::mem::take(&mut shared.waiting)
        };
        for waker in waiting {
            waker.wake();
        }
    }
}

impl<T> Drop for OnceSender<T> {
    fn drop(&mut self) {
        self.settle(State::Abandoned);
    }
}

impl<T: Clone> OnceReceiver<T> {
    /// The value once announced, or `None` once the sender was dropped without one.
    pub(crate) async fn recv(&self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut shared = self.shared.borrow_mut();
        match &shared.state {
            State::Announced(value) => Poll::Ready(Some(value.clone())),
            State::Abandoned => Poll::Ready(None),
            State::Pending => {
                // A task polled again keeps its place rather than queueing twice.
                if !shared.waiting.iter().any(|w| w.will_wake(cx.waker())) {
                    shared.waiting.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `count` tasks that each await `receiver` and then log their index, lets them all
    /// begin to wait, then calls `settle`; returns the log and what each task received.
    fn wake_order(
        count: usize,
        settle: impl FnOnce(OnceSender<u32>),
    ) -> (Vec<usize>, Vec<Option<u32>>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async move {
            let (sender, receiver) = once_channel::<u32>();
            let log = Rc::new(RefCell::new(Vec::new()));
            let tasks: Vec<_> = (0..count)
                .map(|index| {
                    let (receiver, log) = (receiver.clone(), log.clone());
                    tokio::task::spawn_local(async move {
                        let value = receiver.recv().await;
                        log.borrow_mut().push(index);
                        value
                    })
                })
                .collect();
            tokio::task::yield_now().await;
            settle(sender);
            let mut received = Vec::new();
            for task in tasks {
                received.push(task.await.expect("the task ran"));
            }
            let order = log.borrow().clone();
            (order, received)
        })
    }

    #[test]
    fn waiters_wake_in_the_order_they_began_to_wait() {
        let (order, received) = wake_order(32, |sender| sender.announce(7));
        assert_eq!(order, (0..32).collect::<Vec<_>>());
        assert!(received.iter().all(|value| *value == Some(7)));
    }

    #[test]
    fn a_sender_dropped_unannounced_wakes_every_waiter_with_none() {
        let (order, received) = wake_order(5, drop);
        assert_eq!(order, (0..5).collect::<Vec<_>>());
        assert!(received.iter().all(Option::is_none));
    }

    #[test]
    fn a_value_announced_before_anyone_waits_is_received_and_the_first_announcement_stays() {
        let (sender, receiver) = once_channel::<u32>();
        sender.announce(1);
        sender.announce(2);
        drop(sender);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        assert_eq!(runtime.block_on(receiver.recv()), Some(1));
    }
}
