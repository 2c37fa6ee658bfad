//! `flood <address> <requests> <threads> [seed]`: sends that many malformed or hostile
//! requests to auth-host at `<address>` (host:port, loopback), each on its own connection,
//! and prints one line per outcome, then `seed <n>` to replay the run:
//! - `status <code> <count>`: answered with that status;
//! - `cut <count>`: no answer to a request the flood cut off on purpose (its end never
//!   came), which the server may drop;
//! - `refused <count>`: the connection could not be made (the server is gone or full);
//! - `noanswer <count>`: a whole request the server closed without answering (a handler
//!   that panicked ends its connection so);
//! - `hung <count>`: no answer within the read time limit.
//!
//! The last three are failures, for `tools/fuzz.sh` to report.
//!
//! The requests are random but reproducible from the seed: random bytes, requests cut off
//! midway, oversized headers, invalid UTF-8 in path, query and body, random tokens and
//! forms on every route, random methods, broken chunked bodies.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// xorshift64*: reproducible, fast, good enough to vary inputs (not for secrets).
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// Text of a random length below `max` (see [`Random::text`]).
    fn text_upto(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.text(n)
    }

    /// Printable-ish text with some percent escapes, quotes and invalid sequences.
    fn text(&mut self, n: usize) -> Vec<u8> {
        const PIECES: &[&[u8]] = &[
            b"a",
            b"Z",
            b"0",
            b".",
            b"-",
            b"_",
            b"%",
            b"%zz",
            b"%ff",
            b"%00",
            b"%0d%0a",
            b"\"",
            b"'",
            b"<",
            b">",
            b"&",
            b"=",
            b";",
            b"/",
            b"..",
            b"\xff",
            b"\xc3(",
            b"\xe2\x82",
            b"+",
            b"*",
            b"eyJ",
            b"jwt=",
            b"next=",
            b"\t",
        ];
        let mut out = Vec::new();
        while out.len() < n {
            out.extend_from_slice(PIECES[self.below(PIECES.len())]);
        }
        out
    }
}

const ROUTES: &[&str] = &[
    "/auth/check",
    "/auth/authorize",
    "/auth/update",
    "/auth/logout",
    "/auth/resolve",
    "/auth/get_profile",
    "/auth/public-key",
    "/auth/.well-known/jwks.json",
    "/auth/health",
    "/auth/login/dev",
    "/auth/login/nope",
    "/auth/oauth_callback",
    "/user/check",
    "/admin/reload",
    "/nowhere",
    "/auth/",
    "/",
];

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH", "BREW",
];

/// One hostile request, as bytes, and whether to cut the connection after sending it.
fn request(random: &mut Random) -> (Vec<u8>, bool) {
    let route = random.pick(ROUTES);
    let method = random.pick(METHODS);
    match random.below(8) {
        // Random bytes, then the end of what this client sends.
        0 => {
            let n = random.below(2048);
            (random.bytes(n), true)
        }
        // A request cut off midway (the server sees the connection end).
        1 => {
            let mut full = format!(
                "POST {route}?jwt=abc HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nusername="
            )
            .into_bytes();
            full.truncate(random.below(full.len()));
            (full, true)
        }
        // Oversized headers.
        2 => {
            let size = 1024 * (1 + random.below(200));
            let mut out = format!("GET {route} HTTP/1.1\r\nHost: x\r\nX-Big: ").into_bytes();
            out.extend(std::iter::repeat_n(b'a', size));
            out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
            (out, false)
        }
        // Invalid UTF-8 and escapes in path and query.
        3 => {
            let mut out = format!("{method} {route}").into_bytes();
            let path = random.text_upto(300);
            out.extend_from_slice(&path);
            out.extend_from_slice(b"?jwt=");
            let query = random.text_upto(600);
            out.extend_from_slice(&query);
            out.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            (out, false)
        }
        // A random token in every place a token goes.
        4 => {
            let segments: Vec<String> = (0..1 + random.below(4))
                .map(|_| {
                    let n = random.below(400);
                    let bytes = random.bytes(n);
                    bytes
                        .iter()
                        .map(|b| {
                            let alphabet =
                                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                            alphabet[*b as usize % 64] as char
                        })
                        .collect()
                })
                .collect();
            let token = segments.join(".");
            let out = format!(
                "{method} {route}?jwt={token}&service=example&username=u{}&callback=cb{} HTTP/1.1\r\n\
                 Host: x\r\nauth-token: {token}\r\nAuthorization: Bearer {token}\r\n\
                 Cookie: auth_host_browser={token}\r\nConnection: close\r\n\r\n",
                random.below(1000),
                random.below(1000),
            );
            (out.into_bytes(), false)
        }
        // A form body with random content, sometimes lying about its length.
        5 => {
            let body = random.text_upto(4096);
            let length = match random.below(3) {
                0 => body.len(),
                1 => body.len() / 2,
                _ => body.len() + 10,
            };
            let mut out = format!(
                "POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {length}\r\nConnection: close\r\n\r\n"
            )
            .into_bytes();
            out.extend_from_slice(&body);
            (out, length > body.len())
        }
        // Broken chunked encoding.
        6 => {
            let mut out = format!(
                "POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            )
            .into_bytes();
            let chunk = random.text_upto(200);
            out.extend_from_slice(
                random
                    .pick(&["zz", "ffffffffffffffffff", "5", "-1", ""])
                    .as_bytes(),
            );
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&chunk);
            out.extend_from_slice(b"\r\n0\r\n\r\n");
            (out, false)
        }
        // Random header names and values.
        _ => {
            let mut out = format!("{method} {route} HTTP/1.1\r\nHost: x\r\n").into_bytes();
            for _ in 0..random.below(20) {
                let name = random.text_upto(30);
                let value = random.text_upto(200);
                out.extend_from_slice(&name);
                out.extend_from_slice(b": ");
                out.extend_from_slice(&value);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"Connection: close\r\n\r\n");
            (out, false)
        }
    }
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Status(u16),
    /// No answer to a request cut off on purpose.
    Cut,
    Refused,
    NoAnswer,
    Hung,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Status(code) => write!(f, "status {code}"),
            Outcome::Cut => f.write_str("cut"),
            Outcome::Refused => f.write_str("refused"),
            Outcome::NoAnswer => f.write_str("noanswer"),
            Outcome::Hung => f.write_str("hung"),
        }
    }
}

