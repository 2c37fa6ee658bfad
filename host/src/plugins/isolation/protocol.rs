//! The pipe protocol between auth-host and a plugin worker process: length-prefixed binary
//! frames. Plugin calls already carry JSON text (the user, the permissions), so a frame only
//! adds an id, a one-byte kind and length-prefixed strings: no second encoding pass, and
//! nothing for a worker to get wrong beyond lengths, which are checked.
//!
//! ```text
//! frame    := u32 length (little-endian) ‖ payload (at most MAX_FRAME bytes)
//! setup    := u64 timeout ms ‖ u32 threads ‖ str settings   host → worker, first frame
//! hello    := MAGIC ‖ u8 (0 ready, 1 failed) ‖ str          worker → host, first frame
//! request  := u64 id ‖ u8 call ‖ str service ‖ str user     host → worker
//! response := u64 id ‖ u8 answer ‖ str text                 worker → host
//! str      := u32 length ‖ UTF-8 bytes
//! ```

use std::io::{Read, Write};

/// The first bytes a worker sends: the protocol's name and version.
pub const MAGIC: &[u8] = b"auth-host-worker/1";

/// The largest payload either side accepts; permissions of a few MiB are already absurd.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// The call vocabulary is `plugins::calls`'; this module gives it a wire form.
pub use crate::plugins::calls::{Answer, Call};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
    pub call: Call,
    pub service: String,
    /// The user, as the JSON the plugin ABI takes.
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub id: u64,
    pub answer: Answer,
    /// When the plugin started and ended this call, in the worker (Unix nanoseconds, the
    /// host's clock too), for the trace; 0 when not said.
    pub ran_from_ns: u64,
    pub ran_until_ns: u64,
    pub text: String,
}

/// What the host tells a worker first: the alias' settings (JSON) and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// Longest the plugin may take to start.
    pub timeout_ms: u64,
    /// Calls the worker runs at once.
    pub threads: u32,
    pub settings: String,
    /// The sandbox to enter before opening the plugin ([`super::sandbox::SandboxSpec`], JSON).
    pub sandbox: String,
}

/// The worker's first word: loaded and ready (with its summary as JSON), or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    Ready(String),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("a frame of {0} bytes is larger than allowed")]
    TooLarge(usize),
    #[error("the frame ends early")]
    Truncated,
    #[error("unknown {what} {value}")]
    Unknown { what: &'static str, value: u8 },
    #[error("text that is not UTF-8")]
    NotUtf8,
    #[error("not an auth-host plugin worker (or another protocol version)")]
    BadMagic,
    #[error("bytes left over after the frame")]
    Trailing,
}

/// Builds a payload.
struct Writer(Vec<u8>);

impl Writer {
    fn new() -> Self {
        // Room for the length prefix, filled in by `frame`.
        Writer(vec![0; 4])
    }

    fn u8(mut self, value: u8) -> Self {
        self.0.push(value);
        self
    }

    fn u64(mut self, value: u64) -> Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    fn bytes(mut self, value: &[u8]) -> Self {
        self.0.extend_from_slice(value);
        self
    }

    fn str(self, value: &str) -> Self {
        let length = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.bytes(&length.to_le_bytes()).bytes(value.as_bytes())
    }

    /// The whole frame, length prefix included.
    fn frame(mut self) -> Vec<u8> {
        let length = u32::try_from(self.0.len() - 4).unwrap_or(u32::MAX);
        self.0[..4].copy_from_slice(&length.to_le_bytes());
        self.0
    }
}

/// Reads a payload.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.0.len() < n {
            return Err(ProtocolError::Truncated);
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, ProtocolError> {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(bytes))
    }

    fn str(&mut self) -> Result<String, ProtocolError> {
        let mut length = [0u8; 4];
        length.copy_from_slice(self.take(4)?);
        let length = u32::from_le_bytes(length) as usize;
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| ProtocolError::NotUtf8)
    }

    fn end(self) -> Result<(), ProtocolError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::Trailing)
        }
    }
}

