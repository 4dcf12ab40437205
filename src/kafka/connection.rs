//! One client connection: reads request frames, hands each to the request handler and writes
//! the answers back in request order, as Kafka requires. It knows frames and their order,
//! nothing of what the requests mean beyond which of them may be pipelined.
//!
//! Reading and answering are two loops joined by a queue. A Produce is read and handled up to
//! the point where its answer waits only for durability (its batches are appended), then the
//! next request is read while earlier ones wait for their sync, so one producer connection
//! keeps the disk busy and its requests share syncs. Any other request first waits until
//! everything before it is answered, so it sees their effects exactly as on Kafka's
//! one-request-at-a-time connections.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel;
use kafka_protocol::messages::ApiKey;

use super::frame::{read_frame, FrameError};
use crate::limits::{MAX_PIPELINED_BYTES, MAX_PIPELINED_REQUESTS};
use crate::notify::Notify;

/// A request's answer: the frame parts to write in order (`None`: the request gets no answer).
/// `Err` closes the connection once earlier answers are written (Kafka's answer to an unknown
/// API, an unsupported version or a malformed request).
pub type Answer = Result<Option<Vec<Bytes>>, String>;

/// What handling a request left to do.
pub enum Handled<'a> {
    Now(Answer),
    /// A Produce whose batches are appended; the answer waits for durability.
    Later(Pin<Box<dyn Future<Output = Answer> + 'a>>),
}

/// Serves a connection until the peer closes it, breaks the protocol or a write fails.
pub async fn serve<'a, R, W, H, F>(mut reader: R, mut writer: W, peer: &str, handle: H)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    H: Fn(Bytes) -> F,
    F: Future<Output = Handled<'a>>,
{
    let in_flight = InFlight::default();
    let in_flight = &in_flight;
    let (queue, answers) = local_channel::new_unbounded::<(usize, Handled<'a>)>();
    let read = async move {
        loop {
            let frame = match read_frame(&mut reader).await {
                Ok(f) => f,
                Err(FrameError::Closed) => break,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "closing connection");
                    break;
                }
            };
            let len = frame.len();
            if is_produce(&frame) {
                in_flight.until(|f| f.has_room_for(len)).await;
            } else {
                in_flight.until(|f| f.requests.get() == 0).await;
            }
            in_flight.add(len);
            let handled = handle(frame).await;
            let last = matches!(handled, Handled::Now(Err(_)));
            if queue.send((len, handled)).await.is_err() || last {
                break;
            }
        }
        // `queue` is dropped here: the writer ends once it has answered what is queued.
    };
    let write = async {
        while let Some((len, handled)) = answers.recv().await {
            let answer = match handled {
                Handled::Now(answer) => answer,
                Handled::Later(answer) => answer.await,
            };
            in_flight.remove(len);
            match answer {
                Ok(Some(parts)) => {
                    for part in parts {
                        if let Err(e) = writer.write_all(&part).await {
                            tracing::debug!(%peer, error = %e, "write failed");
                            return;
                        }
                    }
                }
                Ok(None) => {}
                Err(reason) => {
                    tracing::info!(%peer, %reason, "closing connection after a bad request");
                    return;
                }
            }
        }
    };
    // The reader finishing lets the writer drain the queue; the writer failing ends both.
    futures_lite::future::or(
        async {
            read.await;
            std::future::pending::<()>().await
        },
        write,
    )
    .await;
}

/// Requests read from the connection and not yet answered.
#[derive(Default)]
struct InFlight {
    requests: Cell<usize>,
    bytes: Cell<usize>,
    changed: Notify,
}

impl InFlight {
    /// A request of `len` bytes may join the pipeline (alone, it always may).
    fn has_room_for(&self, len: usize) -> bool {
        self.requests.get() == 0
            || (self.requests.get() < MAX_PIPELINED_REQUESTS
                && self.bytes.get() + len <= MAX_PIPELINED_BYTES)
    }
    fn add(&self, len: usize) {
        self.requests.set(self.requests.get() + 1);
        self.bytes.set(self.bytes.get() + len);
    }
    fn remove(&self, len: usize) {
        debug_assert!(self.requests.get() > 0 && self.bytes.get() >= len);
        self.requests.set(self.requests.get() - 1);
        self.bytes.set(self.bytes.get() - len);
        self.changed.notify();
    }
    async fn until(&self, ready: impl Fn(&Self) -> bool) {
        loop {
            let changed = self.changed.notified();
            if ready(self) {
                return;
            }
            changed.await;
        }
    }
}

