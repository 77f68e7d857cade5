//! A tiny HTTP/1.1 server that the fakes run on.
//!
//! It is written by hand because the fakes need control that a framework hides: answering
//! nothing and closing the socket, streaming a chunked body with pauses (SSE), and counting
//! TCP connections so a test can prove that the bot keeps its connections alive. The shape
//! follows ureq 2.x's `testserver.rs`: a real `TcpListener` on 127.0.0.1:0, one thread per
//! connection, and a `Drop` that stops the server. The server is generic over the stream,
//! so the GigaChat fake runs the same code over TLS.

#![allow(dead_code)] // a toolbox: not every test uses every part

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Read + Write, so a plain `TcpStream` and a TLS stream can be boxed alike.
pub trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// One accepted connection, plain or TLS.
pub type Stream = Box<dyn ReadWrite + Send>;

/// The largest request head or body the fakes accept; a bot never sends more.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A parsed request. Header names are lower-case.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The raw query string without `?`, empty if there was none.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header with this name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// The first header with this name (any case) in lower-case-named `headers`; the fakes'
/// records of requests use it too.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
}

/// Calls `cond` every 5 ms until it holds; after `timeout` panics with `what` and `dump()`.
/// Tests wait on the fakes' records this way, never by sleeping a fixed time.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    cond: impl Fn() -> bool,
    dump: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}\n{}", dump());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How a handler answers: one full response, a chunked stream, or nothing at all.
pub struct Responder<'a> {
    stream: &'a mut dyn Write,
    keep_alive: bool,
    state: Answer,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    Nothing,
    Streaming,
    Complete,
    Broken,
}

impl Responder<'_> {
    /// Sends a complete response with `Content-Length`. Write errors mean the client is gone;
    /// the connection is then closed.
    pub fn send(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        assert_eq!(self.state, Answer::Nothing, "one response per request");
        let mut bytes = self.head(status, headers, &format!("Content-Length: {}", body.len()));
        bytes.extend_from_slice(body);
        self.state = match self.stream.write_all(&bytes).and_then(|()| self.stream.flush()) {
            Ok(()) => Answer::Complete,
            Err(_) => Answer::Broken,
        };
    }

    /// Starts a `Transfer-Encoding: chunked` response; follow with `chunk` and `end_stream`.
    pub fn start_stream(&mut self, status: u16, headers: &[(&str, &str)]) -> io::Result<()> {
        assert_eq!(self.state, Answer::Nothing, "one response per request");
        let bytes = self.head(status, headers, "Transfer-Encoding: chunked");
        self.state = Answer::Broken;
        self.stream.write_all(&bytes)?;
        self.stream.flush()?;
        self.state = Answer::Streaming;
        Ok(())
    }

    /// Writes one chunk of a streamed response and flushes it.
    pub fn chunk(&mut self, data: &[u8]) -> io::Result<()> {
        assert_eq!(self.state, Answer::Streaming, "chunk before start_stream");
        if data.is_empty() {
            return Ok(()); // an empty chunk would end the body
        }
        let mut bytes = format!("{:x}\r\n", data.len()).into_bytes();
        bytes.extend_from_slice(data);
        bytes.extend_from_slice(b"\r\n");
        let written = self.stream.write_all(&bytes).and_then(|()| self.stream.flush());
        if written.is_err() {
            self.state = Answer::Broken;
        }
        written
    }

    /// Ends a streamed response properly.
    pub fn end_stream(&mut self) -> io::Result<()> {
        assert_eq!(self.state, Answer::Streaming, "end_stream before start_stream");
        self.state = Answer::Broken;
        self.stream.write_all(b"0\r\n\r\n")?;
        self.stream.flush()?;
        self.state = Answer::Complete;
        Ok(())
    }

    /// Closes the connection without (finishing) an answer: fault injection.
    pub fn drop_connection(&mut self) {
        self.state = Answer::Broken;
    }

    fn head(&self, status: u16, headers: &[(&str, &str)], framing: &str) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(framing);
        head.push_str("\r\n");
        if !self.keep_alive {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        head.into_bytes()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// A running server; dropping it stops accepting and closes every open connection.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
    open: Arc<Mutex<HashMap<u64, TcpStream>>>,
    accept_thread: Option<JoinHandle<()>>,
}

