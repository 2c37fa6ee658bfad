//! `flood <address> <requests> <threads> [seed]`: sends that many malformed or hostile
//! requests to auth-host at `<address>` (host:port, loopback), each on its own connection,
//! and prints one line per outcome, then `seed <n>` to replay the run:
//! - `status <code> <count>`: answered with that status;
//! - `cut <count>`: no answer to a request the flood cut off on purpose (its end never
//!   came), which the server may drop;
//! - `timeout <count>`: the server's own time-out answer (503 "request took too long") to a
//!   request the flood left incomplete on purpose (cut off, or a body that may never end):
//!   by design;
//! - `stalled <count>`: that time-out answer to a whole request: a handler that hung;
//! - `refused <count>`: the connection could not be made (the server is gone or full);
//! - `noanswer <count>`: a whole request the server closed without answering (a handler
//!   that panicked ends its connection so);
//! - `hung <count>`: no answer within the read time limit.
//!
//! `stalled` and the last three are failures, for `tools/fuzz.sh` to report.
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

/// How a request's bytes end, as the flood sent them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Everything the server needs to answer was sent.
    Whole,
    /// Cut off: the connection's sending side is shut after the bytes.
    Cut,
    /// Sent whole, but its body may never end for the server (a broken chunked body left
    /// open): the server's time-out is the designed answer.
    OpenBody,
}

/// `Ending::Cut` when `cut`, else `Ending::Whole`.
fn cut_if(cut: bool) -> Ending {
    if cut { Ending::Cut } else { Ending::Whole }
}

/// One hostile request, as bytes, and how it ends.
fn request(random: &mut Random) -> (Vec<u8>, Ending) {
    let route = random.pick(ROUTES);
    let method = random.pick(METHODS);
    match random.below(8) {
        // Random bytes, then the end of what this client sends.
        0 => {
            let n = random.below(2048);
            (random.bytes(n), Ending::Cut)
        }
        // A request cut off midway (the server sees the connection end).
        1 => {
            let mut full = format!(
                "POST {route}?jwt=abc HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nusername="
            )
            .into_bytes();
            full.truncate(random.below(full.len()));
            (full, Ending::Cut)
        }
        // Oversized headers.
        2 => {
            let size = 1024 * (1 + random.below(200));
            let mut out = format!("GET {route} HTTP/1.1\r\nHost: x\r\nX-Big: ").into_bytes();
            out.extend(std::iter::repeat_n(b'a', size));
            out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
            (out, Ending::Whole)
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
            (out, Ending::Whole)
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
            (out.into_bytes(), Ending::Whole)
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
            (out, cut_if(length > body.len()))
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
            (out, Ending::OpenBody)
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
            (out, Ending::Whole)
        }
    }
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Status(u16),
    /// No answer to a request cut off on purpose.
    Cut,
    /// The server's time-out answer to a request left incomplete on purpose.
    TimedOut,
    /// The server's time-out answer to a whole request: its handler hung.
    Stalled,
    Refused,
    NoAnswer,
    Hung,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Status(code) => write!(f, "status {code}"),
            Outcome::Cut => f.write_str("cut"),
            Outcome::TimedOut => f.write_str("timeout"),
            Outcome::Stalled => f.write_str("stalled"),
            Outcome::Refused => f.write_str("refused"),
            Outcome::NoAnswer => f.write_str("noanswer"),
            Outcome::Hung => f.write_str("hung"),
        }
    }
}

/// How long a request may wait for its answer.
const READ_LIMIT: Duration = Duration::from_secs(15);

/// The most of an answer read (auth-host's error bodies are small).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What auth-host answers (503) when a request outlasts its `request_timeout`.
const TIME_OUT_ANSWER: &[u8] = b"request took too long";

