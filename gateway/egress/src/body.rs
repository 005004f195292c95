//! The bodies of an outbound exchange, each with its limit: the request
//! body counts what the plugin sends and stops past the cap; the response
//! body stops past its cap, when it stalls longer than the between-bytes
//! timeout, and at the call's deadline.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::EgressError;
use crate::report::Reporter;

/// The plugin's request body, capped at `max` bytes.
pub struct RequestBody<B> {
    inner: Pin<Box<B>>,
    sent: Arc<AtomicU64>,
    max: u64,
}

impl<B> RequestBody<B> {
    pub(crate) fn new(inner: B, sent: Arc<AtomicU64>, max: u64) -> Self {
        RequestBody {
            inner: Box::pin(inner),
            sent,
            max,
        }
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = EgressError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, EgressError>>> {
        let this = &mut *self;
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |data| data.len() as u64);
                let sent = this.sent.fetch_add(len, Ordering::Relaxed) + len;
                if sent > this.max {
                    return Poll::Ready(Some(Err(EgressError::RequestBodyTooLarge(this.max))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                Poll::Ready(Some(Err(EgressError::RequestBody(error.to_string()))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body from the merchant's backend, within the limits.
pub struct ResponseBody {
    incoming: hyper::body::Incoming,
    max: u64,
    read: u64,
    between_bytes: Duration,
    deadline: Instant,
    stall: Pin<Box<Sleep>>,
    reporter: Reporter,
    ended: bool,
}

impl ResponseBody {
    pub(crate) fn new(
        incoming: hyper::body::Incoming,
        max: u64,
        between_bytes: Duration,
        deadline: Instant,
        reporter: Reporter,
    ) -> Self {
        let stall = Box::pin(tokio::time::sleep_until(
            stall_at(between_bytes, deadline).into(),
        ));
        ResponseBody {
            incoming,
            max,
            read: 0,
            between_bytes,
            deadline,
            stall,
            reporter,
            ended: false,
        }
    }

    fn end_with(&mut self, error: EgressError) -> Poll<Option<Result<Frame<Bytes>, EgressError>>> {
        self.ended = true;
        self.reporter.fail(&error);
        Poll::Ready(Some(Err(error)))
    }
}

fn stall_at(between_bytes: Duration, deadline: Instant) -> Instant {
    (Instant::now() + between_bytes).min(deadline)
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = EgressError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, EgressError>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |data| data.len() as u64);
                this.read += len;
                this.reporter.add_response_bytes(len);
                if this.read > this.max {
                    return this.end_with(EgressError::ResponseBodyTooLarge(this.max));
                }
                let next = stall_at(this.between_bytes, this.deadline);
                this.stall.as_mut().reset(next.into());
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.end_with(EgressError::Protocol(error.to_string()))
            }
            Poll::Ready(None) => {
                this.ended = true;
                this.reporter.emit();
                Poll::Ready(None)
            }
            Poll::Pending => match this.stall.as_mut().poll(cx) {
                Poll::Ready(()) if Instant::now() >= this.deadline => {
                    this.end_with(EgressError::NoTimeLeft)
                }
                Poll::Ready(()) => {
                    let ms = this.between_bytes.as_millis() as u64;
                    this.end_with(EgressError::BetweenBytesTimeout(ms))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}