/// How long a request may wait for its answer.
const READ_LIMIT: Duration = Duration::from_secs(15);

/// Sends one request and says how it ended.
fn send(address: &str, bytes: &[u8], cut: bool) -> Outcome {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return Outcome::Refused;
    };
    if stream.set_read_timeout(Some(READ_LIMIT)).is_err()
        || stream.set_write_timeout(Some(READ_LIMIT)).is_err()
    {
        return Outcome::Refused;
    }
    // The server may answer (and close) before reading everything: not an error.
    let _ = stream.write_all(bytes);
    if cut {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut head = [0u8; 12];
    let mut read = 0;
    let mut hung = false;
    while read < head.len() {
        match stream.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                hung = true;
                break;
            }
            Err(_) => break,
        }
    }
    let status = std::str::from_utf8(&head[..read])
        .ok()
        .and_then(|line| line.strip_prefix("HTTP/1.1 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    match (status, hung, cut) {
        (Some(code), _, _) => Outcome::Status(code),
        (None, true, _) => Outcome::Hung,
        (None, false, true) => Outcome::Cut,
        (None, false, false) => Outcome::NoAnswer,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || {
        eprintln!("usage: flood <host:port> <requests> <threads> [seed]");
        std::process::exit(2);
    };
    let (Some(address), Some(requests), Some(threads)) = (
        args.get(1).cloned(),
        args.get(2).and_then(|n| n.parse::<usize>().ok()),
        args.get(3).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        return usage();
    };
    let seed = args
        .get(4)
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
        | 1;
    let statuses: Arc<Mutex<BTreeMap<Outcome, usize>>> = Arc::default();
    let workers: Vec<_> = (0..threads.max(1))
        .map(|worker| {
            let address = address.clone();
            let statuses = Arc::clone(&statuses);
            let share = requests / threads.max(1) + usize::from(worker < requests % threads.max(1));
            std::thread::spawn(move || {
                let spread = (worker as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut random = Random(seed.wrapping_add(spread) | 1);
                let mut mine: BTreeMap<Outcome, usize> = BTreeMap::new();
                for _ in 0..share {
                    let (bytes, cut) = request(&mut random);
                    *mine.entry(send(&address, &bytes, cut)).or_default() += 1;
                }
                if let Ok(mut all) = statuses.lock() {
                    for (status, count) in mine {
                        *all.entry(status).or_default() += count;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    let statuses = statuses.lock().map(|s| s.clone()).unwrap_or_default();
    for (outcome, count) in &statuses {
        println!("{outcome} {count}");
    }
    println!("seed {seed}");
}
