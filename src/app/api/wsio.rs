//! The collaboration WebSocket's two directions, written against actix-http's frame codec.
//!
//! Out: the response body polls the gateway's [`Outbox`] itself, so a frame goes from the
//! project task to the socket with no task or channel in between, and every frame waiting when
//! the body is polled goes out in one write. Control frames (pings, pongs, the close) come from
//! the connection's handler through a small channel and go first.
//!
//! In: frames decoded from the request payload, continuations joined, with a size limit.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use actix_http::ws::{Codec, Frame, Item, Message, OpCode, Parser, ProtocolError};
use bytes::{Bytes, BytesMut};
use futures::task::AtomicWaker;
use futures::{Stream, StreamExt};
use tokio::sync::oneshot;
use tokio_util::codec::{Decoder, Encoder};

use crate::gateway::{Close, Outbox};

/// How much the body gathers into one chunk before handing it to the socket.
const CHUNK: usize = 64 * 1024;
/// Frames taken from the outbox at a time.
const FRAMES: usize = 64;

/// The server's side of the socket: frames for the client.
pub struct OutBody {
    outbox: Outbox,
    control: Arc<ControlShared>,
    /// Dropped with the body: [`Control::closed`] resolves.
    _alive: oneshot::Sender<()>,
    codec: Codec,
    buf: BytesMut,
    /// Frames taken from the outbox, kept for its allocation.
    frames: Vec<Arc<[u8]>>,
    done: bool,
}

/// Control frames (pings, pongs, the close) from the connection's handler to the body: a flag
/// the body checks on each poll, so the common poll (gateway frames only) costs no channel.
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
    /// None once the body is known to be gone.
    alive: Option<oneshot::Receiver<()>>,
}

/// The body is gone: a control frame has nowhere to go.
#[derive(Debug)]
pub struct BodyGone;

impl Control {
    /// Queues `msg` ahead of the gateway's frames.
    pub fn send(&mut self, msg: Message) -> Result<(), BodyGone> {
        let gone = match &mut self.alive {
            Some(alive) => matches!(alive.try_recv(), Err(oneshot::error::TryRecvError::Closed)),
            None => true,
        };
        if gone {
            self.alive = None;
            return Err(BodyGone);
        }
        self.shared
            .queue
            .lock()
            .map_err(|_| BodyGone)?
            .push_back(msg);
        self.shared.waiting.store(true, Ordering::Release);
        self.shared.waker.wake();
        Ok(())
    }