impl Server {
    /// A plain-HTTP server.
    pub fn plain(handler: impl Fn(&Request, &mut Responder) + Send + Sync + 'static) -> Server {
        Server::start(|tcp| Ok(Box::new(tcp) as Stream), handler)
    }

    /// A server whose connections pass through `accept` first (e.g. a TLS handshake, which
    /// runs on the connection's own thread).
    pub fn start(
        accept: impl Fn(TcpStream) -> io::Result<Stream> + Send + Sync + 'static,
        handler: impl Fn(&Request, &mut Responder) + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address of the listener");
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(Mutex::new(HashMap::new()));
        let accept = Arc::new(accept);
        let handler = Arc::new(handler);
        let accept_thread = {
            let (stop, connections, open) = (stop.clone(), connections.clone(), open.clone());
            thread::spawn(move || {
                let next_id = AtomicU64::new(0);
                for tcp in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(tcp) = tcp else { continue };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let _ = tcp.set_nodelay(true);
                    let id = next_id.fetch_add(1, Ordering::SeqCst);
                    if let Ok(clone) = tcp.try_clone() {
                        open.lock().unwrap().insert(id, clone);
                    }
                    let (accept, handler, open) = (accept.clone(), handler.clone(), open.clone());
                    thread::spawn(move || {
                        if let Ok(stream) = accept(tcp) {
                            serve(stream, &*handler);
                        }
                        open.lock().unwrap().remove(&id);
                    });
                }
            })
        };
        Server { addr, stop, connections, open, accept_thread: Some(accept_thread) }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
        // Connection threads end when their socket is shut down under them.
        for tcp in self.open.lock().unwrap().values() {
            let _ = tcp.shutdown(Shutdown::Both);
        }
    }
}

/// Serves requests on one connection until it closes, breaks, or asks to close.
fn serve(stream: Stream, handler: &(dyn Fn(&Request, &mut Responder) + Send + Sync)) {
    let mut reader = BufReader::new(stream);
    loop {
        let request = match read_request(&mut reader) {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(_) => {
                let _ = reader.get_mut().write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return;
            }
        };
        let keep_alive =
            !request.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let mut responder =
            Responder { stream: reader.get_mut(), keep_alive, state: Answer::Nothing };
        handler(&request, &mut responder);
        if responder.state != Answer::Complete || !keep_alive {
            return;
        }
    }
}

