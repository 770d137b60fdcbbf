//! The collaboration WebSocket, on a socket the app took over after the 101
//! ([`crate::app::upgrade`]).
//!
//! One task per connection, [`Socket`], owns the socket and does both directions:
//! - out: every frame waiting in the gateway's [`Outbox`] when the task wakes goes into one
//!   write, each written as a WebSocket message straight from the shared frame; control frames
//!   (pings, pongs, the close) come from the connection's handler through [`Control`] and go
//!   first;
//! - in: frames decoded from the socket, continuations joined, within a size limit, handed to
//!   the handler as [`Incoming`] messages through a small channel (when it is full the socket
//!   is not read, so a client cannot outrun its handler).
//!
//! A closing socket gets [`CLOSE_GRACE`] to take its close frame; a client that reads nothing
//! is dropped then.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
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
use crate::gateway::{Close, Outbox};

/// How much is gathered into one write.
const CHUNK: usize = 64 * 1024;
/// Frames taken from the outbox at a time.
const FRAMES: usize = 64;
/// Decoded messages waiting for the handler before the socket stops being read.
const INCOMING: usize = 16;
/// How long a closing socket may take to flush its close frame before it is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// A collaboration connection's socket: see the module docs.
pub struct Socket {
    io: AppIo,
    outbox: Outbox,
    control: Arc<ControlShared>,
    /// Dropped with the socket: [`Control::closed`] resolves.
    _alive: oneshot::Sender<()>,
    /// To the handler; `None` once the client said all it will (end of stream or a bad frame).
    incoming: Option<mpsc::Sender<Result<Incoming, ProtocolError>>>,
    decoder: Decoder,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Frames taken from the outbox, kept for its allocation.
    frames: Vec<Arc<[u8]>>,
    /// A close frame is in `wbuf`: nothing more goes out, and the socket ends once it is sent
    /// (or the grace runs out).
    closing: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// Control frames (pings, pongs, the close) from the connection's handler to the socket: a flag
/// the socket checks on each wake-up, so the common one (gateway frames only) costs no channel.
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
    /// Queues `msg` ahead of the gateway's frames.
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
pub type Messages = mpsc::Receiver<Result<Incoming, ProtocolError>>;

impl Socket {
    /// The socket task for `up`, the handler's control end, and the client's messages (at most
    /// `max` bytes each).
    pub fn new(up: Upgraded, outbox: Outbox, max: usize) -> (Self, Control, Messages) {
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
                io: up.io,
                outbox,
                control: shared.clone(),
                _alive: alive,
                incoming: Some(tx),
                decoder: Decoder::new(max),
                rbuf: up.read_buf,
                wbuf: BytesMut::with_capacity(4096),
                frames: Vec::new(),
                closing: None,
            },
            Control {
                shared,
                alive: Some(alive_rx),
            },
            rx,
        )
    }

    /// Encodes a control `msg`; a close ends what the socket says.
    fn push(&mut self, msg: Message) {
        if self.closing.is_some() {
            return;
        }
        let close = matches!(msg, Message::Close(_));
        // The encoder fails only on a continuation out of order, which is never sent here.
        let _ = Codec::new().encode(msg, &mut self.wbuf);
        if close {
            self.closing = Some(Box::pin(tokio::time::sleep(CLOSE_GRACE)));
        }
    }

    /// Moves control frames and the gateway's frames into `wbuf`.
    fn gather(&mut self, cx: &mut Context<'_>) {
        self.control.waker.register(cx.waker());
        if self.control.waiting.swap(false, Ordering::AcqRel) {
            let msgs: Vec<Message> = match self.control.queue.lock() {
                Ok(mut q) => q.drain(..).collect(),
                Err(_) => Vec::new(),
            };
            for msg in msgs {
                self.push(msg);
            }
        }
        // The handler is gone without a close: nothing more to say.
        if self.control.gone.load(Ordering::Acquire)
            && !self.control.waiting.load(Ordering::Acquire)
            && self.closing.is_none()
        {
            self.closing = Some(Box::pin(tokio::time::sleep(CLOSE_GRACE)));
        }
        while self.closing.is_none() && self.wbuf.len() < CHUNK {
            let got = self.outbox.poll_recv_many(cx, &mut self.frames, FRAMES);
            for frame in self.frames.drain(..) {
                // A whole binary message, unmasked (server to client), written straight from the
                // shared frame: what the codec does for `Message::Binary`, minus a `Bytes`.
                Parser::write_message(&mut self.wbuf, &*frame, OpCode::Binary, true, false);
            }
            match got {
                // Fewer than asked for: the outbox is empty and this task is registered for
                // the next frame (no second look needed).
                Poll::Ready(n) if n > 0 && n < FRAMES => break,
                Poll::Ready(n) if n > 0 => {}
                Poll::Ready(_) => {
                    // The gateway closed this connection: tell the client why.
                    let why = self.outbox.closed().unwrap_or(Close::GOING_AWAY);
                    self.push(Message::Close(Some(close_reason(why))));
                }
                Poll::Pending => break,
            }
        }
    }

    /// Writes what it can of `wbuf`; `Err` when the socket is gone.
    fn flush(&mut self, cx: &mut Context<'_>) -> Result<(), ()> {
        while !self.wbuf.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &self.wbuf) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Err(()),
                Poll::Ready(Ok(n)) => self.wbuf.advance(n),
                Poll::Pending => return Ok(()),
            }
        }
        Ok(())
    }

    /// Reads and decodes while the handler has room; `Err` when the socket is gone.
    fn read(&mut self, cx: &mut Context<'_>) -> Result<(), ()> {
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
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf) {
                Poll::Ready(Ok(0)) => self.incoming = None,
                Poll::Ready(Ok(_)) => {}
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
        if this.read(cx).is_err() {
            return Poll::Ready(());
        }
        loop {
            if this.wbuf.len() < CHUNK {
                this.gather(cx);
            }
            if this.wbuf.is_empty() {
                break;
            }
            if this.flush(cx).is_err() {
                return Poll::Ready(());
            }
            // Blocked (woken when writable), or closing: nothing more to gather.
            if this.closing.is_some() || !this.wbuf.is_empty() {
                break;
            }
        }
        if let Some(grace) = &mut this.closing {
            if this.wbuf.is_empty() {
                // The close is out; a clean end of the stream if it goes at once.
                let _ = Pin::new(&mut this.io).poll_shutdown(cx);
                return Poll::Ready(());
            }
            if grace.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        } else if !this.wbuf.is_empty() && this.outbox.is_closed() {
            // The gateway closed this client (too slow, say) while its socket is full: what
            // is queued for it is dropped, and the close goes out after the frame being written.
            let why = this.outbox.closed().unwrap_or(Close::GOING_AWAY);
            this.push(Message::Close(Some(close_reason(why))));
            return Pin::new(this).poll(cx);
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
            if io.write_all(&buf).await.is_ok() {
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
pub enum Incoming {
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
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, ProtocolError> {
        while let Some(frame) = self.codec.decode(buf)? {
            if let Some(m) = self.frame(frame)? {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    /// The first frame of a message sent in pieces.
    fn start(&mut self, text: bool, data: Bytes) -> Result<Option<Incoming>, ProtocolError> {
        if self.partial.is_some() {
            return Err(ProtocolError::ContinuationStarted);
        }
        self.partial = Some((text, BytesMut::from(&data[..])));
        Ok(None)
    }

    fn frame(&mut self, frame: Frame) -> Result<Option<Incoming>, ProtocolError> {
        Ok(Some(match frame {
            Frame::Binary(b) => Incoming::Binary(b),
            Frame::Text(_) => Incoming::Text,
            Frame::Ping(p) => Incoming::Ping(p),
            Frame::Pong(_) => Incoming::Pong,
            Frame::Close(_) => Incoming::Close,
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
                    Some((true, _)) => Incoming::Text,
                    Some((false, b)) => Incoming::Binary(b.freeze()),
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
    fn decoded(bytes: &[u8], max: usize) -> Vec<Result<Incoming, ProtocolError>> {
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
        assert!(matches!(&got[0], Ok(Incoming::Binary(b)) if b == "abcdef"));
        assert!(matches!(&got[1], Ok(Incoming::Binary(b)) if b == "gh"));
        assert!(matches!(&got[2], Ok(Incoming::Ping(p)) if p == "p"));

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
        assert!(matches!(got.as_slice(), [Ok(Incoming::Text)]));
    }
}
