//! A registry client callable from synchronous code: decoding runs on blocking threads (and
//! sometimes on a runtime's worker), while registry clients are async HTTP. Each client runs
//! on a thread of its own with its own runtime; a caller sends the id and waits for the answer,
//! so nothing nests in the caller's runtime (on a multi-threaded runtime's worker the wait is
//! marked blocking, so the runtime moves its other tasks away). Every schema is fetched once
//! per client; a failed fetch is remembered for a few seconds, so the records of a batch that
//! name the same schema fail at once instead of each waiting out the retries.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use super::{RegistryError, SchemaId, SchemaRegistry};

/// Fetches schemas, on the client's thread.
pub(crate) trait Fetch: Send + 'static {
    /// The schema `id` names.
    fn fetch(
        &self,
        id: SchemaId,
    ) -> Pin<Box<dyn Future<Output = Result<String, RegistryError>> + Send + '_>>;

    /// Every schema registered under `subjects` (none for registries without subjects).
    fn subjects(
        &self,
        _subjects: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Schemas> + Send + '_>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

type Schemas = Result<Vec<(SchemaId, String)>, RegistryError>;

/// What the client's thread is asked to do, and where the answer goes.
enum Job {
    Schema(SchemaId, mpsc::Sender<Result<String, RegistryError>>),
    Subjects(Vec<String>, mpsc::Sender<Schemas>),
}

/// A [`Fetch`] behind a thread, as a [`SchemaRegistry`].
pub(crate) struct BlockingRegistry {
    /// What it talks to, for messages (no credentials).
    name: String,
    requests: Mutex<mpsc::Sender<Job>>,
    fetched: Mutex<HashMap<SchemaId, String>>,
    failed: Mutex<HashMap<SchemaId, (Instant, RegistryError)>>,
}

/// How long a failed fetch answers for the same id without asking again.
const REMEMBER_FAILURE: Duration = Duration::from_secs(5);

impl fmt::Debug for BlockingRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl BlockingRegistry {
    /// Starts the thread of `fetcher`; `name` says what it talks to.
    pub(crate) fn start(name: String, fetcher: impl Fetch) -> Result<Self, RegistryError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RegistryError(format!("{name}: client runtime: {e}")))?;
        std::thread::Builder::new()
            .name("schema-registry".into())
            .spawn(move || {
                // Ends when the registry (the sending side) is dropped.
                while let Ok(job) = rx.recv() {
                    match job {
                        Job::Schema(id, reply) => {
                            let _ = reply.send(runtime.block_on(fetcher.fetch(id)));
                        }
                        Job::Subjects(subjects, reply) => {
                            let _ = reply.send(runtime.block_on(fetcher.subjects(subjects)));
                        }
                    }
                }
            })
            .map_err(|e| RegistryError(format!("{name}: client thread: {e}")))?;
        Ok(BlockingRegistry {
            name,
            requests: Mutex::new(tx),
            fetched: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
        })
    }
}

impl BlockingRegistry {
    /// Hands the client's thread a job and waits for its answer.
    fn ask<T>(&self, job: impl FnOnce(mpsc::Sender<T>) -> Job) -> Result<T, RegistryError> {
        let (reply, answer) = mpsc::channel();
        let gone = || RegistryError(format!("{}: client stopped", self.name));
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job(reply))
            .map_err(|_| gone())?;
        let wait = || answer.recv().map_err(|_| gone());
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }
}

impl SchemaRegistry for BlockingRegistry {
    fn preload(&self, subjects: &[String]) -> Result<usize, RegistryError> {
        let schemas = self.ask(|reply| Job::Subjects(subjects.to_vec(), reply))??;
        let mut fetched = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
        fetched.extend(schemas);
        Ok(fetched.len())
    }

    fn schema(&self, id: SchemaId) -> Result<String, RegistryError> {
        let cached = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(text) = cached.get(&id) {
            return Ok(text.clone());
        }
        drop(cached);
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        match failed.get(&id) {
            Some((at, e)) if at.elapsed() < REMEMBER_FAILURE => return Err(e.clone()),
            Some(_) => drop(failed.remove(&id)),
            None => {}
        }
        drop(failed);
        let fetched = self.ask(|reply| Job::Schema(id, reply))?;
        let text = fetched.inspect_err(|e| {
            let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            failed.insert(id, (Instant::now(), e.clone()));
        })?;
        self.fetched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, text.clone());
        Ok(text)
    }
}
