//! The collaboration WebSocket, on a socket the app took over after the 101
//! ([`crate::app::upgrade`]).
//!
//! Out: each app worker has one [`Fanout`], the gateway's [`Outlet`] for every collaboration
//! client the worker serves. A broadcast reaches it as one delivery, however many of the
//! project's clients are here; the fan-out writes it as a WebSocket message into each client's
//! buffer and each socket once. A client whose socket takes nothing while `client_buffer`
//! frames pile up is closed (1013), not waited for.
//!
//! In, and everything else per connection: one [`Socket`] task reads frames (continuations
//! joined, within a size limit) and hands them to the connection's handler through a small
//! channel (when it is full the socket is not read, so a client cannot outrun its handler);
//! writes control frames (pings, pongs, the close) from the handler's [`Control`]; finishes
//! writes the socket could not take at once; and gives a closing socket [`CLOSE_GRACE`] to take
//! its close frame before dropping it.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use actix_http::ws::{Codec, Frame, Item, Message, OpCode, Parser, ProtocolError};
use bytes::{Buf, Bytes, BytesMut};
use futures::channel::mpsc;
use futures::task::AtomicWaker;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio_util::codec::{Decoder as _, Encoder as _};

use crate::app::upgrade::Upgraded;
use crate::app::workers::AppIo;
use crate::gateway::{Close, Delivery, Outlet};

/// Frames the fan-out writes before the worker's other tasks get a turn.
const ROUND: usize = 64;
/// Buffer room kept between messages; a buffer grown past it for a big one is let go after.
const KEEP: usize = 64 * 1024;
/// Bytes a client may have waiting to be written to it before it is closed as too slow (its
/// frame count is bounded too, by `[gateway]`): what a stalled reader costs the server.
pub const MAX_BEHIND_BYTES: usize = 16 * 1024 * 1024;
/// Decoded messages waiting for the handler before the socket stops being read.
const INCOMING: usize = 16;
/// How long a closing socket may take to flush its close frame before it is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// A socket's write side, shared by its [`Socket`] task and its worker's [`Fanout`].
struct Wire {
    id: u64,
    st: RefCell<WireState>,
    /// In this fan-out round's list of sockets to write.
    queued: Cell<bool>,
}

struct WireState {
    /// `None` until the 101 is out (frames wait in `wbuf`).
    io: Option<AppIo>,
    wbuf: BytesMut,
    /// Frames put in `wbuf` since it was last empty.
    behind: usize,
    /// The socket task's waker: a write the socket cannot take wakes it when it can.
    waker: Option<Waker>,
    /// A close frame is in `wbuf`: nothing more goes in.
    closing: bool,
    /// The socket failed: nothing is written any more.
    dead: bool,
    /// Written, but not yet through the stream's own buffer (TLS).
    unflushed: bool,
}

impl WireState {
    /// Encodes a control `msg`; a close ends what the socket says.
    fn control(&mut self, msg: Message) {
        if self.closing {
            return;
        }
        self.closing = matches!(msg, Message::Close(_));
        // The encoder fails only on a continuation out of order, which is never sent here.
        let _ = Codec::new().encode(msg, &mut self.wbuf);
    }

    /// Writes what the socket takes of `wbuf`, registering `cx` when it takes less.
    fn flush(&mut self, cx: &mut Context<'_>) {
        let Some(io) = &mut self.io else {
            return;
        };
        let big = self.wbuf.len() > KEEP || self.wbuf.capacity() > KEEP;
        while !self.wbuf.is_empty() && !self.dead {
            match Pin::new(&mut *io).poll_write(cx, &self.wbuf) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => self.dead = true,
                Poll::Ready(Ok(n)) => self.wbuf.advance(n),
                Poll::Pending => return,
            }
        }
        // Through a TLS stream, written bytes wait in its buffer until flushed (on TCP this
        // is nothing).
        if !self.dead {
            match Pin::new(&mut *io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(_)) => self.dead = true,
                Poll::Pending => self.unflushed = true,
            }
        }
        self.behind = 0;
        // A big frame (a whole document for a joining client) is not kept for the socket's life.
        if big {
            self.wbuf = BytesMut::with_capacity(4096);
        }
    }

    /// [`Self::flush`] on behalf of the socket task.
    fn flush_for_socket(&mut self) {
        // Taken out and put back rather than cloned: a clone and drop per frame is two atomic
        // updates on the task's header.
        if let Some(w) = self.waker.take() {
            self.flush(&mut Context::from_waker(&w));
            self.waker = Some(w);
        }
    }
}