    /// Resolves once the body is gone (the socket closed, or the body ended).
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

impl OutBody {
    pub fn new(outbox: Outbox) -> (Self, Control) {
        let shared = Arc::new(ControlShared {
            queue: Mutex::new(VecDeque::new()),
            waiting: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        let (alive, alive_rx) = oneshot::channel();
        (
            Self {
                outbox,
                control: shared.clone(),
                _alive: alive,
                codec: Codec::new(),
                buf: BytesMut::new(),
                frames: Vec::new(),
                done: false,
            },
            Control {
                shared,
                alive: Some(alive_rx),
            },
        )
    }

    /// Encodes `msg`; a close ends the body after it.
    fn push(&mut self, msg: Message) -> Result<(), ProtocolError> {
        let close = matches!(msg, Message::Close(_));
        self.codec.encode(msg, &mut self.buf)?;
        if close {
            self.done = true;
        }
        Ok(())
    }
}

/// The close reason for the gateway's close code.
pub fn close_reason(c: Close) -> actix_http::ws::CloseReason {
    actix_http::ws::CloseReason {
        code: actix_http::ws::CloseCode::Other(c.code),
        description: Some(c.reason.into()),
    }
}

/// A body that only closes the socket, telling the client why.
pub fn closing_body(c: Close) -> impl Stream<Item = Result<Bytes, ProtocolError>> {
    let mut buf = BytesMut::new();
    let r = Codec::new()
        .encode(Message::Close(Some(close_reason(c))), &mut buf)
        .map(|()| buf.freeze());
    futures::stream::iter([r])
}

impl Stream for OutBody {
    type Item = Result<Bytes, ProtocolError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.control.waker.register(cx.waker());
        if this.control.waiting.swap(false, Ordering::AcqRel) {
            let msgs: Vec<Message> = match this.control.queue.lock() {
                Ok(mut q) => q.drain(..).collect(),
                Err(_) => Vec::new(),
            };
            for msg in msgs {
                if this.done {
                    break;
                }
                if let Err(e) = this.push(msg) {
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
        // The handler is gone without a close: nothing more to say.
        if this.control.gone.load(Ordering::Acquire)
            && !this.control.waiting.load(Ordering::Acquire)
        {
            this.done = true;
        }
        while !this.done && this.buf.len() < CHUNK {
            let got = this.outbox.poll_recv_many(cx, &mut this.frames, FRAMES);
            for frame in this.frames.drain(..) {
                // A whole binary message, unmasked (server to client), written straight from the
                // shared frame: what the codec does for `Message::Binary`, minus a `Bytes` per frame.
                Parser::write_message(&mut this.buf, &*frame, OpCode::Binary, true, false);
            }
            match got {
                // Fewer than asked for: the outbox is empty and this task is registered for
                // the next frame (no second look needed).
                Poll::Ready(n) if n > 0 && n < FRAMES => break,
                Poll::Ready(n) if n > 0 => {}
                Poll::Ready(_) => {
                    // The gateway closed this connection: tell the client why.
                    let why = this.outbox.closed().unwrap_or(Close::GOING_AWAY);
                    if let Err(e) = this.push(Message::Close(Some(close_reason(why)))) {
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                Poll::Pending => break,
            }
        }
        if !this.buf.is_empty() {
            return Poll::Ready(Some(Ok(this.buf.split().freeze())));
        }
        if this.done {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

/// What the client said.
pub enum Incoming {
    Binary(Bytes),
    Text,
    Ping(Bytes),
    Pong,
    Close,
}

/// The client's side of the socket: decoded frames, continuations joined.
pub struct InStream<S> {
    payload: S,
    codec: Codec,
    buf: BytesMut,
    max: usize,
    /// A message arriving in continuation frames: (is text, bytes so far).
    partial: Option<(bool, BytesMut)>,
}

impl<S, E> InStream<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    pub fn new(payload: S, max: usize) -> Self {
        Self {
            payload,
            codec: Codec::new().max_size(max),
            buf: BytesMut::new(),
            max,
            partial: None,
        }
    }

    /// The next message; `None` when the client is gone.
    pub async fn next(&mut self) -> Option<Result<Incoming, ProtocolError>> {
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => match self.frame(frame) {
                    Ok(Some(m)) => return Some(Ok(m)),
                    Ok(None) => continue,
                    Err(e) => return Some(Err(e)),
                },
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            match self.payload.next().await {
                Some(Ok(bytes)) => self.buf.extend_from_slice(&bytes),
                Some(Err(e)) => {
                    return Some(Err(ProtocolError::Io(std::io::Error::other(e.to_string()))));
                }
                None => return None,
            }
        }
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

    /// Client frames (masked, as browsers send them), cut into 3-byte chunks.
    fn chunks(msgs: Vec<Message>) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
        let mut codec = Codec::new().client_mode();
        let mut buf = BytesMut::new();
        for m in msgs {
            codec.encode(m, &mut buf).unwrap();
        }
        let bytes = buf.freeze();
        let parts: Vec<Result<Bytes, std::io::Error>> = bytes
            .chunks(3)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures::stream::iter(parts)
    }

    fn piece(i: Item) -> Message {
        Message::Continuation(i)
    }

    #[tokio::test]
    async fn continuations_are_joined_and_bounded() {
        let mut s = InStream::new(
            chunks(vec![
                piece(Item::FirstBinary(Bytes::from_static(b"ab"))),
                piece(Item::Continue(Bytes::from_static(b"cd"))),
                piece(Item::Last(Bytes::from_static(b"ef"))),
                Message::Binary(Bytes::from_static(b"gh")),
                Message::Ping(Bytes::from_static(b"p")),
            ]),
            16,
        );
        assert!(matches!(s.next().await, Some(Ok(Incoming::Binary(b))) if b == "abcdef"));
        assert!(matches!(s.next().await, Some(Ok(Incoming::Binary(b))) if b == "gh"));
        assert!(matches!(s.next().await, Some(Ok(Incoming::Ping(p))) if p == "p"));
        assert!(s.next().await.is_none());

        let mut s = InStream::new(
            chunks(vec![
                piece(Item::FirstBinary(Bytes::from_static(b"abc"))),
                piece(Item::Last(Bytes::from_static(b"def"))),
            ]),
            4,
        );
        assert!(matches!(s.next().await, Some(Err(ProtocolError::Overflow))));

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
        let lone = futures::stream::iter([Ok::<_, std::io::Error>(lone.freeze())]);
        let mut s = InStream::new(lone, 4);
        assert!(matches!(
            s.next().await,
            Some(Err(ProtocolError::ContinuationNotStarted))
        ));
        let mut s = InStream::new(
            chunks(vec![
                piece(Item::FirstText(Bytes::from_static(b"t"))),
                piece(Item::Last(Bytes::from_static(b"u"))),
            ]),
            4,
        );
        assert!(matches!(s.next().await, Some(Ok(Incoming::Text))));
    }
}
