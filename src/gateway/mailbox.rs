//! One client's outgoing frames: the project task pushes, the client's transport takes every
//! waiting frame at once. A lock around a queue and one waker: a broadcast to hundreds of clients
//! costs one short lock and one wake each, and the transport one lock per wake-up.

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

struct Shared {
    queue: Mutex<Queue>,
    waker: AtomicWaker,
    cap: usize,
}

/// A mailbox holding at most `cap` frames.
pub(crate) fn mailbox(cap: usize) -> (Sender, Outbox) {
    let shared = Arc::new(Shared {
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
pub(crate) struct Sender(Arc<Shared>);

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

/// The client's end: the frames for one client, for a transport that polls them itself (the
/// WebSocket body does, so a frame goes from the project task to the socket with no task in
/// between).
pub struct Outbox(Arc<Shared>);

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

    /// Whether the project let go of the client (frames may still be waiting).
    pub fn is_closed(&self) -> bool {
        self.0.queue.lock().map(|q| !q.open).unwrap_or(true)
    }

    /// Why the project closed the client, if it did.
    pub fn closed(&self) -> Option<Close> {
        self.0.queue.lock().ok().and_then(|q| q.kicked)
    }

    /// A second handle, for asking [`Self::closed`] after the first went to the transport
    /// (only one of them may be polled).
    pub(crate) fn status(&self) -> Outbox {
        Outbox(self.0.clone())
    }
}