/// Reads one request; `Ok(None)` on a clean end of the connection before it starts.
fn read_request(reader: &mut BufReader<Stream>) -> io::Result<Option<Request>> {
    let mut line = String::new();
    while line.trim().is_empty() {
        line.clear();
        if read_line(reader, &mut line)? == 0 {
            return Ok(None);
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(bad("not HTTP/1.x"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut request = Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers: Vec::new(),
        body: Vec::new(),
    };
    let mut head_size = line.len();
    loop {
        line.clear();
        head_size += read_line(reader, &mut line)?;
        if head_size > MAX_HEAD {
            return Err(bad("request head too large"));
        }
        let header = line.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').ok_or_else(|| bad("malformed header"))?;
        request.headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    if request.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        reader.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        request.body = read_chunked(reader)?;
    } else if let Some(length) = request.header("content-length") {
        let length: usize = length.parse().map_err(|_| bad("bad Content-Length"))?;
        if length > MAX_BODY {
            return Err(bad("body too large"));
        }
        request.body = vec![0; length];
        reader.read_exact(&mut request.body)?;
    }
    Ok(Some(request))
}

fn read_chunked(reader: &mut BufReader<Stream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        read_line(reader, &mut line)?;
        let size = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size.trim(), 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            loop {
                line.clear();
                if read_line(reader, &mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(bad("body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        line.clear();
        read_line(reader, &mut line)?; // the CRLF after the data
    }
}

/// Reads up to and including `\n`; non-UTF-8 bytes become U+FFFD.
fn read_line(reader: &mut BufReader<Stream>, line: &mut String) -> io::Result<usize> {
    let mut bytes = Vec::new();
    let n = reader.by_ref().take(MAX_HEAD as u64).read_until(b'\n', &mut bytes)?;
    line.push_str(&String::from_utf8_lossy(&bytes));
    Ok(n)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echoes the request: method, path, query, a header and the body.
    fn echo_server() -> Server {
        Server::plain(|request, responder| match request.path.as_str() {
            "/drop" => responder.drop_connection(),
            "/stream" => {
                responder.start_stream(200, &[("Content-Type", "text/event-stream")]).unwrap();
                responder.chunk(b"data: 1\n\n").unwrap();
                responder.chunk(b"data: 2\n\n").unwrap();
                responder.end_stream().unwrap();
            }
            _ => {
                let echo = format!(
                    "{} {} {} {:?} {}",
                    request.method,
                    request.path,
                    request.query,
                    request.header("X-Test"),
                    String::from_utf8_lossy(&request.body)
                );
                responder.send(200, &[("Content-Type", "text/plain")], echo.as_bytes());
            }
        })
    }

    /// Reads one response whose body has Content-Length, returning it whole.
    fn read_response(reader: &mut BufReader<TcpStream>) -> String {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            head.push_str(&line);
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |n| n.trim().parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        head + &String::from_utf8(body).unwrap()
    }

    #[test]
    fn keep_alive_chunked_bodies_and_connection_close() {
        let server = echo_server();
        let tcp = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        let mut reader = BufReader::new(tcp.try_clone().unwrap());
        let mut writer = tcp;
        writer
            .write_all(
                b"POST /a?x=1 HTTP/1.1\r\nHost: h\r\nX-Test: yes\r\nContent-Length: 5\r\n\r\nhello",
            )
            .unwrap();
        let first = read_response(&mut reader);
        assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
        assert!(first.ends_with("POST /a x=1 Some(\"yes\") hello"), "{first}");
        writer
            .write_all(b"POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n")
            .unwrap();
        assert!(read_response(&mut reader).ends_with("POST /b  None abcde"));
        writer.write_all(b"GET /c HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        let last = read_response(&mut reader);
        assert!(last.contains("Connection: close\r\n"), "{last}");
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "the server closed the connection");
        assert_eq!(server.connections(), 1);
    }

    #[test]
    fn streams_drops_and_stops() {
        let server = echo_server();
        let tcp = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        let mut reader = BufReader::new(tcp.try_clone().unwrap());
        let mut writer = tcp;
        writer.write_all(b"GET /stream HTTP/1.1\r\n\r\n").unwrap();
        let mut text = String::new();
        while !text.ends_with("0\r\n\r\n") {
            reader.read_line(&mut text).unwrap();
        }
        assert!(text.contains("Transfer-Encoding: chunked\r\n"), "{text}");
        assert!(
            text.ends_with("\r\n\r\n9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n"),
            "{text:?}"
        );

        writer.write_all(b"GET /drop HTTP/1.1\r\n\r\n").unwrap();
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        assert!(rest.is_empty(), "no answer at all");

        // An idle keep-alive connection is closed when the server is dropped.
        let idle = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        let mut idle_reader = BufReader::new(idle.try_clone().unwrap());
        (&idle).write_all(b"GET /x HTTP/1.1\r\n\r\n").unwrap();
        read_response(&mut idle_reader);
        drop(server);
        let mut rest = Vec::new();
        let _ = idle_reader.read_to_end(&mut rest);
        assert!(rest.is_empty());
    }
}
