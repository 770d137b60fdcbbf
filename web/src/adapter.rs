//! dioxus-liveview speaks to any `Sink<Vec<u8>> + Stream<Item = Result<Vec<u8>>>`; this turns an
//! actix-ws session into one. actix-ws's message stream is `!Send`, so it is pumped on the actix
//! worker into a channel, and the `Send` half goes to the LiveView pool thread.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_ws::Message;
use dioxus_liveview::LiveViewError;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;

/// Frames a browser may send before the server has read them; past this it is disconnected.
const INBOUND_BUFFER: usize = 256;

pub struct ActixLiveSocket {
    rx: mpsc::Receiver<Result<Vec<u8>, LiveViewError>>,
    tx: Pin<Box<dyn Sink<Vec<u8>, Error = LiveViewError> + Send>>,
}

impl Stream for ActixLiveSocket {
    type Item = Result<Vec<u8>, LiveViewError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Sink<Vec<u8>> for ActixLiveSocket {
    type Error = LiveViewError;
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tx.as_mut().poll_ready(cx)
    }
    fn start_send(mut self: Pin<&mut Self>, item: Vec<u8>) -> Result<(), Self::Error> {
        self.tx.as_mut().start_send(item)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tx.as_mut().poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tx.as_mut().poll_close(cx)
    }
}

pub fn actix_socket(
    session: actix_ws::Session,
    mut msgs: actix_ws::MessageStream,
) -> ActixLiveSocket {
    let (tx, rx) = mpsc::channel(INBOUND_BUFFER);
    let mut control = session.clone();
    actix_web::rt::spawn(async move {
        while let Some(msg) = msgs.next().await {
            let item = match msg {
                Ok(Message::Text(t)) => Ok(t.as_bytes().to_vec()),
                Ok(Message::Binary(b)) => Ok(b.to_vec()),
                Ok(Message::Ping(p)) => {
                    if control.pong(&p).await.is_err() {
                        break;
                    }
                    continue;
                }
                Ok(Message::Close(_)) => break,
                Ok(_) => continue,
                Err(_) => Err(LiveViewError::SendingFailed),
            };
            if tx.try_send(item).is_err() {
                // Closed by the LiveView side, or a client flooding us: either way, stop.
                break;
            }
        }
        let _ = control.close(None).await;
    });
    let sink = session
        .with(|b: Vec<u8>| async move { Ok::<_, actix_ws::Closed>(Message::Binary(b.into())) })
        .sink_map_err(|_| LiveViewError::SendingFailed);
    ActixLiveSocket {
        rx,
        tx: Box::pin(sink),
    }
}
