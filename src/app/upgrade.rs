//! Upgrade requests (`Connection: upgrade`) and the sockets the app takes over.
//!
//! actix-http hands every upgrade request on an app connection here, with the connection itself.
//! A collaboration socket request goes through the app as usual (routing, middleware, sign-in,
//! permissions); a handler that wants the socket answers 101 and leaves a [`Takeover`] in the
//! request, and once the 101 is written the socket is the handler's: its frames go straight
//! from the gateway to the socket, with no HTTP dispatcher polled per frame.
//!
//! Any other upgrade request (the UI's LiveView socket, an `h2c` probe) is replayed into an
//! ordinary actix dispatcher on the same connection, which serves it exactly as it would have.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use actix_codec::{Encoder, Framed, FramedParts};
use actix_http::body::{BodySize, BoxBody, MessageBody};
use actix_http::{ConnectionType, HttpMessage, Protocol, Request, Response, StatusCode, h1};
use actix_service::Service;
use actix_web::HttpRequest;
use bytes::{BufMut, BytesMut};
use tokio::io::AsyncWriteExt;

use super::workers::AppIo;

/// The largest answer (other than a 101) written on a taken-over request's path.
const ANSWER_LIMIT: usize = 1024 * 1024;

/// A socket the app took over: the connection and what the client sent past the request head.
pub struct Upgraded {
    pub io: AppIo,
    pub read_buf: BytesMut,
}

type TakeoverFn = Box<dyn FnOnce(Upgraded)>;

/// In the extensions of an upgrade request the app may take over. A handler that answers 101
/// and [`Takeover::set`]s it is given the socket right after the answer is written; any other
/// answer is written and the connection closed (the function is dropped unused).
#[derive(Clone, Default)]
pub struct Takeover(Rc<RefCell<Option<TakeoverFn>>>);

impl Takeover {
    /// The request's slot; `None` for a request that did not come through the upgrade path.
    pub fn of(req: &HttpRequest) -> Option<Takeover> {
        req.extensions().get::<Takeover>().cloned()
    }

    /// What to do with the socket once the 101 is written.
    pub fn set(&self, f: impl FnOnce(Upgraded) + 'static) {
        *self.0.borrow_mut() = Some(Box::new(f));
    }

    fn take(&self) -> Option<TakeoverFn> {
        self.0.borrow_mut().take()
    }
}