/// A worker's collaboration clients: see the module docs.
pub struct Fanout {
    outlet: Outlet,
    /// Frames a client may fall behind before it is closed.
    cap: usize,
    kicked: prometheus::IntCounter,
    wires: RefCell<HashMap<u64, Rc<Wire>>>,
    /// Each project's clients here, copied on change: a broadcast goes through the list as it
    /// was, even while clients come and go between its rounds.
    projects: RefCell<HashMap<Arc<str>, Clients>>,
}

/// A project's clients on one worker.
type Clients = Rc<Vec<Rc<Wire>>>;

thread_local! {
    static FANOUT: RefCell<Option<Rc<Fanout>>> = const { RefCell::new(None) };
}

impl Fanout {
    /// This worker's fan-out, started on first use (on the worker's runtime).
    pub fn here(cap: usize, kicked: &prometheus::IntCounter) -> Rc<Fanout> {
        FANOUT.with(|f| {
            f.borrow_mut()
                .get_or_insert_with(|| {
                    let fanout = Rc::new(Fanout {
                        outlet: Outlet::default(),
                        cap,
                        kicked: kicked.clone(),
                        wires: RefCell::default(),
                        projects: RefCell::default(),
                    });
                    actix_web::rt::spawn(fanout.clone().run());
                    fanout
                })
                .clone()
        })
    }

    pub fn outlet(&self) -> &Outlet {
        &self.outlet
    }

    /// Makes client `id` of `project` known here, before it joins: what the project sends it
    /// waits until its socket is attached ([`Socket::new`]).
    pub fn register(self: &Rc<Self>, project: &str, id: u64) -> Registration {
        let wire = Rc::new(Wire {
            id,
            st: RefCell::new(WireState {
                io: None,
                wbuf: BytesMut::with_capacity(4096),
                behind: 0,
                waker: None,
                closing: false,
                dead: false,
                unflushed: false,
            }),
            queued: Cell::new(false),
        });
        let project: Arc<str> = Arc::from(project);
        self.wires.borrow_mut().insert(id, wire.clone());
        Rc::make_mut(
            self.projects
                .borrow_mut()
                .entry(project.clone())
                .or_default(),
        )
        .push(wire.clone());
        Registration {
            fanout: self.clone(),
            wire,
            project,
        }
    }

    async fn run(self: Rc<Self>) {
        let mut batch = Vec::new();
        let mut touched: Vec<Rc<Wire>> = Vec::new();
        loop {
            std::future::poll_fn(|cx| self.outlet.poll_take(cx, &mut batch)).await;
            let mut round = 0;
            for d in batch.drain(..) {
                match d {
                    Delivery::All {
                        project,
                        except,
                        frame,
                    } => {
                        let Some(wires) = self.projects.borrow().get(&project).cloned() else {
                            continue;
                        };
                        for chunk in wires.chunks(ROUND) {
                            for w in chunk.iter().filter(|w| w.id != except) {
                                self.deliver(w, &frame, &mut touched);
                            }
                            round += chunk.len();
                            if round >= ROUND {
                                round = 0;
                                Self::flush(&mut touched);
                                // The worker's other tasks and its sockets' readiness get a
                                // turn: a client's change that arrives during a broadcast to
                                // a thousand clients is read now, not after it.
                                tokio::task::yield_now().await;
                            }
                        }
                    }
                    Delivery::One { conn, frame } => {
                        let w = self.wires.borrow().get(&conn).cloned();
                        if let Some(w) = w {
                            self.deliver(&w, &frame, &mut touched);
                            round += 1;
                        }
                    }
                    Delivery::Closed { conn, why } => {
                        let w = self.wires.borrow().get(&conn).cloned();
                        if let Some(w) = w {
                            close(&w, why);
                        }
                    }
                }
            }
            Self::flush(&mut touched);
        }
    }

    /// One write per socket for what was put in its buffer.
    fn flush(touched: &mut Vec<Rc<Wire>>) {
        for w in touched.drain(..) {
            w.queued.set(false);
            w.st.borrow_mut().flush_for_socket();
        }
    }

    fn deliver(&self, w: &Rc<Wire>, frame: &[u8], touched: &mut Vec<Rc<Wire>>) {
        let mut st = w.st.borrow_mut();
        if st.closing || st.dead {
            return;
        }
        let too_many_bytes = !st.wbuf.is_empty() && st.wbuf.len() + frame.len() > MAX_BEHIND_BYTES;
        if st.behind >= self.cap || too_many_bytes {
            drop(st);
            self.kicked.inc();
            close(w, Close::TOO_SLOW);
            return;
        }
        // A whole binary message, unmasked (server to client), written straight from the
        // shared frame: what the codec does for `Message::Binary`, minus a `Bytes`.
        Parser::write_message(&mut st.wbuf, frame, OpCode::Binary, true, false);
        st.behind += 1;
        if !w.queued.replace(true) {
            touched.push(w.clone());
        }
    }
}

