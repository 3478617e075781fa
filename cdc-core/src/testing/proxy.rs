//! An HTTP/1.1 proxy on 127.0.0.1 in front of a real server (a catalog), for fault tests: it
//! relays every request, and for the requests its [`Front`] picks it loses the request, the
//! answer or the connection, or sends the request twice, as networks and gateways do. One
//! request per connection.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwarded, answer relayed.
    Pass,
    /// Forwarded (the server applies it), answered 502 instead of the server's answer.
    AnswerLost,
    /// Forwarded (the server applies it), then the connection is closed without an answer.
    ConnectionLost,
    /// Forwarded twice, as a retrying gateway might: the first copy lands, the answer to the
    /// second is relayed.
    Replayed,
    /// Not forwarded, answered 503.
    RequestLost,
}

/// One request as the proxy read it.
#[derive(Debug)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        (self.headers.iter())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a test's proxy does.
pub trait Front: Send + Sync + 'static {
    /// An answer the proxy gives itself instead of relaying (status, JSON body).
    fn answer(&self, _request: &Request) -> Option<(u16, Vec<u8>)> {
        None
    }

    /// What happens to a request that is relayed.
    fn fault(&self, request: &Request) -> Fault;

    /// Runs before a relayed request is forwarded: what happens in the window between a
    /// client's last read and its write (another writer's commit, say).
    fn before_forward<'a>(&'a self, _request: &'a Request) -> BoxFuture<'a, ()> {
        async {}.boxed()
    }

    /// Whether the proxy refuses a Glue `UpdateTable` whose `VersionId` is no longer the
    /// table's, as Glue does (moto_server ignores `VersionId`).
    fn checks_glue_versions(&self) -> bool {
        false
    }
}

/// Starts a proxy to `upstream` (`http://host:port`) playing `front`; its base URI.
pub async fn fault_proxy(upstream: String, front: Arc<dyn Front>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    let http = reqwest::Client::new();
    // Glue version checks and the swaps they admit happen one at a time, as in Glue.
    let swaps = Arc::new(Mutex::new(()));
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let (upstream, front, http) = (upstream.clone(), front.clone(), http.clone());
            let swaps = swaps.clone();
            tokio::spawn(async move {
                let proxy = Proxy {
                    upstream: &upstream,
                    front: front.as_ref(),
                    http: &http,
                    swaps: &swaps,
                };
                let _ = proxy.relay(socket).await;
            });
        }
    });
    uri
}

/// Answers `status` with `answer` and closes the connection.
pub async fn respond(socket: TcpStream, status: u16, answer: &[u8]) -> std::io::Result<()> {
    relay_answer(
        socket,
        status,
        "application/json",
        &[],
        answer.len(),
        answer,
    )
    .await
}

/// Relays a server's answer: its status, content type, other headers and body.
async fn relay_answer(
    mut socket: TcpStream,
    status: u16,
    content_type: &str,
    headers: &[(String, String)],
    length: usize,
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {length}\r\nconnection: close\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body).await?;
    socket.shutdown().await
}

/// Reads one request off `socket`; `None` when the client went away.
async fn read_request(socket: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let path = request_line.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    let length: usize = (headers.iter())
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + length].to_vec();
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

/// One connection's view of the proxy.
struct Proxy<'a> {
    upstream: &'a str,
    front: &'a dyn Front,
    http: &'a reqwest::Client,
    swaps: &'a Mutex<()>,
}