/// Paths whose upgrade requests the app may take over (served through `app`, not replayed).
fn may_take_over(path: &str) -> bool {
    path.strip_prefix("/api/v1/projects/")
        .and_then(|rest| rest.strip_suffix("/collab"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// Serves one upgrade request on `framed`'s connection: through `app` with a [`Takeover`] for
/// the collaboration socket, otherwise by replaying it into `plain` (actix's dispatcher without
/// an upgrade path).
pub async fn serve<A, B, P>(req: Request, framed: Framed<AppIo, h1::Codec>, app: &A, plain: &P)
where
    A: Service<Request>,
    A::Response: Into<Response<B>>,
    A::Error: Into<Response<BoxBody>>,
    B: MessageBody,
    P: Service<(AppIo, Protocol, Option<SocketAddr>)>,
{
    let FramedParts {
        mut io,
        mut codec,
        read_buf,
        mut write_buf,
        ..
    } = framed.into_parts();
    if !may_take_over(req.path()) {
        let peer = req.peer_addr();
        // Whatever the dispatcher had not written yet (answers to earlier pipelined requests).
        if !write_buf.is_empty()
            && (io.write_all(&write_buf).await.is_err() || io.flush().await.is_err())
        {
            return;
        }
        let mut replay = head_bytes(&req);
        replay.extend_from_slice(&read_buf);
        io.replay(replay.freeze());
        let _ = plain.call((io, Protocol::Http1, peer)).await;
        return;
    }
    let takeover = Takeover::default();
    req.extensions_mut().insert(takeover.clone());
    let res: Response<B> = match app.call(req).await {
        Ok(r) => r.into(),
        Err(e) => {
            let res: Response<BoxBody> = e.into();
            return answer_and_close(io, codec, write_buf, res).await;
        }
    };
    match takeover.take() {
        Some(then) if res.status() == StatusCode::SWITCHING_PROTOCOLS => {
            let (head, _) = res.into_parts();
            if codec
                .encode(h1::Message::Item((head, BodySize::None)), &mut write_buf)
                .is_err()
                || io.write_all(&write_buf).await.is_err()
                // Out of a TLS stream's buffer too, before the socket changes hands.
                || io.flush().await.is_err()
            {
                return;
            }
            then(Upgraded { io, read_buf });
        }
        _ => answer_and_close(io, codec, write_buf, res).await,
    }
}

/// Writes `res` (its body read whole) and closes the connection.
async fn answer_and_close<B: MessageBody>(
    mut io: AppIo,
    mut codec: h1::Codec,
    mut write_buf: BytesMut,
    res: Response<B>,
) {
    let (mut head, body) = res.into_parts();
    let body = match actix_http::body::to_bytes_limited(body, ANSWER_LIMIT).await {
        Ok(Ok(b)) => b,
        _ => {
            head = Response::with_body(StatusCode::INTERNAL_SERVER_ERROR, ());
            bytes::Bytes::new()
        }
    };
    head.head_mut().set_connection_type(ConnectionType::Close);
    let size = BodySize::Sized(body.len() as u64);
    let encoded = codec
        .encode(h1::Message::Item((head, size)), &mut write_buf)
        .and_then(|()| codec.encode(h1::Message::Chunk(Some(body)), &mut write_buf))
        .and_then(|()| codec.encode(h1::Message::Chunk(None), &mut write_buf));
    if encoded.is_ok() && io.write_all(&write_buf).await.is_ok() && io.flush().await.is_ok() {
        let _ = io.shutdown().await;
    }
}

/// The request head as the client could have sent it, for a dispatcher to read again.
fn head_bytes(req: &Request) -> BytesMut {
    let mut out = BytesMut::with_capacity(512);
    out.put_slice(req.method().as_str().as_bytes());
    out.put_u8(b' ');
    match req.uri().path_and_query() {
        // Origin form, as almost every client sends it.
        Some(pq) if req.uri().scheme().is_none() => out.put_slice(pq.as_str().as_bytes()),
        _ => out.put_slice(req.uri().to_string().as_bytes()),
    }
    out.put_slice(match req.version() {
        actix_http::Version::HTTP_10 => b" HTTP/1.0\r\n",
        _ => b" HTTP/1.1\r\n",
    });
    for (name, value) in req.headers().iter() {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_collaboration_socket_is_taken_over() {
        assert!(may_take_over("/api/v1/projects/p1/collab"));
        assert!(!may_take_over("/api/v1/projects//collab"));
        assert!(!may_take_over("/api/v1/projects/a/b/collab"));
        assert!(!may_take_over("/api/v1/projects/p1/events"));
        assert!(!may_take_over("/ui/ws"));
    }

    // The h1 codec keeps its date clock on the actix runtime.
    #[actix_web::test]
    async fn a_replayed_head_parses_back_to_the_same_request() {
        let raw = b"GET /ui/ws?x=1 HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n";
        let mut codec = h1::Codec::default();
        let mut buf = BytesMut::from(&raw[..]);
        let Ok(Some(h1::Message::Item(req))) = actix_codec::Decoder::decode(&mut codec, &mut buf)
        else {
            panic!("the test request did not parse");
        };
        let mut again = head_bytes(&req);
        let mut codec = h1::Codec::default();
        let Ok(Some(h1::Message::Item(back))) =
            actix_codec::Decoder::decode(&mut codec, &mut again)
        else {
            panic!("the replayed head did not parse");
        };
        assert_eq!(back.method(), req.method());
        assert_eq!(back.uri(), req.uri());
        assert_eq!(back.version(), req.version());
        assert_eq!(back.headers().len(), req.headers().len());
        let cookies: Vec<_> = back.headers().get_all("cookie").collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert!(again.is_empty());
    }
}
