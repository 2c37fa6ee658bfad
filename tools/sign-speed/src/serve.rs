//! `sign-speed serve PORT ALGORITHM`: every request on 127.0.0.1:PORT is answered with one
//! fresh signature (hex) of a token-sized message, signed where the request is served. Nothing else: no routing, parsing,
//! storage or plugin call, so what it reaches is the floor of a server that signs per request.

use std::convert::Infallible;
use std::fmt::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::{MESSAGE, SigningKey};

pub fn serve(port: u16, key: SigningKey) -> Result<(), String> {
    let key = Arc::new(key);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| format!("cannot listen on {address}: {e}"))?;
        eprintln!("sign-speed: serving on {address}");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let key = Arc::clone(&key);
            let service = service_fn(move |_: Request<hyper::body::Incoming>| {
                let key = Arc::clone(&key);
                async move { Ok::<_, Infallible>(answer(&key)) }
            });
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

fn answer(key: &SigningKey) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    match key.sign(&SystemRandom::new(), MESSAGE) {
        Ok(signature) => {
            let mut body = String::with_capacity(2 * signature.len() + 1);
            for byte in &signature {
                let _ = write!(body, "{byte:02x}");
            }
            body.push('\n');
            *response.body_mut() = Full::new(Bytes::from(body));
        }
        Err(error) => {
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            *response.body_mut() = Full::new(Bytes::from(error));
        }
    }
    response
}
