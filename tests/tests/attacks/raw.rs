//! A raw HTTP/1.1 client over a TCP socket. An attacker's spellings must reach the server
//! byte for byte: `reqwest` (through the `url` crate) resolves `..` segments and may
//! re-encode a path, so the subject matrix and the body-limit attacks write their request
//! lines themselves.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response as read off the wire.
#[derive(Debug, Clone)]
pub struct RawResp {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub text: String,
}

impl RawResp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn request_id(&self) -> Option<String> {
        self.header(crate::support::auth::REQUEST_ID)
            .map(str::to_string)
    }
    /// Short, for failure messages.
    pub fn brief(&self) -> String {
        let mut t: String = self.text.chars().take(200).collect();
        if t.len() < self.text.len() {
            t.push('…');
        }
        format!(
            "{} {} {}",
            self.status,
            self.header("content-type").unwrap_or(""),
            t.replace('\n', " ")
        )
    }
}

/// `host:port` of a server URL.
pub fn addr(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string()
}

/// Sends `method target` exactly as given (the target is not normalised or re-encoded),
/// with `headers` and an optional body, and reads the whole response (`Connection: close`).
pub async fn request(
    url: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Result<RawResp, String> {
    request_with(url, method, target, headers, body, false).await
}

/// As [`request`]; with `chunked` the body goes as `Transfer-Encoding: chunked` (no
/// `Content-Length` for the server to check up front).
pub async fn request_with(
    url: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
    chunked: bool,
) -> Result<RawResp, String> {
    let host = addr(url);
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    if let Some((ct, bytes)) = body {
        head += &format!("Content-Type: {ct}\r\n");
        if chunked {
            head += "Transfer-Encoding: chunked\r\n";
        } else {
            head += &format!("Content-Length: {}\r\n", bytes.len());
        }
    }
    head += "\r\n";
    let stream = TcpStream::connect(&host)
        .await
        .map_err(|e| format!("connect {host}: {e}"))?;
    let (mut rd, mut wr) = stream.into_split();
    let payload: Vec<u8> = body.map(|(_, b)| b.to_vec()).unwrap_or_default();
    // Write while reading: a server may answer (413) before it has read a large body.
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        for chunk in payload.chunks(64 * 1024) {
            if chunked {
                wr.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                wr.write_all(chunk).await?;
                wr.write_all(b"\r\n").await?;
            } else {
                wr.write_all(chunk).await?;
            }
        }
        if chunked {
            wr.write_all(b"0\r\n\r\n").await?;
        }
        wr.flush().await?;
        // Keep the write half open until the reader is done (dropping it half-closes).
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<_, std::io::Error>(wr)
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if complete(&buf) {
                        break;
                    }
                }
                // A reset after the response was sent still leaves the response readable.
                Err(_) if !buf.is_empty() => break,
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        Ok(())
    })
    .await;
    writer.abort();
    match read {
        Err(_) => return Err(format!("{method} {target}: no complete response in 30 s")),
        Ok(Err(e)) => return Err(format!("{method} {target}: {e}")),
        Ok(Ok(())) => {}
    }
    parse(&buf).ok_or_else(|| {
        format!(
            "{method} {target}: unparsable response {:?}",
            String::from_utf8_lossy(&buf[..buf.len().min(200)])
        )
    })
}

/// Whether `buf` holds a whole response (by Content-Length or the last chunk).
fn complete(buf: &[u8]) -> bool {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let body = &buf[end + 4..];
    if head.contains("transfer-encoding: chunked") {
        return dechunk(body).is_some();
    }
    match head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        Some(n) => body.len() >= n,
        None => false,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The body of a chunked transfer, if it is complete.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(body, b"\r\n")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if body.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

fn parse(buf: &[u8]) -> Option<RawResp> {
    let end = find(buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    let raw_body = &buf[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(raw_body).unwrap_or_else(|| raw_body.to_vec())
    } else {
        raw_body.to_vec()
    };
    Some(RawResp {
        status,
        headers,
        text: String::from_utf8_lossy(&body).into_owned(),
    })
}