/// Frames are at least [`super::frame::MIN_REQUEST_BYTES`] long, so the API key is there.
fn is_produce(frame: &[u8]) -> bool {
    i16::from_be_bytes([frame[0], frame[1]]) == ApiKey::Produce as i16
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::time::Duration;

    use super::*;

    /// A request frame (length prefix included) of API `key` whose correlation id is `id`.
    fn frame(key: i16, id: i32) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&key.to_be_bytes());
        body.extend_from_slice(&0i16.to_be_bytes());
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(&(-1i16).to_be_bytes());
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(&body);
        f
    }

    fn correlation_id(frame: &Bytes) -> i32 {
        i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]])
    }

    /// Serves `input` with `handle` on a fresh executor; what was written back, failing the
    /// test if the connection does not finish within ten seconds.
    /// `make` builds the handler on the executor (handlers hold `Rc`s).
    fn run<M, H>(input: Vec<u8>, make: M) -> Vec<u8>
    where
        M: FnOnce() -> H + Send + 'static,
        H: Fn(Bytes) -> Pin<Box<dyn Future<Output = Handled<'static>>>> + 'static,
    {
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let handle = make();
                let mut out = Vec::new();
                let served = serve(
                    futures_lite::io::Cursor::new(input),
                    &mut out,
                    "test",
                    handle,
                );
                let timeout = async {
                    glommio::timer::sleep(Duration::from_secs(10)).await;
                    panic!("the connection did not finish: a request waited for a later one");
                };
                futures_lite::future::or(served, timeout).await;
                out
            })
            .expect("executor")
            .join()
            .expect("join")
    }

    #[test]
    fn the_next_produce_is_read_while_the_previous_one_waits_and_answers_keep_their_order() {
        // Produce 1 can only finish once produce 2 has been handled: without pipelining the
        // connection would wait forever.
        let mut input = frame(0, 1);
        input.extend(frame(0, 2));
        let out = run(input, || {
            let second_seen = Rc::new(Cell::new(false));
            move |f: Bytes| -> Pin<Box<dyn Future<Output = Handled<'static>>>> {
                let second_seen = second_seen.clone();
                Box::pin(async move {
                    let id = correlation_id(&f);
                    if id == 2 {
                        second_seen.set(true);
                        return Handled::Later(Box::pin(async {
                            Ok(Some(vec![Bytes::from("2")]))
                        }));
                    }
                    Handled::Later(Box::pin(async move {
                        while !second_seen.get() {
                            glommio::timer::sleep(Duration::from_millis(1)).await;
                        }
                        Ok(Some(vec![Bytes::from("1")]))
                    }))
                })
            }
        });
        assert_eq!(out, b"12");
    }

    #[test]
    fn a_request_other_than_produce_waits_for_every_earlier_answer() {
        let mut input = frame(0, 1);
        input.extend(frame(3, 2));
        let out = run(input, || {
            let produced = Rc::new(Cell::new(false));
            move |f: Bytes| -> Pin<Box<dyn Future<Output = Handled<'static>>>> {
                let produced = produced.clone();
                Box::pin(async move {
                    if correlation_id(&f) == 2 {
                        assert!(
                            produced.get(),
                            "metadata handled before the produce was answered"
                        );
                        return Handled::Now(Ok(Some(vec![Bytes::from("m")])));
                    }
                    Handled::Later(Box::pin(async move {
                        glommio::timer::sleep(Duration::from_millis(50)).await;
                        produced.set(true);
                        Ok(Some(vec![Bytes::from("p")]))
                    }))
                })
            }
        });
        assert_eq!(out, b"pm");
    }

    #[test]
    fn a_bad_request_closes_the_connection_after_the_earlier_answers() {
        let mut input = frame(0, 1);
        input.extend(frame(0, 2));
        input.extend(frame(0, 3));
        let out = run(input, || {
            |f: Bytes| -> Pin<Box<dyn Future<Output = Handled<'static>>>> {
                Box::pin(async move {
                    match correlation_id(&f) {
                        1 => Handled::Later(Box::pin(async { Ok(Some(vec![Bytes::from("1")])) })),
                        2 => Handled::Now(Err("malformed".into())),
                        _ => panic!("a request after a bad one was read"),
                    }
                })
            }
        });
        assert_eq!(out, b"1");
    }
}
