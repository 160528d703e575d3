//! Minimal raw HTTP client helpers for the emulator tests.
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use kube_emulator::Emulator;
use serde_json::Value;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub struct Api {
    pub base: String,
    pub client: HttpClient,
}

impl Api {
    pub fn new(emu: &Emulator) -> Self {
        Self { base: emu.url(), client: client() }
    }

    pub async fn raw(&self, method: &str, path: &str, body: Option<&str>, content_type: &str) -> (u16, String) {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path))
            .header("content-type", content_type)
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or("").to_string())))
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(10), self.client.request(req))
            .await
            .expect("request timed out")
            .expect("request failed");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>, content_type: &str) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        let (code, text) = self.raw(method, path, body.as_deref(), content_type).await;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (code, v)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None, "application/json").await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call("POST", path, Some(body), "application/json").await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call("PUT", path, Some(body), "application/json").await
    }

    pub async fn patch(&self, path: &str, body: &Value, content_type: &str) -> (u16, Value) {
        self.call("PATCH", path, Some(body), content_type).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call("DELETE", path, None, "application/json").await
    }

    /// Open a watch (path including the query string).
    pub async fn watch(&self, path_and_query: &str) -> WatchStream {
        let req = hyper::Request::builder()
            .method("GET")
            .uri(format!("{}{}", self.base, path_and_query))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = self.client.request(req).await.expect("watch request");
        assert_eq!(resp.status(), 200, "watch status");
        assert_eq!(resp.headers().get("content-type").unwrap(), "application/json");
        WatchStream { body: resp.into_body(), buf: Vec::new(), ended: false }
    }
}

pub struct WatchStream {
    body: Incoming,
    buf: Vec<u8>,
    pub ended: bool,
}

impl WatchStream {
    /// Next watch event, or None when the stream ended or `timeout` passed.
    pub async fn next_timeout(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).expect("watch line is JSON"));
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return None,
                Ok(None) => self.ended = true,
                Ok(Some(Err(_))) => self.ended = true,
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    pub async fn next(&mut self) -> Value {
        self.next_timeout(Duration::from_secs(5)).await.expect("expected a watch event")
    }

    /// Next event that is not a BOOKMARK.
    pub async fn next_non_bookmark(&mut self) -> Value {
        loop {
            let e = self.next().await;
            if e["type"] != "BOOKMARK" {
                return e;
            }
        }
    }

    /// Wait for the stream to end (true) within `timeout`.
    pub async fn wait_end(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if self.next_timeout(Duration::from_millis(50)).await.is_none() && self.ended {
                return true;
            }
        }
        false
    }
}

pub fn name_of(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or("")
}

pub fn rv_of(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"].as_str().expect("resourceVersion").parse().expect("numeric resourceVersion")
}
