//! Request body limits on the forward path: a `Content-Length` over the route's limit is
//! refused before anything is sent ([`declared_too_large`]); a streamed body (chunked,
//! HTTP/2 without a length) is counted as it goes and cut when it crosses the limit
//! ([`Capped`]), which turns the failed upstream call into 413 `payload_too_large`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::BoxError;

/// Whether the request declares a body larger than `max`. An unreadable `Content-Length` was
/// already refused by hyper.
pub fn declared_too_large(headers: &HeaderMap, max: u64) -> bool {
    headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .filter_map(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .any(|n| n > max)
}

/// Whether a [`Capped`] body crossed its limit.
#[derive(Debug, Clone, Default)]
pub struct Exceeded(Arc<AtomicBool>);

impl Exceeded {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A request body that fails once more than its limit has streamed through.
#[derive(Debug)]
pub struct Capped {
    inner: Incoming,
    left: u64,
    exceeded: Exceeded,
}

impl Capped {
    pub fn new(inner: Incoming, max: u64) -> (Capped, Exceeded) {
        let exceeded = Exceeded::default();
        let body = Capped {
            inner,
            left: max,
            exceeded: exceeded.clone(),
        };
        (body, exceeded)
    }
}

impl Body for Capped {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let n = data.len() as u64;
            if n > self.left {
                self.left = 0;
                self.exceeded.0.store(true, Ordering::Relaxed);
                return Poll::Ready(Some(Err(
                    "the request body is over the route's limit".into()
                )));
            }
            self.left -= n;
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_over_the_limit_is_seen_even_repeated() {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_LENGTH, "10".parse().unwrap());
        assert!(!declared_too_large(&h, 10));
        assert!(declared_too_large(&h, 9));
        h.append(http::header::CONTENT_LENGTH, "11".parse().unwrap());
        assert!(declared_too_large(&h, 10));
        assert!(!declared_too_large(&HeaderMap::new(), 0));
    }
}
