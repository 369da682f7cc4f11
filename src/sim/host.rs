//! One simulated server as the lab holds it: what outlives a crash (its configuration, clock
//! skew and durable log), the incarnation running now, and a queue of local actions that the
//! driver hands it.
//!
//! Local actions run inside the server's own runtime (a turmoil host, or the fast fabric's
//! single runtime), never in the driver's: a task the server spawns, or a request it sends,
//! must belong to the server. The driver submits a closure; the host runs it against the
//! current incarnation and sends the result back.
//!
//! Invariants: at most one incarnation is current; a crash drops it and keeps only the durable
//! prefix of the log; observers read the current incarnation and never change it.

use crate::server::clock::ServerClock;
use crate::server::config::ServerConfig;
use crate::server::store::DurableLog;
use crate::server::transport::{LocalFuture, Transport};
use crate::server::{Homeserver, PduCache};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use tokio::sync::{Notify, oneshot};

type Action = Box<dyn FnOnce(Homeserver) -> LocalFuture<()>>;

/// A server of the lab across its incarnations.
pub struct ServerSlot {
    pub name: String,
    config: ServerConfig,
    clock: ServerClock,
    log: DurableLog,
    current: RefCell<Option<Homeserver>>,
    incarnations: Cell<u64>,
    actions: RefCell<VecDeque<Action>>,
    wakeup: Notify,
    /// Shared with the other servers of the run, and kept across this server's crashes.
    pdu_cache: Option<Rc<PduCache>>,
}

/// Why an action did not run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("server {0} is down")]
    Down(String),
}

impl ServerSlot {
    pub fn new(config: ServerConfig, clock: ServerClock) -> Rc<Self> {
        Self::sharing(config, clock, None)
    }

    /// A slot whose incarnations share parsed and verified PDUs through `pdu_cache`.
    pub fn sharing(
        config: ServerConfig,
        clock: ServerClock,
        pdu_cache: Option<Rc<PduCache>>,
    ) -> Rc<Self> {
        let log = match config.log_records_kept {
            true => DurableLog::new(),
            false => DurableLog::digest_only(),
        };
        Rc::new(Self {
            name: config.name.clone(),
            config,
            clock,
            log,
            current: RefCell::new(None),
            incarnations: Cell::new(0),
            actions: RefCell::new(VecDeque::new()),
            wakeup: Notify::new(),
            pdu_cache,
        })
    }

    /// Starts a new incarnation from the durable log. Call inside the server's runtime.
    pub fn boot(&self, transport: Rc<dyn Transport>) -> Homeserver {
        let incarnation = self.incarnations.get() + 1;
        self.incarnations.set(incarnation);
        let server = Homeserver::with_pdu_cache(
            self.config.clone(),
            self.clock.clone(),
            transport,
            self.log.clone(),
            incarnation,
            self.pdu_cache.clone(),
        )
        .expect("a log written by our own store replays");
        *self.current.borrow_mut() = Some(server.clone());
        server
    }

    /// Drops the current incarnation; what was not flushed to the log is lost.
    pub fn crash(&self) {
        self.current.borrow_mut().take();
        self.log.crash();
        // Actions queued for the dead incarnation are dropped; their callers see `Down`.
        self.actions.borrow_mut().clear();
    }

    /// The running incarnation, for observers.
    pub fn current(&self) -> Option<Homeserver> {
        self.current.borrow().clone()
    }

    pub fn incarnations(&self) -> u64 {
        self.incarnations.get()
    }

    pub fn clock(&self) -> &ServerClock {
        &self.clock
    }

    pub fn log(&self) -> &DurableLog {
        &self.log
    }

    /// Runs queued actions as they come, each in its own task. Spawn inside the server's
    /// runtime after [`ServerSlot::boot`].
    pub async fn run_actions(self: Rc<Self>) {
        loop {
            let next = self.actions.borrow_mut().pop_front();
            match (next, self.current()) {
                (Some(action), Some(server)) => {
                    crate::server::task::spawn_local(action(server));
                }
                (Some(_), None) => {}
                (None, _) => self.wakeup.notified().await,
            }
        }
    }

    /// Runs `action` on the server and waits for its result.
    pub async fn call<T, F, Fut>(&self, action: F) -> Result<T, ActionError>
    where
        T: 'static,
        F: FnOnce(Homeserver) -> Fut + 'static,
        Fut: Future<Output = T> + 'static,
    {
        if self.current().is_none() {
            return Err(ActionError::Down(self.name.clone()));
        }
        let (reply, answer) = oneshot::channel();
        let boxed: Action = Box::new(move |server| {
            Box::pin(async move {
                let _ = reply.send(action(server).await);
            })
        });
        self.actions.borrow_mut().push_back(boxed);
        self.wakeup.notify_one();
        answer
            .await
            .map_err(|_| ActionError::Down(self.name.clone()))
    }
}
