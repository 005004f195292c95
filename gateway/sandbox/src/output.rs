//! Capture of a plugin's stdout and stderr: bounded in memory, never an
//! error for the guest (a chatty plugin must not fail because of its prints),
//! drained into `tracing` with the merchant's label after the call.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{OutputStream, StreamResult};

/// One captured stream. Clones share the buffer.
#[derive(Clone, Debug)]
pub(crate) struct CapturedOutput {
    inner: Arc<Mutex<Buffer>>,
}

#[derive(Debug, Default)]
struct Buffer {
    kept: Vec<u8>,
    capacity: usize,
    dropped: usize,
}

impl Buffer {
    fn push(&mut self, bytes: &[u8]) {
        let room = self.capacity.saturating_sub(self.kept.len());
        let take = room.min(bytes.len());
        self.kept.extend_from_slice(&bytes[..take]);
        self.dropped += bytes.len() - take;
    }
}

/// What a stream captured during one call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Captured {
    pub text: String,
    /// Bytes written past the budget and dropped.
    pub dropped_bytes: usize,
}

impl CapturedOutput {
    pub(crate) fn new(capacity: usize) -> Self {
        CapturedOutput {
            inner: Arc::new(Mutex::new(Buffer {
                capacity,
                ..Buffer::default()
            })),
        }
    }

    fn push(&self, bytes: &[u8]) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(bytes);
    }

    /// Takes what was captured so far.
    pub(crate) fn take(&self) -> Captured {
        let mut buffer = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = std::mem::take(&mut buffer.kept);
        let dropped_bytes = std::mem::take(&mut buffer.dropped);
        Captured {
            text: String::from_utf8_lossy(&kept).into_owned(),
            dropped_bytes,
        }
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        // Always writable: past the budget, bytes are counted and dropped.
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_capacity_and_counts_the_rest() {
        let out = CapturedOutput::new(8);
        let mut stream = out.p2_stream();
        stream
            .write(Bytes::from_static(b"hello "))
            .expect("never fails");
        stream
            .write(Bytes::from_static(b"world!"))
            .expect("never fails past capacity");
        let captured = out.take();
        assert_eq!(captured.text, "hello wo");
        assert_eq!(captured.dropped_bytes, 4);
        assert_eq!(out.take(), Captured::default());
    }
}