/// Closes `w` with `why`: the close frame goes after what is already in its buffer, and the
/// socket task ends once it is out (or the grace runs out).
fn close(w: &Wire, why: Close) {
    let mut st = w.st.borrow_mut();
    st.control(Message::Close(Some(close_reason(why))));
    if let Some(waker) = &st.waker {
        waker.wake_by_ref();
    }
}

/// A client known to its worker's [`Fanout`]; dropping it forgets the client there.
pub struct Registration {
    fanout: Rc<Fanout>,
    wire: Rc<Wire>,
    project: Arc<str>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.fanout.wires.borrow_mut().remove(&self.wire.id);
        let mut projects = self.fanout.projects.borrow_mut();
        if let Some(wires) = projects.get_mut(&self.project) {
            Rc::make_mut(wires).retain(|w| !Rc::ptr_eq(w, &self.wire));
            if wires.is_empty() {
                projects.remove(&self.project);
            }
        }
    }
}

/// A collaboration connection's socket task: see the module docs.
pub struct Socket {
    reg: Registration,
    control: Arc<ControlShared>,
    /// Dropped with the socket: [`Control::closed`] resolves.
    _alive: oneshot::Sender<()>,
    /// To the handler; `None` once the client said all it will (end of stream or a bad frame).
    incoming: Option<mpsc::Sender<Result<ClientFrame, ProtocolError>>>,
    decoder: Decoder,
    rbuf: BytesMut,
    /// `rbuf` grew past [`KEEP`] for a big message: it is let go once empty.
    rbuf_big: bool,
    /// Running once the socket is closing.
    grace: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// Control frames (pings, pongs, the close) from the connection's handler to the socket: a flag
/// the socket checks on each wake-up.
struct ControlShared {
    queue: Mutex<VecDeque<Message>>,
    waiting: AtomicBool,
    /// The handler let go of its [`Control`].
    gone: AtomicBool,
    waker: AtomicWaker,
}

/// The handler's end of the control frames.
pub struct Control {
    shared: Arc<ControlShared>,
    /// None once the socket is known to be gone.
    alive: Option<oneshot::Receiver<()>>,
}

/// The socket is gone: a control frame has nowhere to go.
#[derive(Debug)]
pub struct SocketGone;

impl Control {
    /// Queues `msg` ahead of the gateway's next frames.
    pub fn send(&mut self, msg: Message) -> Result<(), SocketGone> {
        let gone = match &mut self.alive {
            Some(alive) => matches!(alive.try_recv(), Err(oneshot::error::TryRecvError::Closed)),
            None => true,
        };
        if gone {
            self.alive = None;
            return Err(SocketGone);
        }
        self.shared
            .queue
            .lock()
            .map_err(|_| SocketGone)?
            .push_back(msg);
        self.shared.waiting.store(true, Ordering::Release);
        self.shared.waker.wake();
        Ok(())
    }

