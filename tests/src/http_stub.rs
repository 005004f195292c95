//! Small HTTP/1.1 servers on loopback for the outbound tests, written on raw
//! sockets so that they can misbehave exactly as asked: answer, hang,
//! redirect, or send a body larger than any cap; optionally behind TLS with
//! a self-signed certificate. Each records the requests it read.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// How a stub answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// `200 OK` with `hello`.
    Answer,
    /// Reads the request and never answers.
    Hang,
    /// Hangs on the first request, answers every later one.
    HangOnce,
    /// `302 Found` to the cloud metadata address.
    Redirect,
    /// `200 OK` with this many bytes and a `Content-Length`.
    Large(usize),
    /// `200 OK` with this many bytes, chunked (no length announced).
    LargeChunked(usize),
}

/// A running stub.
pub struct HttpStub {
    pub port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl HttpStub {
    pub async fn start(behaviour: Behaviour) -> HttpStub {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            let mut first = true;
            while let Ok((stream, _)) = listener.accept().await {
                let behaviour = match behaviour {
                    Behaviour::HangOnce if first => Behaviour::Hang,
                    Behaviour::HangOnce => Behaviour::Answer,
                    other => other,
                };
                first = false;
                tokio::spawn(serve(stream, behaviour, seen.clone()));
            }
        });
        HttpStub { port, requests }
    }

    /// A stub behind TLS with a self-signed certificate for `localhost`
    /// (which no client that verifies certificates accepts).
    pub async fn start_tls(behaviour: Behaviour) -> HttpStub {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("a self-signed certificate");
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .expect("a server configuration");
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                tokio::spawn(async move {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve(stream, behaviour, seen).await;
                    }
                });
            }
        });
        HttpStub { port, requests }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request heads read so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    behaviour: Behaviour,
    seen: Arc<Mutex<Vec<String>>>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    if let Ok(mut requests) = seen.lock() {
        requests.push(String::from_utf8_lossy(&head).into_owned());
    }
    let answer = match behaviour {
        Behaviour::Hang | Behaviour::HangOnce => {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            return;
        }
        Behaviour::Answer => {
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello".to_vec()
        }
        Behaviour::Redirect => b"HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/\r\n\
              content-length: 0\r\nconnection: close\r\n\r\n"
            .to_vec(),
        Behaviour::Large(size) => {
            let mut answer =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n")
                    .into_bytes();
            answer.resize(answer.len() + size, b'x');
            answer
        }
        Behaviour::LargeChunked(size) => {
            let mut answer =
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
                    .to_vec();
            for _ in 0..size / 8192 {
                answer.extend_from_slice(b"2000\r\n");
                answer.resize(answer.len() + 8192, b'x');
                answer.extend_from_slice(b"\r\n");
            }
            answer.extend_from_slice(b"0\r\n\r\n");
            answer
        }
    };
    let _ = stream.write_all(&answer).await;
    let _ = stream.shutdown().await;
}