impl Call {
    fn from_u8(value: u8) -> Result<Call, ProtocolError> {
        Ok(match value {
            1 => Call::Permissions,
            2 => Call::NewUser,
            3 => Call::Login,
            4 => Call::Logout,
            value => {
                return Err(ProtocolError::Unknown {
                    what: "call",
                    value,
                });
            }
        })
    }
}

impl Answer {
    fn from_u8(value: u8) -> Result<Answer, ProtocolError> {
        Ok(match value {
            0 => Answer::Permissions,
            1 => Answer::Continue,
            2 => Answer::Amend,
            3 => Answer::Refuse,
            4 => Answer::Failed,
            5 => Answer::Panicked,
            6 => Answer::Invalid,
            value => {
                return Err(ProtocolError::Unknown {
                    what: "answer",
                    value,
                });
            }
        })
    }
}

impl Request {
    pub fn frame(&self) -> Vec<u8> {
        Writer::new()
            .u64(self.id)
            .u8(self.call as u8)
            .str(&self.service)
            .str(&self.user)
            .frame()
    }

    pub fn parse(payload: &[u8]) -> Result<Request, ProtocolError> {
        let mut reader = Reader(payload);
        let request = Request {
            id: reader.u64()?,
            call: Call::from_u8(reader.u8()?)?,
            service: reader.str()?,
            user: reader.str()?,
        };
        reader.end()?;
        Ok(request)
    }
}

impl Response {
    pub fn frame(&self) -> Vec<u8> {
        Writer::new()
            .u64(self.id)
            .u8(self.answer as u8)
            .u64(self.ran_from_ns)
            .u64(self.ran_until_ns)
            .str(&self.text)
            .frame()
    }

    pub fn parse(payload: &[u8]) -> Result<Response, ProtocolError> {
        let mut reader = Reader(payload);
        let response = Response {
            id: reader.u64()?,
            answer: Answer::from_u8(reader.u8()?)?,
            ran_from_ns: reader.u64()?,
            ran_until_ns: reader.u64()?,
            text: reader.str()?,
        };
        reader.end()?;
        Ok(response)
    }
}

impl Setup {
    pub fn frame(&self) -> Vec<u8> {
        let mut writer = Writer::new().u64(self.timeout_ms);
        writer.0.extend_from_slice(&self.threads.to_le_bytes());
        writer.str(&self.settings).str(&self.sandbox).frame()
    }

    pub fn parse(payload: &[u8]) -> Result<Setup, ProtocolError> {
        let mut reader = Reader(payload);
        let timeout_ms = reader.u64()?;
        let mut threads = [0u8; 4];
        threads.copy_from_slice(reader.take(4)?);
        let setup = Setup {
            timeout_ms,
            threads: u32::from_le_bytes(threads),
            settings: reader.str()?,
            sandbox: reader.str()?,
        };
        reader.end()?;
        Ok(setup)
    }
}

impl Hello {
    pub fn frame(&self) -> Vec<u8> {
        let (status, text) = match self {
            Hello::Ready(summary) => (0, summary),
            Hello::Failed(reason) => (1, reason),
        };
        Writer::new().bytes(MAGIC).u8(status).str(text).frame()
    }

    pub fn parse(payload: &[u8]) -> Result<Hello, ProtocolError> {
        let mut reader = Reader(payload);
        if reader.take(MAGIC.len()).ok() != Some(MAGIC) {
            return Err(ProtocolError::BadMagic);
        }
        let status = reader.u8()?;
        let text = reader.str()?;
        reader.end()?;
        match status {
            0 => Ok(Hello::Ready(text)),
            1 => Ok(Hello::Failed(text)),
            value => Err(ProtocolError::Unknown {
                what: "hello status",
                value,
            }),
        }
    }
}

/// The length a frame's prefix announces, checked against [`MAX_FRAME`].
pub fn frame_length(prefix: [u8; 4]) -> Result<usize, ProtocolError> {
    let length = u32::from_le_bytes(prefix) as usize;
    if length > MAX_FRAME {
        return Err(ProtocolError::TooLarge(length));
    }
    Ok(length)
}