    /// Resolves once the socket is gone (closed by either side, or failed).
    pub async fn closed(&mut self) {
        if let Some(alive) = &mut self.alive {
            let _ = alive.await;
            self.alive = None;
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.shared.gone.store(true, Ordering::Release);
        self.shared.waker.wake();
    }
}

/// What the client said, for the handler; `None` from the receiver when the client is gone.
pub type Messages = mpsc::Receiver<Result<ClientFrame, ProtocolError>>;

impl Socket {
    /// The socket task for `up`, the client `reg` made known to its fan-out; the handler's
    /// control end; and the client's messages (at most `max` bytes each).
    pub fn new(up: Upgraded, reg: Registration, max: usize) -> (Self, Control, Messages) {
        reg.wire.st.borrow_mut().io = Some(up.io);
        let shared = Arc::new(ControlShared {
            queue: Mutex::new(VecDeque::new()),
            waiting: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        let (alive, alive_rx) = oneshot::channel();
        let (tx, rx) = mpsc::channel(INCOMING);
        (
            Self {
                reg,
                control: shared.clone(),
                _alive: alive,
                incoming: Some(tx),
                decoder: Decoder::new(max),
                rbuf: up.read_buf,
                rbuf_big: false,
                grace: None,
            },
            Control {
                shared,
                alive: Some(alive_rx),
            },
            rx,
        )
    }

    /// Reads and decodes while the handler has room; `Err` when the socket is gone.
    fn read(&mut self, io: &mut AppIo, cx: &mut Context<'_>) -> Result<(), ()> {
        while let Some(tx) = &mut self.incoming {
            match tx.poll_ready(cx) {
                Poll::Pending => return Ok(()),
                // The handler is gone: the socket is closing.
                Poll::Ready(Err(_)) => {
                    self.incoming = None;
                    return Ok(());
                }
                Poll::Ready(Ok(())) => {}
            }
            match self.decoder.decode(&mut self.rbuf) {
                Ok(Some(msg)) => {
                    let _ = tx.start_send(Ok(msg));
                    continue;
                }
                Ok(None) if self.rbuf_big && self.rbuf.is_empty() => {
                    // Nor a big message's room.
                    self.rbuf = BytesMut::new();
                    self.rbuf_big = false;
                }
                Ok(None) => {}
                Err(e) => {
                    // Nothing more is read from a client that broke the protocol.
                    let _ = tx.start_send(Err(e));
                    self.incoming = None;
                    return Ok(());
                }
            }
            if self.rbuf.capacity() - self.rbuf.len() < 1024 {
                self.rbuf.reserve(8 * 1024);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, &mut self.rbuf) {
                Poll::Ready(Ok(0)) => self.incoming = None,
                Poll::Ready(Ok(_)) => self.rbuf_big |= self.rbuf.len() > KEEP,
                Poll::Ready(Err(_)) => return Err(()),
                Poll::Pending => return Ok(()),
            }
        }
        Ok(())
    }
}

impl Future for Socket {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let wire = this.reg.wire.clone();
        let mut st = wire.st.borrow_mut();
        if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            st.waker = Some(cx.waker().clone());
        }
        let read = match &mut st.io {
            Some(io) => this.read(io, cx),
            None => Err(()),
        };
        if read.is_err() {
            return Poll::Ready(());
        }
        this.control.waker.register(cx.waker());
        if this.control.waiting.swap(false, Ordering::AcqRel) {
            let msgs: Vec<Message> = match this.control.queue.lock() {
                Ok(mut q) => q.drain(..).collect(),
                Err(_) => Vec::new(),
            };
            for msg in msgs {
                st.control(msg);
            }
        }
        // The handler is gone without a close: nothing more to say.
        if this.control.gone.load(Ordering::Acquire)
            && !this.control.waiting.load(Ordering::Acquire)
        {
            st.closing = true;
        }
        st.flush(cx);
        if st.dead {
            return Poll::Ready(());
        }
        if st.closing {
            if st.wbuf.is_empty() && !st.unflushed {
                // The close is out; a clean end of the stream if it goes at once.
                if let Some(io) = &mut st.io {
                    let _ = Pin::new(io).poll_shutdown(cx);
                }
                return Poll::Ready(());
            }
            let grace = this
                .grace
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(CLOSE_GRACE)));
            if grace.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }
}

/// Tells a client it cannot join, and closes: the close frame with `why`, on a socket taken over
/// only for that.
pub async fn refuse(up: Upgraded, why: Close) {
    let mut io = up.io;
    let mut buf = BytesMut::new();
    if Codec::new()
        .encode(Message::Close(Some(close_reason(why))), &mut buf)
        .is_ok()
    {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            if io.write_all(&buf).await.is_ok() && io.flush().await.is_ok() {
                let _ = io.shutdown().await;
            }
        })
        .await;
    }
}

/// The close reason for the gateway's close code.
pub fn close_reason(c: Close) -> actix_http::ws::CloseReason {
    actix_http::ws::CloseReason {
        code: actix_http::ws::CloseCode::Other(c.code),
        description: Some(c.reason.into()),
    }
}

/// What the client said.
#[derive(Debug)]
pub enum ClientFrame {
    Binary(Bytes),
    Text,
    Ping(Bytes),
    Pong,
    Close,
}

/// Client frames to messages: continuations joined, with a size limit.
struct Decoder {
    codec: Codec,
    max: usize,
    /// A message arriving in continuation frames: (is text, bytes so far).
    partial: Option<(bool, BytesMut)>,
}

impl Decoder {
    fn new(max: usize) -> Self {
        Self {
            codec: Codec::new().max_size(max),
            max,
            partial: None,
        }
    }