impl Proxy<'_> {
    async fn relay(&self, mut socket: TcpStream) -> std::io::Result<()> {
        let Some(request) = read_request(&mut socket).await? else {
            return Ok(());
        };
        if let Some((status, answer)) = self.front.answer(&request) {
            return respond(socket, status, &answer).await;
        }
        let fault = self.front.fault(&request);
        if fault == Fault::RequestLost {
            let answer = br#"{"error":{"message":"proxy lost the request","type":"ServiceUnavailable","code":503}}"#;
            return respond(socket, 503, answer).await;
        }
        self.front.before_forward(&request).await;
        let swap = self.front.checks_glue_versions()
            && request.header("x-amz-target") == Some("AWSGlue.UpdateTable");
        let _one_at_a_time = match swap {
            true => Some(self.swaps.lock().await),
            false => None,
        };
        if swap {
            if let Some(refusal) = self.stale_glue_version(&request).await {
                return respond(socket, 400, refusal.as_bytes()).await;
            }
        }
        let method = request.method.parse().expect("an HTTP method");
        let mut forward = (self.http).request(method, format!("{}{}", self.upstream, request.path));
        for (k, v) in &request.headers {
            if !matches!(k.as_str(), "host" | "content-length" | "connection") {
                forward = forward.header(k, v);
            }
        }
        if fault == Fault::Replayed {
            let copy = forward.try_clone().unwrap().body(request.body.clone());
            let first = copy.send().await.unwrap();
            assert!(first.status().is_success(), "{}", first.status());
        }
        let is_head = request.method == "HEAD";
        let answer = forward.body(request.body).send().await.unwrap();
        let status = answer.status().as_u16();
        // The server's headers too (an object store's ETag, Last-Modified, Content-Range).
        let headers: Vec<(String, String)> = (answer.headers().iter())
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "content-length" | "connection" | "transfer-encoding" | "content-type"
                )
            })
            .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let content_type = (answer.headers().get("content-type"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string();
        let answer_length = (answer.headers().get("content-length"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = answer.bytes().await.unwrap().to_vec();
        match fault {
            Fault::AnswerLost => respond(socket, 502, b"<html>bad gateway</html>").await,
            Fault::ConnectionLost => {
                drop(socket);
                Ok(())
            }
            _ => {
                // A HEAD answer's length is the object's, not its (empty) body's.
                let length = match is_head {
                    true => (answer_length.as_deref().and_then(|l| l.parse().ok())).unwrap_or(0),
                    false => bytes.len(),
                };
                relay_answer(socket, status, &content_type, &headers, length, &bytes).await
            }
        }
    }

    /// Glue's refusal of an `UpdateTable` naming a `VersionId` the table no longer has.
    async fn stale_glue_version(&self, request: &Request) -> Option<String> {
        let update: Value = serde_json::from_slice(&request.body).ok()?;
        let version = update["VersionId"].as_str()?;
        let mut get = json!({
            "DatabaseName": update["DatabaseName"], "Name": update["TableInput"]["Name"],
        });
        if let Some(catalog) = update.get("CatalogId") {
            get["CatalogId"] = catalog.clone();
        }
        let mut call = (self.http.post(format!("{}/", self.upstream)))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "AWSGlue.GetTable");
        // moto finds the region in the credential scope.
        if let Some(auth) = request.header("authorization") {
            call = call.header("authorization", auth);
        }
        let table: Value = call
            .body(get.to_string())
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let current = table["Table"]["VersionId"].as_str()?;
        (current != version).then(|| {
            json!({
                "__type": "ConcurrentModificationException",
                "message": format!("version {version} is not the table's current version {current}"),
            })
            .to_string()
        })
    }
}

/// A [`Front`] for a Glue endpoint: each listed Glue operation (`UpdateTable`, `CreateTable`,
/// ...) meets the faults of its plan in turn, then passes; other calls pass.
#[derive(Debug, Default)]
pub struct GlueFaults {
    plans: std::sync::Mutex<std::collections::HashMap<String, std::collections::VecDeque<Fault>>>,
}

impl GlueFaults {
    /// Faults for the calls of each operation, in order.
    pub fn new(plans: &[(&str, &[Fault])]) -> Self {
        let plans = (plans.iter())
            .map(|(op, faults)| (format!("AWSGlue.{op}"), faults.iter().copied().collect()))
            .collect();
        GlueFaults {
            plans: std::sync::Mutex::new(plans),
        }
    }

    /// The operations whose planned faults were not all met, with how many are left.
    pub fn unmet(&self) -> Vec<(String, usize)> {
        let plans = self.plans.lock().unwrap();
        let mut left: Vec<_> = (plans.iter())
            .filter(|(_, faults)| !faults.is_empty())
            .map(|(op, faults)| (op.clone(), faults.len()))
            .collect();
        left.sort();
        left
    }
}

impl Front for GlueFaults {
    fn fault(&self, request: &Request) -> Fault {
        let Some(target) = request.header("x-amz-target") else {
            return Fault::Pass;
        };
        let mut plans = self.plans.lock().unwrap();
        (plans.get_mut(target))
            .and_then(|faults| faults.pop_front())
            .unwrap_or(Fault::Pass)
    }
}
