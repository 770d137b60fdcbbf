//! Where a project's frames go.
//!
//! - [`Outlet`]: a transport thread's clients, of every project, at once. The WebSocket
//!   transport has one per app worker: a broadcast is one delivery per worker however many of
//!   the project's clients it serves, and a batch of deliveries is one wake.
//! - A mailbox ([`Sender`], [`Outbox`]): one client's own capped queue, for a client read in
//!   this process ([`super::Connection::recv`]). A client `cap` frames behind is closed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;

use super::Close;

struct Queue {
    frames: VecDeque<Arc<[u8]>>,
    /// False once the project let go of the client (its [`Sender`] dropped).
    open: bool,
    /// Why the project closed the client, if it did.
    kicked: Option<Close>,
}

struct MailboxState {
    queue: Mutex<Queue>,
    waker: AtomicWaker,
    cap: usize,
}

/// A mailbox holding at most `cap` frames.
pub(crate) fn mailbox(cap: usize) -> (Sender, Outbox) {
    let shared = Arc::new(MailboxState {
        queue: Mutex::new(Queue {
            frames: VecDeque::new(),
            open: true,
            kicked: None,
        }),
        waker: AtomicWaker::new(),
        cap,
    });
    (Sender(shared.clone()), Outbox(shared))
}

/// The project's end; dropping it closes the mailbox (after the frames already in it).
pub(crate) struct Sender(Arc<MailboxState>);

impl Sender {
    /// Queues `frame`; false (and not queued) when the client is `cap` frames behind.
    pub fn push(&self, frame: Arc<[u8]>) -> bool {
        let queued = match self.0.queue.lock() {
            Ok(mut q) if q.frames.len() < self.0.cap => {
                q.frames.push_back(frame);
                true
            }
            _ => false,
        };
        if queued {
            self.0.waker.wake();
        }
        queued
    }

    /// Records why the client is being closed (the first reason stands).
    pub fn kick(&self, close: Close) {
        if let Ok(mut q) = self.0.queue.lock() {
            q.kicked.get_or_insert(close);
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if let Ok(mut q) = self.0.queue.lock() {
            q.open = false;
        }
        self.0.waker.wake();
    }
}

/// The client's end of a mailbox.
pub(crate) struct Outbox(Arc<MailboxState>);

impl Outbox {
    /// Moves up to `max` waiting frames to `out`: `Ready(n)` with n > 0, `Ready(0)` once the
    /// mailbox is closed and empty, `Pending` (woken on the next frame) when there is none.
    pub fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<Arc<[u8]>>,
        max: usize,
    ) -> Poll<usize> {
        self.0.waker.register(cx.waker());
        let Ok(mut q) = self.0.queue.lock() else {
            return Poll::Ready(0);
        };
        let n = q.frames.len().min(max);
        if n > 0 {
            out.extend(q.frames.drain(..n));
            Poll::Ready(n)
        } else if q.open {
            Poll::Pending
        } else {
            Poll::Ready(0)
        }
    }

    /// Why the project closed the client, if it did.
    pub fn closed(&self) -> Option<Close> {
        self.0.queue.lock().ok().and_then(|q| q.kicked)
    }
}

/// A frame (or a close) for a client on an [`Outlet`].
pub enum Delivery {
    /// To each of the project's clients on the outlet but `except` (0: none excepted).
    All {
        project: Arc<str>,
        except: u64,
        frame: Arc<[u8]>,
    },
    /// To one client.
    One { conn: u64, frame: Arc<[u8]> },
    /// The project closed the client: nothing more comes for it.
    Closed { conn: u64, why: Close },
}

struct OutletShared {
    queue: Mutex<Vec<Delivery>>,
    waker: AtomicWaker,
}

/// A transport thread's way in for all its clients, of every project: a broadcast is one
/// [`Delivery::All`] per outlet however many of the project's clients it serves, and a batch
/// of deliveries costs one wake. The transport keeps which client is where, writes, and drops
/// a client that falls `client_buffer` frames behind ([`super::Close::TOO_SLOW`]).
#[derive(Clone)]
pub struct Outlet(Arc<OutletShared>);

impl Default for Outlet {
    fn default() -> Self {
        Self(Arc::new(OutletShared {
            queue: Mutex::new(Vec::new()),
            waker: AtomicWaker::new(),
        }))
    }
}

impl Outlet {
    /// Moves every waiting delivery to `out` (in order); `Pending`, woken on the next one,
    /// when there is none.
    pub fn poll_take(&self, cx: &mut Context<'_>, out: &mut Vec<Delivery>) -> Poll<()> {
        self.0.waker.register(cx.waker());
        let Ok(mut q) = self.0.queue.lock() else {
            return Poll::Pending;
        };
        if q.is_empty() {
            return Poll::Pending;
        }
        out.append(&mut q);
        Poll::Ready(())
    }

    pub(crate) fn push(&self, d: Delivery) {
        if let Ok(mut q) = self.0.queue.lock() {
            q.push(d);
        }
        self.0.waker.wake();
    }

    pub(crate) fn same(&self, other: &Outlet) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