    /// The next whole message in `buf`, if one is there.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<ClientFrame>, ProtocolError> {
        while let Some(frame) = self.codec.decode(buf)? {
            if let Some(m) = self.frame(frame)? {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    /// The first frame of a message sent in pieces.
    fn start(&mut self, text: bool, data: Bytes) -> Result<Option<ClientFrame>, ProtocolError> {
        if self.partial.is_some() {
            return Err(ProtocolError::ContinuationStarted);
        }
        self.partial = Some((text, BytesMut::from(&data[..])));
        Ok(None)
    }

    fn frame(&mut self, frame: Frame) -> Result<Option<ClientFrame>, ProtocolError> {
        Ok(Some(match frame {
            Frame::Binary(b) => ClientFrame::Binary(b),
            Frame::Text(_) => ClientFrame::Text,
            Frame::Ping(p) => ClientFrame::Ping(p),
            Frame::Pong(_) => ClientFrame::Pong,
            Frame::Close(_) => ClientFrame::Close,
            Frame::Continuation(item) => {
                let (data, last) = match item {
                    Item::FirstText(d) => return self.start(true, d),
                    Item::FirstBinary(d) => return self.start(false, d),
                    Item::Continue(d) => (d, false),
                    Item::Last(d) => (d, true),
                };
                let Some((_, so_far)) = self.partial.as_mut() else {
                    return Err(ProtocolError::ContinuationNotStarted);
                };
                if so_far.len() + data.len() > self.max {
                    return Err(ProtocolError::Overflow);
                }
                so_far.extend_from_slice(&data);
                if !last {
                    return Ok(None);
                }
                match self.partial.take() {
                    Some((true, _)) => ClientFrame::Text,
                    Some((false, b)) => ClientFrame::Binary(b.freeze()),
                    None => return Ok(None),
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Client frames (masked, as browsers send them).
    fn encoded(msgs: Vec<Message>) -> BytesMut {
        let mut codec = Codec::new().client_mode();
        let mut buf = BytesMut::new();
        for m in msgs {
            codec.encode(m, &mut buf).unwrap();
        }
        buf
    }

    /// What a decoder makes of `bytes` arriving 3 at a time (up to the first error).
    fn decoded(bytes: &[u8], max: usize) -> Vec<Result<ClientFrame, ProtocolError>> {
        let mut d = Decoder::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for c in bytes.chunks(3) {
            buf.extend_from_slice(c);
            loop {
                match d.decode(&mut buf) {
                    Ok(Some(m)) => out.push(Ok(m)),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(Err(e));
                        return out;
                    }
                }
            }
        }
        out
    }

    fn piece(i: Item) -> Message {
        Message::Continuation(i)
    }

    #[test]
    fn continuations_are_joined_and_bounded() {
        let got = decoded(
            &encoded(vec![
                piece(Item::FirstBinary(Bytes::from_static(b"ab"))),
                piece(Item::Continue(Bytes::from_static(b"cd"))),
                piece(Item::Last(Bytes::from_static(b"ef"))),
                Message::Binary(Bytes::from_static(b"gh")),
                Message::Ping(Bytes::from_static(b"p")),
            ]),
            16,
        );
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(matches!(&got[0], Ok(ClientFrame::Binary(b)) if b == "abcdef"));
        assert!(matches!(&got[1], Ok(ClientFrame::Binary(b)) if b == "gh"));
        assert!(matches!(&got[2], Ok(ClientFrame::Ping(p)) if p == "p"));

        let got = decoded(
            &encoded(vec![
                piece(Item::FirstBinary(Bytes::from_static(b"abc"))),
                piece(Item::Last(Bytes::from_static(b"def"))),
            ]),
            4,
        );
        assert!(matches!(got.as_slice(), [Err(ProtocolError::Overflow)]));

        // A last piece with no first (the encoder refuses to write one on its own).
        let mut codec = Codec::new().client_mode();
        let mut buf = BytesMut::new();
        codec
            .encode(piece(Item::FirstBinary(Bytes::from_static(b"a"))), &mut buf)
            .unwrap();
        let mut lone = BytesMut::new();
        codec
            .encode(piece(Item::Last(Bytes::from_static(b"x"))), &mut lone)
            .unwrap();
        assert!(matches!(
            decoded(&lone, 4).as_slice(),
            [Err(ProtocolError::ContinuationNotStarted)]
        ));
        let got = decoded(
            &encoded(vec![
                piece(Item::FirstText(Bytes::from_static(b"t"))),
                piece(Item::Last(Bytes::from_static(b"u"))),
            ]),
            4,
        );
        assert!(matches!(got.as_slice(), [Ok(ClientFrame::Text)]));
    }
}