/// Reads one frame's payload (blocking); `None` at a clean end of the stream.
pub fn read_frame(input: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut prefix = [0u8; 4];
    match input.read_exact(&mut prefix) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let length = frame_length(prefix)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let mut payload = vec![0u8; length];
    input.read_exact(&mut payload)?;
    Ok(Some(payload))
}

/// Writes one whole frame (blocking) and flushes it.
pub fn write_frame(output: &mut impl Write, frame: &[u8]) -> std::io::Result<()> {
    output.write_all(frame)?;
    output.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(frame: &[u8]) -> &[u8] {
        let length = frame_length([frame[0], frame[1], frame[2], frame[3]]).unwrap();
        assert_eq!(length, frame.len() - 4);
        &frame[4..]
    }

    #[test]
    fn frames_round_trip() {
        let request = Request {
            id: u64::MAX - 7,
            call: Call::Login,
            service: "example".into(),
            user: r#"{"id":"5d41","email":"é@example.com"}"#.into(),
        };
        assert_eq!(
            Request::parse(payload(&request.frame())),
            Ok(request.clone())
        );
        for answer in [Answer::Permissions, Answer::Refuse, Answer::Invalid] {
            let response = Response {
                id: 3,
                answer,
                ran_from_ns: 1_764_000_000_000_000_000,
                ran_until_ns: 1_764_000_000_000_250_000,
                text: "{\"a\":1}".into(),
            };
            assert_eq!(Response::parse(payload(&response.frame())), Ok(response));
        }
        for hello in [
            Hello::Ready("{}".into()),
            Hello::Failed("no such file".into()),
        ] {
            assert_eq!(Hello::parse(payload(&hello.frame())), Ok(hello));
        }
        // Frames read back from a stream, then a clean end.
        let mut stream = std::io::Cursor::new([request.frame(), request.frame()].concat());
        assert_eq!(
            read_frame(&mut stream).unwrap().as_deref(),
            Some(payload(&request.frame()))
        );
        assert!(read_frame(&mut stream).unwrap().is_some());
        assert!(read_frame(&mut stream).unwrap().is_none());
    }

    #[test]
    fn damaged_frames_are_refused() {
        let frame = Request {
            id: 1,
            call: Call::Permissions,
            service: "s".into(),
            user: "{}".into(),
        }
        .frame();
        let body = payload(&frame);
        assert_eq!(
            Request::parse(&body[..body.len() - 1]),
            Err(ProtocolError::Truncated)
        );
        assert_eq!(
            Request::parse(&[body, b"x"].concat()),
            Err(ProtocolError::Trailing)
        );
        let mut unknown = body.to_vec();
        unknown[8] = 99;
        assert_eq!(
            Request::parse(&unknown),
            Err(ProtocolError::Unknown {
                what: "call",
                value: 99
            })
        );
        assert_eq!(
            Hello::parse(b"HTTP/1.1 200 OK"),
            Err(ProtocolError::BadMagic)
        );
        assert_eq!(
            frame_length(u32::MAX.to_le_bytes()),
            Err(ProtocolError::TooLarge(u32::MAX as usize))
        );
        let mut bad_utf8 = Response {
            id: 1,
            answer: Answer::Failed,
            ran_from_ns: 0,
            ran_until_ns: 0,
            text: "ab".into(),
        }
        .frame();
        let last = bad_utf8.len() - 1;
        bad_utf8[last] = 0xff;
        assert_eq!(
            Response::parse(payload(&bad_utf8)),
            Err(ProtocolError::NotUtf8)
        );
    }

    proptest::proptest! {
        /// Any bytes: parsed or refused, never a panic.
        #[test]
        fn any_payload(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = Request::parse(&bytes);
            let _ = Response::parse(&bytes);
            let _ = Hello::parse(&bytes);
            let _ = Setup::parse(&bytes);
        }

        #[test]
        fn any_request_round_trips(id in proptest::num::u64::ANY, service in "\\PC{0,40}", user in "\\PC{0,200}") {
            let request = Request { id, call: Call::Permissions, service, user };
            proptest::prop_assert_eq!(Request::parse(&request.frame()[4..]), Ok(request));
        }
    }
}
