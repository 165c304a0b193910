//! `Connection: close` on an answer given before the request's body was
//! read to its end.
//!
//! A request refused before its body is read (a path that does not parse, a
//! sign-in missing, a route that takes no body) leaves the rest of the body
//! on the connection, and hyper then closes it rather than read it. Whether
//! hyper also said so in the answer's headers depended on how much of the
//! body had arrived: a keep-alive client sometimes sent its next request
//! into a connection being closed, and saw it fail with no answer (a `POST`
//! is not sent again by most clients). So the answer says it itself.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use hyper::body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// The layer: the request's body is watched, and an answer given while
/// some of it is unread closes the connection, saying so.
pub async fn close_if_unread(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use hyper::body::Body as _;
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let read = Arc::new(AtomicBool::new(false));
    let req = req.map(|inner| Body::new(Watched { inner, read: read.clone() }));
    let mut res = next.run(req).await;
    if !read.load(Ordering::Acquire) {
        res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// A request body that says when it has been read to its end.
struct Watched {
    inner: Body,
    read: Arc<AtomicBool>,
}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            _ => false,
        };
        if ended {
            self.read.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