/// Reads an answer's status line, headers and (by its Content-Length) body, up to
/// [`MAX_ANSWER_BYTES`]; what was read, and whether the read limit passed first.
fn read_answer(stream: &mut impl Read) -> (Vec<u8>, bool) {
    let mut answer = Vec::new();
    let mut piece = [0u8; 4096];
    loop {
        if let Some(head_end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|n| n.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if answer.len() >= head_end + 4 + length {
                return (answer, false);
            }
        }
        if answer.len() >= MAX_ANSWER_BYTES {
            return (answer, false);
        }
        match stream.read(&mut piece) {
            Ok(0) => return (answer, false),
            Ok(n) => answer.extend_from_slice(&piece[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (answer, true);
            }
            Err(_) => return (answer, false),
        }
    }
}

/// How a request sent as `ending` ended, from what came back.
fn outcome(answer: &[u8], hung: bool, ending: Ending) -> Outcome {
    let status = answer
        .get(..12)
        .and_then(|line| std::str::from_utf8(line).ok())
        .and_then(|line| line.strip_prefix("HTTP/1.1 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    let timed_out = status == Some(503)
        && answer
            .windows(TIME_OUT_ANSWER.len())
            .any(|w| w == TIME_OUT_ANSWER);
    match (status, hung, ending) {
        // Only a request the flood left incomplete may wait out the server's time limit.
        (Some(_), _, Ending::Whole) if timed_out => Outcome::Stalled,
        (Some(_), _, Ending::Cut | Ending::OpenBody) if timed_out => Outcome::TimedOut,
        (Some(code), _, _) => Outcome::Status(code),
        (None, true, _) => Outcome::Hung,
        (None, false, Ending::Cut) => Outcome::Cut,
        (None, false, _) => Outcome::NoAnswer,
    }
}

/// Sends one request and says how it ended.
fn send(address: &str, bytes: &[u8], ending: Ending) -> Outcome {
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
    if ending == Ending::Cut {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let (answer, hung) = read_answer(&mut stream);
    outcome(&answer, hung, ending)
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
                    let (bytes, ending) = request(&mut random);
                    *mine.entry(send(&address, &bytes, ending)).or_default() += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    const TIME_OUT: &[u8] =
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
                              content-length: 35\r\n\r\n{\"error\":\"request took too long\"}";

    #[test]
    fn the_time_out_answer_is_a_failure_only_for_a_whole_request() {
        let read = |bytes: &[u8]| read_answer(&mut std::io::Cursor::new(bytes.to_vec()));
        let (answer, hung) = read(TIME_OUT);
        assert!(!hung);
        assert_eq!(outcome(&answer, hung, Ending::Whole), Outcome::Stalled);
        assert_eq!(outcome(&answer, hung, Ending::OpenBody), Outcome::TimedOut);
        assert_eq!(outcome(&answer, hung, Ending::Cut), Outcome::TimedOut);
        // Another 503 (a plugin restarting, a database down) is a status like any other.
        let (other, _) = read(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 31\r\n\r\n\
              {\"error\":\"database unavailable\"}",
        );
        assert_eq!(outcome(&other, false, Ending::Whole), Outcome::Status(503));
        assert_eq!(outcome(b"", false, Ending::Whole), Outcome::NoAnswer);
        assert_eq!(outcome(b"", false, Ending::Cut), Outcome::Cut);
        assert_eq!(outcome(b"", true, Ending::Whole), Outcome::Hung);
    }

    /// Against a server that answers every request with the time-out answer after reading
    /// it (as auth-host does with a handler that hangs), the flood reports whole requests as
    /// stalled.
    #[test]
    fn a_server_that_times_out_whole_requests_is_caught() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut stream = stream;
                    // Everything the client sends is read (until it pauses or ends), so
                    // that closing never resets the connection under the answer.
                    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
                    let mut sink = [0u8; 65536];
                    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                    let _ = stream.write_all(TIME_OUT);
                    let _ = stream.shutdown(Shutdown::Write);
                    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                });
            }
        });
        let mut random = Random(7);
        let mut stalled = 0;
        let mut whole = 0;
        for _ in 0..40 {
            let (bytes, ending) = request(&mut random);
            let got = send(&address, &bytes, ending);
            if ending == Ending::Whole {
                whole += 1;
                assert_eq!(got, Outcome::Stalled, "{}", String::from_utf8_lossy(&bytes));
                stalled += 1;
            } else {
                assert_eq!(got, Outcome::TimedOut);
            }
        }
        assert!(whole > 0 && stalled == whole);
    }
}
